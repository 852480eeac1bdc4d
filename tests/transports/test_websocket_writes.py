"""The guarded workaround that makes simple-websocket write whole frames, and the answer bound.

These run in-process, on real gevent sockets: no server is needed to show that a plain
``send`` cuts a large frame short and that the patched socket does not.
"""

from __future__ import annotations

import inspect
import socket

import gevent
import gevent.event
import gevent.socket
import pytest
import simple_websocket.ws
from socketio import packet

from kdk_app.transports import websocket_writes
from kdk_app.transports.answer_size import bounded_packet_class, encoded_size
from kdk_app.transports.packets import FeathersPacket

FRAME = b"x" * (8 * 1024 * 1024)


def test_simple_websocket_still_writes_frames_with_send_so_the_patch_is_needed():
    # If this fails, simple-websocket changed how it writes: re-read simple_websocket/ws.py and
    # drop kdk_app/transports/websocket_writes.py once upstream writes with sendall.
    assert websocket_writes.shape_problem(simple_websocket.ws.Base) is None
    source = inspect.getsource(simple_websocket.ws.Base)
    assert "self.sock.send(" in source and "sendall" not in source


def test_apply_patches_once_and_is_idempotent():
    assert websocket_writes.apply() is True
    patched = simple_websocket.ws.Base.__init__
    assert getattr(patched, websocket_writes.MARKER) is True
    assert websocket_writes.apply() is True
    assert simple_websocket.ws.Base.__init__ is patched


class WritesWithSendall:
    def __init__(self, sock=None):
        self.sock = sock

    def send(self, data):
        self.sock.sendall(data)


class KeepsNoSocket:
    def __init__(self, connection=None):
        self.connection = connection


def test_patch_refuses_a_dependency_of_another_shape():
    assert "no longer needed" in websocket_writes.shape_problem(WritesWithSendall)
    assert "socket first" in websocket_writes.shape_problem(KeepsNoSocket)


def slow_pair() -> tuple[gevent.socket.socket, gevent.socket.socket]:
    writer, reader = gevent.socket.socketpair()
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    return writer, reader


def read_all(sock: gevent.socket.socket, size: int) -> int:
    received = 0
    while received < size:
        chunk = sock.recv(1024 * 1024)
        if not chunk:
            break
        received += len(chunk)
    return received


def test_plain_gevent_send_cuts_a_large_frame_short():
    writer, reader = slow_pair()
    try:
        assert writer.send(FRAME) < len(FRAME)  # why the workaround exists
    finally:
        writer.close()
        reader.close()


def test_whole_frame_socket_writes_an_8_mb_frame_completely():
    writer, reader = slow_pair()
    try:
        whole = websocket_writes.WholeFrameSocket(writer, websocket_writes._lock_for(gevent.event.Event))
        received = gevent.spawn(read_all, reader, len(FRAME))
        assert whole.send(FRAME) == len(FRAME)
        assert received.get(timeout=30) == len(FRAME)
        assert whole.fileno() == writer.fileno()  # everything else reaches the socket
    finally:
        writer.close()
        reader.close()


@pytest.fixture
def bounded():
    return bounded_packet_class(FeathersPacket, 1000)


def test_an_ack_within_the_bound_is_sent_unchanged(bounded):
    ack = bounded(packet.ACK, data=[None, {"text": "x" * 100}], id=3)
    assert ack.encode() == FeathersPacket(packet.ACK, data=[None, {"text": "x" * 100}], id=3).encode()


def test_an_ack_over_the_bound_answers_payload_too_large(bounded):
    encoded = bounded(packet.ACK, data=[None, {"text": "x" * 2000}], id=3).encode()
    decoded = FeathersPacket(encoded_packet=encoded)
    assert decoded.packet_type == packet.ACK and decoded.id == 3
    (error,) = decoded.data
    assert error["name"] == "PayloadTooLarge" and error["code"] == 413
    assert error["className"] == "payload-too-large"
    assert error["data"]["limit"] == 1000 and error["data"]["size"] > 1000


def test_an_event_over_the_bound_is_dropped(bounded, caplog):
    assert bounded(packet.EVENT, data=["messages created", {"text": "x" * 2000}]).encode() == []
    assert "dropped" in caplog.text


def test_the_bound_counts_utf8_bytes_not_characters():
    assert encoded_size("é" * 400, 1000) == 800
    assert encoded_size("x" * 400, 1000) == 400
