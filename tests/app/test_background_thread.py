"""kdk_app/background.py: the lifecycle every background loop shares."""

from __future__ import annotations

import subprocess
import sys
import threading

from clients import wait_until

from kdk_app.background import BackgroundThread

# Under gevent, as in a worker: a greenlet counts while the main one checks the thread 1,000
# times. Thread.is_alive() tries the thread's lock there, and each failed try yields to the hub.
GEVENT_CHECK = """
from gevent import monkey
monkey.patch_all()
import gevent, threading
from kdk_app.background import BackgroundThread

loop = BackgroundThread("loop", lambda stop: stop.wait())
loop.start()
gevent.sleep(0.01)
turns = []
counter = gevent.spawn(lambda: [turns.append(1) or gevent.sleep(0) for _ in range(10000)])
assert all(loop.running for _ in range(1000))
print(len(turns))
counter.kill()
loop.stop(1)
"""


def test_a_loop_that_returns_by_itself_is_not_alive_and_starts_again():
    done = threading.Event()
    loop = BackgroundThread("once", lambda stop: done.set())
    loop.start()
    assert done.wait(5)
    assert wait_until(lambda: not loop.is_alive, timeout=5)
    assert not loop.running
    loop.start()  # no "already running"
    assert loop.stop(5)


def test_a_stopped_loop_is_neither_running_nor_alive():
    loop = BackgroundThread("waits", lambda stop: stop.wait())
    loop.start()
    assert loop.running and loop.is_alive
    assert loop.stop(5)
    assert not loop.running and not loop.is_alive


def test_checking_a_running_loop_under_gevent_never_yields_to_other_greenlets():
    done = subprocess.run([sys.executable, "-c", GEVENT_CHECK], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0", "checking the loop let another greenlet run"
