"""Accepted connections that know whether they sit idle between two requests, and the server
that hands them out: what lets a stopping worker close idle keep-alive connections at once
(kdk_app/gunicorn_worker.py) while one that has read part of a request still gets its answer."""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
from typing import Any

from gevent.server import StreamServer
from gevent.socket import socket as GeventSocket
from gevent.ssl import SSLSocket

from .listen_queue import accept_share


class IdleWatch:
    """Knows whether a connection waits for a request it has not started to read, and shuts
    such a connection on a stop. Mixed into the accepted plain-TCP and TLS sockets."""

    idle: bool

    def recv(self, *args: Any) -> bytes:
        data = super().recv(*args)  # type: ignore[misc]
        self.idle = False
        return data

    def buffered(self) -> int:
        """Bytes read off the socket by this object and not handed out yet."""
        return 0

    def close_if_idle(self) -> None:
        """Shut the read side of an idle connection: its pending read ends, so does the loop."""
        if self.idle and not self.buffered() and not bytes_waiting(self):
            try:
                # The OS socket's own shutdown: the pending read wakes on the EOF and returns
                # b"" (under TLS too), and the loop ends quietly. gevent's shutdown would make
                # that read raise (EBADF, logged as a socket error), and SSLSocket's would drop
                # the TLS state under it.
                self._sock.shutdown(socket.SHUT_RD)  # type: ignore[attr-defined]
            except OSError:
                pass  # already closed by the client


class WatchedConnection(IdleWatch, GeventSocket):
    """An accepted plain-TCP connection."""

    __slots__ = ("idle",)


class WatchedTLSConnection(IdleWatch, SSLSocket):
    """An accepted TLS connection (gunicorn with ``certfile``): the context builds it."""

    def buffered(self) -> int:
        return int(self.pending())  # decrypted, so no longer counted by the kernel


def bytes_waiting(sock: Any) -> int:
    """Bytes received by the kernel and not read yet (a request arriving as we stop)."""
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0])
    except OSError:
        return 0


class WatchingServer(StreamServer):
    """gevent's StreamServer, handing out WatchedConnection sockets. With ``sharing_workers``
    above one, each turn accepts this worker's share of the queue (kdk_app/listen_queue.py)."""

    sharing_workers = 1

    def _do_read(self) -> None:
        if self.sharing_workers > 1:
            self.max_accept = accept_share(self.socket, self.sharing_workers)
        super()._do_read()

    def do_read(self) -> tuple[GeventSocket, Any] | None:
        accepted = super().do_read()
        if accepted is None:
            return None
        sock, address = accepted
        return WatchedConnection(sock.family, sock.type, sock.proto, fileno=sock.detach()), address
