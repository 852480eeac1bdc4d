"""Whole-frame writes for simple-websocket, the WebSocket server python-engineio uses under gevent.

simple-websocket 1.1 writes each frame with ``sock.send(frame)`` and ignores the count it
returns. On a gevent socket (``kdk serve``, gunicorn's gevent worker) ``send`` makes one
non-blocking attempt once the socket is writable, so a frame of a few MB is usually cut short:
the client then waits for the rest of it, and the ack never arrives.

:func:`apply` wraps the socket each ``simple_websocket.ws.Base`` is built with, so that
``send`` means ``sendall`` under a per-connection lock (a pong or a close frame written by the
reader must not land in the middle of a large frame). It checks first that the dependency still
writes with ``self.sock.send(...)``; when it does not (a new release writes with ``sendall``, or
the class changed), it logs why and leaves the dependency alone.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from typing import Any

logger = logging.getLogger(__name__)

# Marks the patched constructor, so applying twice changes nothing.
MARKER = "__kdk_whole_frame_writes__"


class WholeFrameSocket:
    """A socket whose ``send`` writes all the data or raises, one frame at a time."""

    def __init__(self, sock: Any, lock: Any) -> None:
        self._sock = sock
        self._lock = lock

    def send(self, data: bytes, flags: int = 0) -> int:
        with self._lock:
            self._sock.sendall(data, flags)
        return len(data)

    def __getattr__(self, name: str) -> Any:  # recv, close, fileno (for selectors), ...
        return getattr(self._sock, name)


def _lock_for(event_class: Any) -> Any:
    """A lock of the same concurrency model as the connection's events: a real thread lock
    held by a greenlet waiting on a full socket would block every other greenlet."""
    if (getattr(event_class, "__module__", None) or "").startswith("gevent"):
        import gevent.lock

        return gevent.lock.Semaphore()
    return threading.Lock()


def shape_problem(base: Any) -> str | None:
    """Why ``base`` is not the class this patch was written for, or None when it is."""
    try:
        parameters = list(inspect.signature(base.__init__).parameters)
        source = inspect.getsource(base)
    except (TypeError, ValueError, OSError) as exc:
        return f"cannot inspect simple_websocket.ws.Base ({exc})"
    if parameters[:2] != ["self", "sock"]:
        return f"Base.__init__ no longer takes the socket first (parameters: {parameters})"
    if "self.sock = sock" not in source:
        return "Base no longer keeps its socket in self.sock"
    if "sendall" in source:
        return "Base now writes with sendall: this workaround is no longer needed, remove it"
    if "self.sock.send(" not in source:
        return "Base no longer writes with self.sock.send(...)"
    return None


def apply() -> bool:
    """Make simple-websocket write whole frames; True when the patch is in place."""
    try:
        from simple_websocket import ws
    except ImportError:  # engineio then uses another WebSocket server
        return False
    base = getattr(ws, "Base", None)
    if base is None:
        logger.error("simple_websocket.ws.Base is gone: large socket answers may be cut short")
        return False
    original = base.__init__
    if getattr(original, MARKER, False):
        return True
    problem = shape_problem(base)
    if problem is not None:
        logger.error("not patching simple-websocket frame writes: %s", problem)
        return False

    @functools.wraps(original)
    def __init__(self: Any, sock: Any = None, *args: Any, **kwargs: Any) -> None:
        if sock is not None and not isinstance(sock, WholeFrameSocket):
            sock = WholeFrameSocket(sock, _lock_for(kwargs.get("event_class")))
        original(self, sock, *args, **kwargs)

    setattr(__init__, MARKER, True)
    base.__init__ = __init__
    logger.debug("simple-websocket now writes whole frames (sendall)")
    return True
