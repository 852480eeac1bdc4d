"""Socket.IO transport speaking the Feathers socket protocol (docs/protocol.md §4).

Every ``emit(method, path, ...args, ack)`` becomes a service call with ``provider="socketio"``;
the ack gets ``(None, result)`` or the error JSON. Handlers are registered on the
python-socketio server itself, with no Flask request context per message, because a socket
message is not an HTTP request and the context costs time on every call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask_socketio import SocketIO
from socketio import WSGIApp
from socketio.exceptions import ConnectionRefusedError

from ..channels import ChannelEmitter, Channels
from ..core import Application, errors
from ..core.protocol import check_arity, check_method, params_position
from ..core.serialization import FeathersJSON
from ..redis_client import RedisTimeouts
from ..request_id import with_request_id
from . import websocket_writes
from .answer_size import DEFAULT_MAX_ANSWER_SIZE, bounded_packet_class
from .client_script import client_paths, register_client_script
from .packets import MALFORMED, MALFORMED_AUTH, FeathersPacket
from .queues import message_queue, queue_url
from .wsgi import environ_headers

logger = logging.getLogger(__name__)

# Functions that may refuse or enrich a new connection: (connection, environ, auth) -> None.
ConnectHandler = Callable[[dict[str, Any], dict[str, Any], Any], None]


def route_socketio_paths_only(flask_app: Flask, path: str, *, serve_client: bool = True) -> None:
    """Send only Socket.IO requests through its WSGI middleware: it costs ~20 µs per request
    (a new class and an environ copy each time), which every REST call would pay otherwise.
    With ``serve_client``, the client's script below that path goes to Flask (client_script.py)."""
    middleware: WSGIApp = flask_app.wsgi_app  # what SocketIO(flask_app) put there
    flask_app_only = middleware.wsgi_app  # the Flask app the middleware wraps
    prefix = "/" + path.strip("/")
    to_flask = client_paths(prefix) if serve_client else frozenset()
    if serve_client:
        register_client_script(flask_app, prefix)

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path_info = environ.get("PATH_INFO", "")
        if (path_info == prefix or path_info.startswith(prefix + "/")) and path_info not in to_flask:
            return middleware(environ, start_response)
        return flask_app_only(environ, start_response)

    flask_app.wsgi_app = dispatch  # type: ignore[method-assign]


