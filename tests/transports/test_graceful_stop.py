"""A graceful stop is quick and still finishes what it started (kdk_app/gunicorn_worker.py).

gunicorn's own gevent worker checks its ``alive`` flag once a second and its drain once a
second, so SIGTERM cost every stop 1.5-2 s even with nothing to do. Ours wakes on the signal
and polls the drain ten times a second, closes keep-alive connections that wait between two
requests, and still answers a request that was in flight.
"""

from __future__ import annotations

import os
import signal
import socket
import time

from clients import read_one_response, wait_until

# gunicorn's loops alone cost ≥ 1.5 s; ours should take well under that, with slack for slow CI.
IDLE_STOP_BOUND_S = 1.3


def seconds_to_exit_after_sigterm(server) -> float:
    """SIGTERM gunicorn's master only (as ``kill -TERM`` or a PaaS does) and time its exit."""
    started = time.monotonic()
    os.kill(server.process.pid, signal.SIGTERM)
    wait_until(lambda: not server.process.is_running(), timeout=15, interval=0.01)
    return time.monotonic() - started


def test_an_idle_gunicorn_app_stops_within_a_second_of_sigterm(app_server_factory):
    server = app_server_factory(workers=2)
    elapsed = seconds_to_exit_after_sigterm(server)
    assert server.process.returncode == 0, server.log_text()
    assert elapsed < IDLE_STOP_BOUND_S, f"stop took {elapsed:.2f}s\n{server.log_text()}"


def test_a_request_in_flight_at_sigterm_is_still_answered(app_server_factory):
    server = app_server_factory(workers=1)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    try:
        # Half a request: the worker is reading it when the stop begins.
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: test\r\n")
        os.kill(server.process.pid, signal.SIGTERM)
        wait_until(lambda: "Handling signal: term" in server.log_text(), timeout=10)
        sock.sendall(b"Connection: close\r\n\r\n")
        assert read_one_response(sock).startswith(b"HTTP/1.1 200")
    finally:
        sock.close()
    assert wait_until(lambda: not server.process.is_running(), timeout=15), server.log_text()
    assert server.process.returncode == 0, server.log_text()


def test_an_idle_keep_alive_connection_does_not_hold_up_the_stop(app_server_factory):
    server = app_server_factory(workers=2)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    try:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n")
        assert read_one_response(sock).startswith(b"HTTP/1.1 200")
        # The connection stays open between requests, as a browser's or a proxy's pool keeps it.
        elapsed = seconds_to_exit_after_sigterm(server)
        assert sock.recv(1) == b"", "the idle connection was not closed"
    finally:
        sock.close()
    assert server.process.returncode == 0, server.log_text()
    assert elapsed < IDLE_STOP_BOUND_S, f"stop took {elapsed:.2f}s\n{server.log_text()}"
