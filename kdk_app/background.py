"""``BackgroundThread``: the one daemon-thread lifecycle the background components share.

The Redis loops (distribution listener, responder, heartbeat and event threads; the sync
publisher and reader) each run ``target(stop)`` on a daemon thread until ``stop`` is set, and
stop by setting it, waking the loop if it sleeps on something else, and joining with a bound.
This class is that code, once: a fresh event per ``start()`` so a thread that outlived a
timed-out ``stop()`` still sees its own event set and ends, never the next run's.

``threading`` is looked up at call time (no ``from threading import ...``), so under gevent
monkey-patching these are greenlets and greenlet events, as everywhere else in the app.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

Target = Callable[[threading.Event], None]

# Share of each retry delay taken off at random: processes that lost Redis together (a failover,
# a restart) then come back spread out, not all in the same instant.
JITTER = 0.25


def jittered(delay: float, jitter: float = JITTER) -> float:
    """``delay`` less a random part of up to ``jitter`` of it (never longer than ``delay``)."""
    return delay * (1 - jitter * random.random())


class BackgroundThread:
    """Runs ``target(stop_event)`` on a named daemon thread; ``stop()`` sets the event and joins.

    ``wake`` (optional) is called by ``stop()`` right after setting the event, for loops that
    block on something else (a queue, a Redis BLPOP, another event) and would otherwise notice
    the stop only at their next timeout.
    """

    def __init__(self, name: str, target: Target, *, wake: Callable[[], None] | None = None) -> None:
        self.name = name
        self._target = target
        self._wake = wake
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_alive(self) -> bool:
        """The thread is running, possibly already asked to stop.

        Read from a flag its run sets at the end, not from ``Thread.is_alive()``: under gevent
        that tries the thread's lock, and a failed try yields to the hub, which the Socket.IO
        queue's check before each publish did in the middle of every request that emits."""
        return self._thread is not None and not self._ended.is_set()

    @property
    def running(self) -> bool:
        """The thread is running and has not been asked to stop."""
        return self.is_alive and not self._stop.is_set()

    def start(self) -> None:
        """Start a new thread with a new stop event (a thread still stopping keeps its own)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self._stop, self._ended = threading.Event(), threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stop, self._ended), name=self.name, daemon=True
        )
        self._thread.start()

    def _run(self, stop: threading.Event, ended: threading.Event) -> None:
        try:
            self._target(stop)
        finally:
            ended.set()  # this run's own event: a later start() has a new one

    def stop(self, timeout: float | None) -> bool:
        """Set the stop event, wake the loop, wait up to ``timeout``; True once the thread ended."""
        self._stop.set()
        if self._wake is not None:
            self._wake()
        thread = self._thread
        if thread is None:
            return True
        if thread is not threading.current_thread():  # stopping from inside: cannot join
            thread.join(timeout)
        if thread.is_alive():
            return False
        self._thread = None
        return True


class Backoff:
    """Delays that double from ``first`` up to ``cap``, until ``reset()``: the retry pace of every
    Redis loop (sync and distribution), so Redis is not hammered while it is down. Each delay is
    :func:`jittered`, so the loops of many processes do not retry in step."""

    def __init__(self, first: float = 0.1, cap: float = 2.0, jitter: float = JITTER) -> None:
        self.first = first
        self.cap = cap
        self.jitter = jitter
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return jittered(delay, self.jitter)

    def reset(self) -> None:
        self._next = self.first