class SocketTransport:
    """The Socket.IO server of one process, its connections, and the glue to channels."""

    def __init__(
        self, flask_app: Flask, kdk: Application, channels: Channels, settings: dict[str, Any]
    ) -> None:
        self.kdk = kdk
        self.channels = channels
        self.connections: dict[str, dict[str, Any]] = {}
        self.connect_handlers: list[ConnectHandler] = []
        url = queue_url(kdk.settings)
        channel = settings.get("channel", "kdk-socketio")
        timeouts = RedisTimeouts.from_settings({"redis": kdk.get("redis") or {}})
        queue = message_queue(url, channel, timeouts)
        websocket_writes.apply()  # simple-websocket may cut large frames short under gevent
        self.socketio = SocketIO(
            flask_app,
            async_mode=settings.get("async_mode", "gevent"),
            path=settings.get("path", "/socket.io").strip("/"),
            # Set by create_app() from the `cors` setting; its middleware writes the headers.
            cors_allowed_origins=settings.get("cors_allowed_origins", "*"),
            cors_credentials=bool(settings.get("cors_credentials", False)),
            client_manager=queue,
            json=FeathersJSON,
            serializer=bounded_packet_class(
                FeathersPacket, settings.get("max_answer_size", DEFAULT_MAX_ANSWER_SIZE)
            ),
            ping_interval=settings.get("ping_interval", 25),
            ping_timeout=settings.get("ping_timeout", 20),
            max_http_buffer_size=int(settings.get("max_http_buffer_size", 1_000_000)),
            manage_session=False,
            always_connect=False,
            logger=False,
            engineio_logger=False,
        )
        self.server = self.socketio.server
        route_socketio_paths_only(
            flask_app,
            settings.get("path", "/socket.io"),
            serve_client=bool(settings.get("serve_client", True)),
        )
        self.server.on("connect", self._on_connect)
        self.server.on("disconnect", self._on_disconnect)
        self.server.on("*", with_request_id(self._on_event))  # each call: its own id in the logs
        channels.emitters.append(ChannelEmitter(self.emit, self.emit_local))
        channels.enter_room = lambda conn, room: self.server.enter_room(conn["sid"], room)
        channels.leave_room = lambda conn, room: self.server.leave_room(conn["sid"], room)
        kdk.on("stopping", lambda _app: self.close_connections())
        stop_publisher = getattr(queue, "stop_publisher", None)
        if stop_publisher is not None:  # a stopping worker sends its queued publishes first
            kdk.on("teardown", lambda _app: stop_publisher())

    def emit(self, event: str, payload: Any, rooms: list[str]) -> None:
        self.socketio.emit(event, payload, to=rooms)

    def emit_local(self, event: str, payload: Any, rooms: list[str]) -> None:
        """To this process's clients only, past the message queue."""
        self.server.emit(event, payload, to=rooms, namespace="/", ignore_queue=True)

    # --- connection lifecycle ------------------------------------------------------------
    def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if auth == MALFORMED_AUTH:
            error = errors.BadRequest("Invalid handshake: malformed auth payload")
            raise ConnectionRefusedError(error.message, error.to_json())
        connection: dict[str, Any] = {"provider": "socketio", "headers": environ_headers(environ), "sid": sid}
        for provide in self.kdk.params_providers:
            provide(environ, connection)  # what they add, every call of this connection gets
        for handler in self.connect_handlers:
            handler(connection, environ, auth)  # may raise ConnectionRefusedError
        self.connections[sid] = connection
        self.kdk.emit("connection", connection)

    def _on_disconnect(self, sid: str, *reason: Any) -> None:
        connection = self.connections.pop(sid, None)
        if connection is not None:
            self.channels.disconnected(connection)
            self.kdk.emit("disconnect", connection)

    def close_connections(self) -> None:
        """Drop every Engine.IO session of this process as a lost transport: the websocket is
        closed, a long poll ends empty. Clients reconnect at once, to a worker that still
        serves. A Socket.IO disconnect would tell them they were dropped for good, and
        python-socketio's client does not come back after Engine.IO's CLOSE packet either."""
        for session in list(self.server.eio.sockets.values()):
            session.close(wait=False, abort=True)

    def disconnect(self, connection: dict[str, Any]) -> None:
        self.server.disconnect(connection["sid"])

    # --- calls ---------------------------------------------------------------------------
    def _on_event(self, method: str, sid: str, *args: Any) -> Any:
        if method == MALFORMED:
            return errors.BadRequest(args[0] if args else "Invalid frame").to_json()
        try:
            return (None, self.handle_call(sid, method, list(args)))
        except errors.FeathersError as error:
            return error.to_json()
        except Exception as error:  # never crash the worker, never leak a stack
            logger.exception("socket call %s failed", method)
            return errors.convert(error).to_json()

    def handle_call(self, sid: str, method: str, args: list[Any]) -> Any:
        connection = self.connections.get(sid)
        if connection is None:
            raise errors.NotAuthenticated("Connection is not established")
        if not args or not isinstance(args[0], str):
            raise errors.BadRequest("Invalid service path")
        path, args = args[0], args[1:]
        found = self.kdk.lookup(path)
        if found is None:
            raise errors.NotFound(f"Service '{path.strip('/') or '/'}' not found")
        service, route = found
        check_method(service.path, method, service.methods)
        names = check_arity(method, args)
        position = params_position(method)  # the query travels where params go
        args += [None] * (len(names) - len(args))
        query = args[position]
        if query is None:
            query = {}
        if not isinstance(query, dict):
            raise errors.BadRequest("Invalid query: must be an object")
        params = {
            **{k: v for k, v in connection.items() if k not in ("sid", "channels")},
            "query": query,
            "route": route,
            "connection": connection,
        }
        args[position] = params
        context = service.run(method, *args)
        return context.safe_result
