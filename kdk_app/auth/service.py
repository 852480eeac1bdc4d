"""The ``authentication`` service (docs/protocol.md §5.2–5.4): local and jwt strategies, login, logout.

``create({strategy, ...})`` authenticates and answers ``{accessToken, authentication, user}``
(a new token for ``local``; the same token for ``jwt``). ``remove(null)`` re-verifies the
caller's token and answers the same body as a jwt authentication (logout). For a socket
connection (``params["connection"]``), login stores ``user``/``authentication`` on the
connection, joins its rooms and starts the expiry timer; logout undoes it. The app emits
``login``/``logout`` as ``(auth_result, params)`` after external calls.

Entities are read with internal calls, so the users service's own hooks never see a client
here; the user in every result, in ``params["user"]`` and on a connection has the password
and the service's ``protected_fields`` removed. Only the local strategy reads the stored
hash, through the adapter's raw ``_find``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..core import Application, HookContext
from ..core.errors import BadRequest, NotAuthenticated, NotFound
from ..transports.client_address import ClientAddress
from .passwords import Passwords
from .permissions import Permissions
from .throttle import LoginThrottle
from .tokens import TokenManager

if TYPE_CHECKING:
    from .realtime import SocketAuth

logger = logging.getLogger(__name__)

NO_STRATEGY = "Invalid authentication information (no `strategy` set)"
STRATEGY_NOT_ALLOWED = "Invalid authentication information (strategy not allowed in authStrategies)"
INVALID_LOGIN = "Invalid login"


def _no_event(context: HookContext) -> None:
    # Authentication results carry tokens: never publish them, never put them on the sync bus.
    context.event = None


class AuthenticationService:
    """Implementation of the ``authentication`` service; also ``kdk.authentication``."""

    def __init__(
        self,
        app: Application,
        settings: Mapping[str, Any],
        *,
        tokens: TokenManager,
        passwords: Passwords,
        throttle: LoginThrottle,
        permissions: Permissions,
        client_address: ClientAddress | None = None,
    ) -> None:
        self.app = app
        # How REST and socket handshakes find the client's address for the throttles.
        self.client_address = client_address or ClientAddress()
        self.settings = dict(settings)
        self.tokens = tokens
        self.passwords = passwords
        self.throttle = throttle
        self.permissions = permissions
        self.entity: str = self.settings.get("entity") or "user"
        self.service_path: str = self.settings.get("service") or "users"
        self.strategies: list[str] = list(self.settings.get("auth_strategies") or ("jwt", "local"))
        local = dict(self.settings.get("local") or {})
        self.username_field: str = local.get("username_field", "email")
        self.password_field: str = local.get("password_field", "password")
        self.normalize_username: bool = bool(local.get("normalize", True))
        self.sockets: SocketAuth | None = None

    # --- wiring --------------------------------------------------------------------------
    def setup(self, app: Application, path: str) -> None:
        service = app.service(path)
        service.hooks({"before": {"all": [_no_event]}})
        service.publish(lambda data, context: None)

    @property
    def users(self) -> Any:
        return self.app.service(self.service_path)

    def user_id(self, user: Mapping[str, Any]) -> str:
        id_field = getattr(self.users, "id", None) or "_id"
        value = user.get(id_field, user.get("_id", user.get("id")))
        return str(value)

    def hidden_fields(self) -> set[str]:
        options = getattr(self.users.impl, "options", None) or {}
        return {self.password_field, *(options.get("protected_fields") or ())}

    def safe_user(self, user: Mapping[str, Any]) -> dict[str, Any]:
        hidden = self.hidden_fields()
        return {k: v for k, v in user.items() if k not in hidden}

    def normalize(self, username: str) -> str:
        return username.strip().lower() if self.normalize_username else username

    # --- strategies ----------------------------------------------------------------------
    def authenticate(
        self,
        authentication: Any,
        params: Mapping[str, Any],
        strategies: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Run the strategy named in ``authentication``; no token is issued here."""
        allowed = list(strategies) if strategies is not None else self.strategies
        if not isinstance(authentication, Mapping) or not authentication.get("strategy"):
            raise NotAuthenticated(NO_STRATEGY)
        strategy = authentication["strategy"]
        if strategy not in allowed or strategy not in ("jwt", "local"):
            raise NotAuthenticated(STRATEGY_NOT_ALLOWED)
        if strategy == "local":
            return self.local(authentication, params)
        return self.jwt(authentication.get("accessToken"))

    def jwt(self, token: Any) -> dict[str, Any]:
        if not isinstance(token, str) or not token:
            raise NotAuthenticated("No access token")
        payload = self.tokens.verify(token)
        user = self.load_user(payload["sub"])
        return {
            "accessToken": token,
            "authentication": {"strategy": "jwt", "accessToken": token, "payload": payload},
            self.entity: user,
        }

    def load_user(self, user_id: str) -> dict[str, Any]:
        try:
            user = self.users.get(user_id, {"query": {}})
        except (NotFound, BadRequest):
            raise NotAuthenticated("Could not find entity") from None
        if not isinstance(user, Mapping):
            raise NotAuthenticated("Could not find entity")
        return self.safe_user(user)

    def local(self, data: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
        username = data.get(self.username_field)
        password = data.get(self.password_field)
        address = params.get("remote_addr")
        # Strings only: an object such as {"$gt": ""} never reaches a query.
        if not isinstance(username, str) or not username.strip() or not isinstance(password, str):
            self.throttle.attempt(None, address)
            raise NotAuthenticated(INVALID_LOGIN)
        username = self.normalize(username)
        # Counted before the hash is verified, so parallel guesses cannot all pass the limit.
        self.throttle.attempt(username, address)
        user = self._find_user(username)
        if user is None:
            self.passwords.burn(password)  # the cost of a verify: no user is no faster
            raise NotAuthenticated(INVALID_LOGIN)
        stored = user.get(self.password_field)
        if not (self.passwords.verify(stored, password) and bool(password)):
            raise NotAuthenticated(INVALID_LOGIN)
        self.throttle.success(username, address)
        self._rehash_if_needed(user, stored, password)
        return {"authentication": {"strategy": "local"}, self.entity: self.safe_user(user)}

    def _find_user(self, username: str) -> dict[str, Any] | None:
        # The raw adapter method: the users service's hooks strip the password hash from every
        # result (so no event or internal caller ever sees it); only this lookup reads it.
        users = self.users
        raw_find = getattr(users.impl, "_find", None) or users.find
        query = {self.username_field: username, "$limit": 1}
        try:
            found = raw_find({"query": query, "paginate": False})
        except BadRequest:  # e.g. not a well-formed email for the schema: nobody has it
            return None
        if isinstance(found, Mapping):
            found = found.get("data") or []
        return dict(found[0]) if found else None

    def _rehash_if_needed(self, user: Mapping[str, Any], stored: Any, password: str) -> None:
        if not isinstance(stored, str) or not self.passwords.needs_rehash(stored):
            return
        raw_patch = getattr(self.users.impl, "_patch", None)
        if raw_patch is None:
            return
        try:  # raw: no hooks (which would hash again), no event
            raw_patch(self.user_id(user), {self.password_field: self.passwords.hash(password)}, {"query": {}})
        except Exception:
            logger.warning("could not upgrade the password hash of a user", exc_info=True)

    # --- the service methods -------------------------------------------------------------
    def create(self, data: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        params = params or {}
        if not isinstance(data, Mapping) or not data.get("strategy"):
            raise NotAuthenticated(NO_STRATEGY)
        if data["strategy"] not in self.strategies:
            raise NotAuthenticated(STRATEGY_NOT_ALLOWED)
        result = self.authenticate(data, params, self.strategies)
        if not result.get("accessToken"):
            token, payload = self.tokens.create(self.user_id(result[self.entity]))
            result = {
                "accessToken": token,
                **result,
                "authentication": {**result["authentication"], "payload": payload},
            }
        if params.get("provider"):
            connection = params.get("connection")
            if connection is not None and self.sockets is not None:
                self.sockets.login(connection, result)
            self.app.emit("login", result, params)
        return result

    def remove(self, id: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        params = params or {}
        connection = params.get("connection")
        try:
            authentication = params.get("authentication")
            token = authentication.get("accessToken") if isinstance(authentication, Mapping) else None
            if not token:
                raise NotAuthenticated("Not authenticated")
            if id is not None and id != token:
                raise NotAuthenticated("Invalid access token")
            result = self.jwt(token)
        finally:
            # Even a failed logout (an expired token) logs the socket out.
            if connection is not None and self.sockets is not None:
                self.sockets.logout(connection)
        if params.get("provider"):
            self.app.emit("logout", result, params)
        return result
