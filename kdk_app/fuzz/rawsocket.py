"""A bare Engine.IO 4 websocket client: sends any text or bytes as one message, reads what comes.

A real Socket.IO client would refuse to send most of what the fuzzer needs to send, so this one
speaks the protocol by hand: the open packet, the namespace connect, pings, events and acks.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

from simple_websocket import Client, ConnectionClosed


class SocketClosed(Exception):
    """The server closed the websocket."""


class RawSocket:
    def __init__(self, base_url: str, *, path: str = "/socket.io", timeout: float = 5.0) -> None:
        parts = urlsplit(base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        url = f"{scheme}://{parts.netloc}{path.rstrip('/')}/?EIO=4&transport=websocket"
        self.timeout = timeout
        self.ws = Client.connect(url)
        # Ask for the namespace at once: when the Engine.IO opening comes in the same segment
        # as the HTTP upgrade, simple-websocket only delivers it once more data arrives.
        self.send("40")
        opening = self._next(timeout)
        if not isinstance(opening, str) or not opening.startswith("0"):
            raise SocketClosed(f"unexpected Engine.IO opening {opening!r}")
        connected = self._next(timeout)
        if not isinstance(connected, str) or not connected.startswith("40"):
            raise SocketClosed(f"namespace connect refused: {connected!r}")
        self.pending: dict[int, Any] = {}

    @property
    def connected(self) -> bool:
        return bool(self.ws.connected)

    def send(self, data: str | bytes) -> None:
        try:
            self.ws.send(data)
        except (ConnectionClosed, OSError) as exc:
            raise SocketClosed(str(exc)) from None

    def _next(self, timeout: float) -> str | bytes | None:
        """The next message that is not a ping (pings are answered), or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                message = self.ws.receive(timeout=left)
            except ConnectionClosed:
                raise SocketClosed("closed by the server") from None
            if message is None:
                if not self.ws.connected:
                    raise SocketClosed("closed by the server")
                return None
            if message == "2":
                self.send("3")
                continue
            return message

    def wait_ack(self, ack_id: int, timeout: float | None = None) -> Any:
        """The arguments of the ack for ``ack_id``; None if it did not come in time."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while ack_id not in self.pending:
            message = self._next(max(0.0, deadline - time.monotonic()))
            if message is None:
                return None
            self._keep_ack(message)
        return self.pending.pop(ack_id)

    def _keep_ack(self, message: str | bytes) -> None:
        if not isinstance(message, str) or not message.startswith("43"):
            return  # events and other packets are not what the caller waits for
        digits = len(message) - len(message[2:].lstrip("0123456789")) - 2
        if digits:
            self.pending[int(message[2 : 2 + digits])] = json.loads(message[2 + digits :])

    def call(self, ack_id: int, method: str, *args: Any, timeout: float | None = None) -> Any:
        self.send(f"42{ack_id}" + json.dumps([method, *args]))
        return self.wait_ack(ack_id, timeout)

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # already closed by the other side
            pass
