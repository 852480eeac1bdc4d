"""A graceful stop is quick and still finishes what it started (kdk_app/gunicorn_worker.py).

gunicorn's own gevent worker checks its ``alive`` flag once a second and its drain once a
second, so SIGTERM cost every stop 1.5-2 s even with nothing to do. Ours wakes on the signal
and polls the drain ten times a second, closes keep-alive connections that wait between two
requests, closes Socket.IO connections so that their clients reconnect to a worker that serves
(they held the drain until graceful_timeout, 10 s), and still answers a request in flight.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

from clients import Listener, read_one_response, wait_until
from node import JS_DIR, skip_or_fail
from servers import gunicorn_workers

from kdk_app.embedded import free_port

# socket.io-client, as a browser runs it: print each (re)connection, with its socket id.
JS_RECONNECTING_CLIENT = """
const { io } = require(%s);
const socket = io(process.argv[1], { transports: [process.argv[2]], reconnectionDelay: 100 });
socket.on("connect", () => console.log("connect " + socket.id));
socket.on("disconnect", (reason) => console.log("disconnect " + reason));
setTimeout(() => process.exit(3), 30000);
"""

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
    assert "Traceback" not in server.log_text(), "closing it was logged as an error"


def self_signed_certificate(folder) -> tuple[str, str]:
    """A certificate for IP 127.0.0.1 and its key, made with openssl: (cert, key)."""
    openssl = shutil.which("openssl") or skip_or_fail("openssl must be on PATH to make a test certificate")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert]
        + ["-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def tls_answers(port: int, context: ssl.SSLContext) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                sock.sendall(b"GET /livez HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                return sock.recv(12).startswith(b"HTTP/1.1")
    except OSError:
        return False


def test_an_idle_keep_alive_tls_connection_does_not_hold_up_the_stop(app_server_factory, tmp_path):
    # gunicorn serving TLS itself (certfile and keyfile), with no proxy in front.
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.create_default_context(cafile=cert)
    port = free_port()
    server = app_server_factory(
        {"GUNICORN_CMD_ARGS": f"--certfile {cert} --keyfile {key}"},
        workers=2,
        port=port,
        ready_check=lambda: tls_answers(port, context),
    )
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=15)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n")
            assert read_one_response(sock).startswith(b"HTTP/1.1 200")
            elapsed = seconds_to_exit_after_sigterm(server)
            try:
                assert sock.recv(1) == b"", "the idle connection was not closed"
            except ssl.SSLError:
                pass  # closed without TLS's close_notify: closed all the same
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log_text()
    assert elapsed < IDLE_STOP_BOUND_S, f"stop took {elapsed:.2f}s\n{server.log_text()}"
    assert "Traceback" not in server.log_text(), "closing it was logged as an error"


def test_open_socketio_connections_do_not_hold_up_the_stop(app_server_factory):
    server = app_server_factory(workers=2)
    clients = [Listener(server.url, transports) for transports in (["websocket"], ["polling"])]
    try:
        elapsed = seconds_to_exit_after_sigterm(server)
    finally:
        for client in clients:
            client.close()
    assert server.process.returncode == 0, server.log_text()
    assert elapsed < IDLE_STOP_BOUND_S, f"stop took {elapsed:.2f}s\n{server.log_text()}"


def test_kdk_serve_with_an_open_websocket_stops_within_a_second(app_server_factory):
    server = app_server_factory(workers=0)
    client = Listener(server.url)
    try:
        elapsed = seconds_to_exit_after_sigterm(server)
    finally:
        client.close()
    assert elapsed < IDLE_STOP_BOUND_S, f"stop took {elapsed:.2f}s\n{server.log_text()}"


def test_a_socket_client_of_a_stopping_worker_reconnects_and_calls_again(app_server_factory):
    server = app_server_factory(workers=1)
    client = Listener(server.url)
    try:
        first_sid = client.client.get_sid()
        (worker,) = gunicorn_workers(server.process.pid)
        started = time.monotonic()
        os.kill(worker, signal.SIGTERM)  # as a `kill -HUP` or a rolling restart stops each worker
        assert wait_until(lambda: not os.path.exists(f"/proc/{worker}"), timeout=15, interval=0.01)
        assert time.monotonic() - started < IDLE_STOP_BOUND_S, server.log_text()
        # Dropped with a transport close, not a Socket.IO disconnect: the client comes back.
        assert client.disconnected.wait(5)
        assert wait_until(
            lambda: client.client.connected and client.client.get_sid() != first_sid, timeout=15
        )
        error, result = client.call("find", "messages", {})
        assert error is None and isinstance(result, list | dict), (error, result)
    finally:
        client.close()


def test_the_official_socketio_client_of_a_stopping_worker_reconnects(app_server_factory, js_deps):
    server = app_server_factory(workers=1)
    module = json.dumps(str(JS_DIR / "node_modules" / "socket.io-client"))
    for transport in ("websocket", "polling"):
        client = subprocess.Popen(
            ["node", "-e", JS_RECONNECTING_CLIENT % module, server.url, transport],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert client.stdout is not None
            assert client.stdout.readline().startswith("connect ")
            (worker,) = gunicorn_workers(server.process.pid)
            os.kill(worker, signal.SIGTERM)
            # A lost transport (not "io server disconnect"): the client reconnects, to the new worker.
            reason = client.stdout.readline().strip()
            assert reason in ("disconnect transport close", "disconnect transport error"), transport
            assert client.stdout.readline().startswith("connect "), transport
        finally:
            client.kill()
            client.wait()
