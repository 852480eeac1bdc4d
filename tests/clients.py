"""Python clients the tests drive servers with (shared by several test modules)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import socketio


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is truthy or ``timeout`` passes; never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def read_one_response(sock: socket.socket) -> bytes:
    """Read one HTTP/1.1 answer with a Content-Length body off a raw socket; returns its head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    fields = [line.split(b":", 1) for line in head.split(b"\r\n")[1:]]
    length = next(int(value) for name, value in fields if name.strip().lower() == b"content-length")
    while len(body) < length:
        body += sock.recv(65536)
    return head


class Listener:
    """A python-socketio client speaking the Feathers protocol; records every event by name."""

    def __init__(
        self,
        url: str,
        transports: Iterable[str] = ("websocket",),
        *,
        auth: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        reconnection: bool = True,
    ) -> None:
        self.events: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        self.disconnected = threading.Event()
        self.client = socketio.Client(
            reconnection=reconnection, reconnection_delay=0.2, reconnection_delay_max=1
        )
        self.client.on("*", self._record)
        self.client.on("disconnect", lambda *args: self.disconnected.set())
        self.client.connect(
            url, transports=list(transports), auth=auth, headers=headers or {}, wait_timeout=10
        )

    def _record(self, event: str, *args: Any) -> None:
        with self.lock:
            self.events.append((event, args[0] if args else None))

    def named(self, name: str) -> list[Any]:
        with self.lock:
            return [data for event, data in self.events if event == name]

    def call(self, method: str, *args: Any, timeout: float = 10) -> Any:
        """The raw ack: ``(None, result)`` or the error dict."""
        return self.client.call(method, args, timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
