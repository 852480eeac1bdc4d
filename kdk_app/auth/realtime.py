"""Authentication state of Socket.IO connections (docs/protocol.md §5.4).

* Login (``create authentication`` on the socket, or a token in the handshake) stores
  ``connection["user"]`` and ``connection["authentication"] = {strategy: "jwt", accessToken}``,
  so every later call on that socket carries them in ``params``; leaves ``anonymous``; joins
  ``authenticated``, ``user:<id>`` and the room of the user's role (``admins`` for ``admin``);
  and starts a timer that disconnects the socket when the token expires.
* Logout removes the state and the timer, leaves every room and rejoins ``anonymous``.
* Changes of users (``patched``, ``updated``, ``removed`` on the users service of this
  process, which includes those synced from other instances, and the app event
  ``users-changed`` for changes on other apps of the distribution key) are followed: each
  socket logged in as such a user verifies its token and reloads the user now, rejoining the
  rooms of a new role, or is logged out when the user is gone.
* Disconnect cancels the timer. Rooms are Socket.IO rooms of the worker that holds the socket;
  events reach them from any worker or host through the Socket.IO message queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from socketio.exceptions import ConnectionRefusedError

from ..core import Application
from ..core.errors import FeathersError

if TYPE_CHECKING:
    from ..channels import Channels
    from .service import AuthenticationService

logger = logging.getLogger(__name__)

AUTH_SCHEMES = ("bearer", "jwt")
USER_CHANGES = frozenset({"updated", "patched", "removed"})
USERS_CHANGED = "users-changed"  # app event (user ids, event name): users changed elsewhere


def token_from_header(value: Any) -> str | None:
    """``Bearer <t>``, ``JWT <t>`` (any case) or a bare token; None for other schemes."""
    if not isinstance(value, str) or not value.strip():
        return None
    parts = value.strip().split()
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2 and parts[0].lower() in AUTH_SCHEMES:
        return parts[1]
    return None


def user_room(user_id: Any) -> str:
    return f"user:{user_id}"


class SocketAuth:
    """Joins rooms, runs expiry timers and honours handshake tokens for one Socket.IO server."""

    def __init__(
        self,
        app: Application,
        auth: AuthenticationService,
        channels: Channels,
        transport: Any,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        settings = dict(settings or {})
        self.app = app
        self.auth = auth
        self.channels = channels
        self.transport = transport
        self.anonymous_room: str = settings.get("anonymous_room", "anonymous")
        self.authenticated_room: str = settings.get("authenticated_room", "authenticated")
        self.role_rooms: dict[str, str] = dict(settings.get("role_rooms") or {})
        self.timers: dict[str, threading.Timer] = {}
        self._pending: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def install(self) -> None:
        self.transport.connect_handlers.append(self.handshake)
        self.app.on("connection", self.on_connection)
        self.app.on("disconnect", self.on_disconnect)
        self.app.on("teardown", lambda app: self.stop())
        users = self.auth.users
        for event in USER_CHANGES:
            users.on(event, self._on_user_event)
        self.app.on(USERS_CHANGED, lambda ids, event=None: self.follow(ids))

    def role_room(self, role: str) -> str:
        return self.role_rooms.get(role, f"role:{role}")

    # --- handshake -----------------------------------------------------------------------
    def handshake(self, connection: dict[str, Any], environ: Mapping[str, Any], auth: Any) -> None:
        """A connect handler: log in with a handshake token if any (the peer address and the
        header's token are already in ``connection``, from the app's params providers)."""
        token = None
        if isinstance(auth, Mapping) and isinstance(auth.get("accessToken"), str):
            token = auth["accessToken"]
        if token is None:
            token = token_from_header(environ.get("HTTP_AUTHORIZATION"))
        if not token:
            return
        try:
            result = self.auth.jwt(token)
        except FeathersError as error:
            raise ConnectionRefusedError(error.message, error.to_json()) from None
        connection["user"] = result[self.auth.entity]
        connection["authentication"] = {"strategy": "jwt", "accessToken": token}
        self._pending[connection["sid"]] = result

    def on_connection(self, connection: dict[str, Any]) -> None:
        # After the app's own "connection" listeners (which join `anonymous`).
        sid = connection.get("sid")
        result = self._pending.pop(sid, None) if sid is not None else None
        if result is None:
            return
        self.login(connection, result)
        params = {k: v for k, v in connection.items() if k not in ("sid", "channels")}
        self.app.emit("login", result, {**params, "connection": connection})

    # --- login, logout -------------------------------------------------------------------
    def login(self, connection: dict[str, Any], result: Mapping[str, Any]) -> None:
        user = result[self.auth.entity]
        user_id = self.auth.user_id(user)
        role = self.auth.permissions.role_of(user)
        previous = connection.get("user")
        if previous is not None and (
            self.auth.user_id(previous) != user_id or self.auth.permissions.role_of(previous) != role
        ):
            self.channels.leave(connection)  # another user or role on this socket: drop every room
        connection["user"] = user
        connection["authentication"] = {"strategy": "jwt", "accessToken": result["accessToken"]}
        self.channels.leave(connection, self.anonymous_room)
        self.channels.join(connection, self.authenticated_room, user_room(user_id), self.role_room(role))
        payload = (result.get("authentication") or {}).get("payload") or {}
        self.start_timer(connection, payload.get("exp"))

    def logout(self, connection: dict[str, Any]) -> None:
        self.cancel_timer(connection.get("sid"))
        had_user = connection.pop("user", None) is not None
        connection.pop("authentication", None)
        if had_user:
            self.channels.leave(connection)
            self.channels.join(connection, self.anonymous_room)

    # --- following changes of users ------------------------------------------------------
    def _on_user_event(self, data: Any, context: Any = None) -> None:
        records = data if isinstance(data, list) else [data]
        self.follow(self.auth.user_id(r) for r in records if isinstance(r, Mapping))

    def follow(self, user_ids: Iterable[str]) -> None:
        """Bring the sockets logged in as these users in line with the users service now."""
        wanted = {str(i) for i in user_ids}
        if not wanted:
            return
        for connection in list(self.transport.connections.values()):
            user = connection.get("user")
            if not isinstance(user, Mapping) or self.auth.user_id(user) not in wanted:
                continue
            token = (connection.get("authentication") or {}).get("accessToken")
            try:
                result = self.auth.jwt(token)  # the token again, and the user as it is now
            except Exception as exc:  # gone, or cannot be checked: fail closed
                logger.info("socket %s: its user changed and %s: logged out", connection.get("sid"), exc)
                self.logout(connection)
                continue
            self.login(connection, result)

    def on_disconnect(self, connection: dict[str, Any]) -> None:
        sid = connection.get("sid")
        if sid is not None:
            self._pending.pop(sid, None)
        self.cancel_timer(sid)

    # --- expiry --------------------------------------------------------------------------
    def start_timer(self, connection: dict[str, Any], exp: Any) -> None:
        sid = connection.get("sid")
        if sid is None or not isinstance(exp, (int, float)):
            return
        delay = max(0.0, float(exp) - time.time())
        timer = threading.Timer(delay, self.expire, args=(sid,))
        timer.daemon = True
        with self._lock:
            old = self.timers.pop(sid, None)
            self.timers[sid] = timer
        if old is not None:
            old.cancel()
        timer.start()

    def cancel_timer(self, sid: str | None) -> None:
        with self._lock:
            timer = self.timers.pop(sid, None) if sid is not None else None
        if timer is not None:
            timer.cancel()

    def expire(self, sid: str) -> None:
        with self._lock:
            self.timers.pop(sid, None)
        connection = self.transport.connections.get(sid)
        if connection is None:
            return
        logger.info("access token of socket %s expired: disconnecting", sid)
        connection.pop("user", None)
        connection.pop("authentication", None)
        try:
            self.transport.disconnect(connection)
        except Exception:
            logger.exception("could not disconnect socket %s", sid)

    def stop(self) -> None:
        with self._lock:
            timers, self.timers = list(self.timers.values()), {}
        for timer in timers:
            timer.cancel()
