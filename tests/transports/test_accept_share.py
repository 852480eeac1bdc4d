"""A worker that shares its listener takes its share of a burst of new connections at once
(kdk_app/listen_queue.py): taking one connection per turn of a busy event loop made a burst wait
up to a second, and taking all of them left the other workers idle."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from clients import read_one_response, wait_until
from servers import gunicorn_workers

from kdk_app.listen_queue import accept_queue_length, accept_share

# One turn of a WatchingServer's accept callback on a listener with 20 connections waiting.
ONE_TURN = """
from gevent import monkey
monkey.patch_all()
import socket, sys
from kdk_app.watched_connections import WatchingServer

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(128)
clients = [socket.create_connection(listener.getsockname()) for _ in range(20)]
accepted = []
server = WatchingServer(listener, handle=lambda sock, address: accepted.append(sock), spawn=None)
server.sharing_workers = int(sys.argv[1])
server.init_socket()
server._do_read()
print(len(accepted))
"""


def accepted_in_one_turn(sharing_workers: int) -> int:
    done = subprocess.run(
        [sys.executable, "-c", ONE_TURN, str(sharing_workers)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_the_accept_queue_length_is_read_from_the_listening_socket():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        clients = [socket.create_connection(listener.getsockname()) for _ in range(10)]
        try:
            assert accept_queue_length(listener) == 10
            assert (accept_share(listener, 2), accept_share(listener, 3)) == (5, 4)
            listener.accept()[0].close()
            assert accept_queue_length(listener) == 9
        finally:
            for client in clients:
                client.close()


def test_a_unix_listener_gives_no_length_and_a_share_of_one():
    with socket.socket(socket.AF_UNIX) as listener:
        assert accept_queue_length(listener) is None
        assert accept_share(listener, 2) == 1


def test_one_of_two_workers_takes_half_of_a_waiting_burst_in_one_turn():
    assert accepted_in_one_turn(2) == 10
    assert accepted_in_one_turn(4) == 5


def test_a_single_worker_takes_the_whole_burst_in_one_turn():
    assert accepted_in_one_turn(1) == 20


def server_side_inode(client: socket.socket) -> int | None:
    """The inode of the server's end of a loopback connection, from /proc/net/tcp."""
    client_port, server_port = client.getsockname()[1], client.getpeername()[1]
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, peer, inode = (
            int(fields[1].split(":")[1], 16),
            int(fields[2].split(":")[1], 16),
            int(fields[9]),
        )
        if (local, peer) == (server_port, client_port) and inode:  # 0: a closed one, left over
            return inode
    return None


def worker_holding(client: socket.socket, workers: list[int]) -> int | None:
    inode = server_side_inode(client)
    for pid in workers:
        fds = f"/proc/{pid}/fd"
        for fd in os.listdir(fds):
            try:
                if os.readlink(f"{fds}/{fd}") == f"socket:[{inode}]":
                    return pid
            except FileNotFoundError:
                pass
    return None


def answered(client: socket.socket) -> socket.socket:
    client.sendall(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n")
    assert read_one_response(client).startswith(b"HTTP/1.1 200")
    return client


def test_a_burst_of_connections_is_answered_and_spread_over_both_workers(app_server_factory):
    server = app_server_factory(workers=2)
    workers = sorted(gunicorn_workers(server.process.pid))
    address = ("127.0.0.1", server.port)
    # The app answers once one worker does: wait until both accept, one connection at a time.
    probes: list[socket.socket] = []

    def both_serve() -> bool:
        probes.append(answered(socket.create_connection(address, timeout=15)))
        return {worker_holding(probe, workers) for probe in probes} >= set(workers)

    try:
        assert wait_until(both_serve, timeout=30, interval=0.05)
    finally:
        for probe in probes:
            probe.close()
    clients = [socket.create_connection(address, timeout=15) for _ in range(64)]
    try:
        for client in clients:
            answered(client)
        held = [worker_holding(client, workers) for client in clients]
    finally:
        for client in clients:
            client.close()
    counts = [held.count(pid) for pid in workers]
    assert sum(counts) == 64, held
    assert min(counts) >= 8, f"one worker took nearly all the connections: {counts}"
