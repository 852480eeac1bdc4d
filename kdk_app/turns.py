"""Giving the other greenlets of a gevent process a real turn.

``sleep(0)`` is the usual way to yield, but gevent resumes it from its callback queue, before
the loop polls for I/O again: a greenlet that has more work at hand (a keep-alive connection
whose next request is already buffered, a reader with a batch) runs again and again, up to 50
callbacks in a row, while those waiting on their sockets are not woken. Under load that left
1-2 % of requests waiting 100-300 ms. A timer, however short, fires only after the next poll,
so every connection that is ready gets served first; the p99 fell 4-10 times (bench/README.md).
Unpatched (a thread, not a greenlet), the same call sleeps about 60 µs.
"""

from __future__ import annotations

import time

# Shorter than any real wait: what matters is that it goes through a timer, not how long it is.
TURN_S = 1e-6


def take_turns() -> None:
    """Let every greenlet that is ready, I/O included, run before this one goes on."""
    time.sleep(TURN_S)  # looked up at each call: gevent's sleep once the process is patched
