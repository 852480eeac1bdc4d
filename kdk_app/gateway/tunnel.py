"""WebSocket upgrades (Socket.IO included) tunnelled to the upstream as raw bytes.

The WSGI server hands us the client's socket (``gunicorn.socket``, ``werkzeug.socket``, or
gevent pywsgi's input file); we send the upgrade request upstream and then copy bytes both
ways until either side closes. The upstream's own ``101 Switching Protocols`` (or refusal)
goes back to the client untouched.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from ..core import errors
from .errors import GatewayTimeout, error_response
from .headers import request_headers
from .table import ProxyRule

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024


def is_websocket_upgrade(environ: dict[str, Any]) -> bool:
    connection = {v.strip().lower() for v in environ.get("HTTP_CONNECTION", "").split(",")}
    return environ.get("HTTP_UPGRADE", "").lower() == "websocket" and "upgrade" in connection


def client_socket(environ: dict[str, Any]) -> tuple[socket.socket | None, str]:
    """The raw client socket and which server gave it (simple-websocket looks in the same places)."""
    if "gunicorn.socket" in environ:
        return environ["gunicorn.socket"], "gunicorn"
    if "werkzeug.socket" in environ:
        return environ["werkzeug.socket"], "werkzeug"
    stream = environ.get("wsgi.input")
    if stream is not None and not hasattr(stream, "raw") and hasattr(stream, "rfile"):
        stream = stream.rfile
    raw = getattr(stream, "raw", None)
    sock = getattr(raw, "_sock", None)
    return (sock, "gevent") if isinstance(sock, socket.socket) else (None, "")


def _pump(source: socket.socket, destination: socket.socket, done: threading.Event) -> None:
    try:
        while True:
            data = source.recv(CHUNK)
            if not data:
                break
            destination.sendall(data)
    except OSError:
        pass
    finally:
        done.set()


def tunnel(environ: dict[str, Any], start_response: Callable[..., Any], rule: ProxyRule, target: str) -> Any:
    client, mode = client_socket(environ)
    if client is None:
        return error_response(start_response, errors.BadGateway("This server cannot tunnel WebSockets"))
    try:
        upstream = socket.create_connection((rule.host, rule.port), timeout=rule.timeout)
    except OSError as exc:
        return error_response(start_response, GatewayTimeout(f"Upstream {rule.netloc} is unreachable: {exc}"))
    if rule.scheme == "https":
        import ssl

        upstream = ssl.create_default_context().wrap_socket(upstream, server_hostname=rule.host)
    head = [f"{environ.get('REQUEST_METHOD', 'GET')} {target} HTTP/1.1"]
    head += [f"{name}: {value}" for name, value in request_headers(environ, rule, upgrade=True)]
    try:
        upstream.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    except OSError as exc:
        upstream.close()
        return error_response(start_response, GatewayTimeout(f"Upstream {rule.netloc} failed: {exc}"))
    upstream.settimeout(None)  # a websocket may stay quiet for as long as it likes
    # Nothing the server buffered after the request head is lost: a client sends no frame
    # before it gets 101, and the 101 comes from the upstream through this tunnel.
    done = threading.Event()
    threading.Thread(target=_pump, args=(client, upstream, done), daemon=True).start()
    threading.Thread(target=_pump, args=(upstream, client, done), daemon=True).start()
    done.wait()
    for sock in (upstream, client):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    upstream.close()
    # The response went out raw: tell the server not to write one (as engineio does).
    if mode == "gunicorn":
        raise StopIteration()
    if mode == "werkzeug":
        raise ConnectionError()
    return []
