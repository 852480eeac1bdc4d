"""``configure_authentication``: the authentication service and its glue to REST and sockets."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from ..core import Application
from ..core.errors import NotAuthenticated
from ..core.serialization import dumps
from ..redis_client import shared_dev_secret
from ..transports.client_address import DEFAULT_TRUSTED_PROXIES, ClientAddress
from .passwords import Passwords
from .permissions import Permissions
from .realtime import SocketAuth, token_from_header
from .service import AuthenticationService
from .throttle import LoginThrottle
from .tokens import TokenManager

logger = logging.getLogger(__name__)

MIN_SECRET_LENGTH = 32
DEV_SECRET_KEY = "kdk:auth:dev-secret"


def resolve_secret(settings: Mapping[str, Any]) -> str:
    """``authentication.secret`` (``JWT_SECRET``); in development a generated one with a
    warning; in production (``KDK_ENV=production``) none is an error."""
    auth = settings.get("authentication") or {}
    secret = auth.get("secret")
    env = settings.get("env") or "development"
    if secret:
        if len(str(secret)) < MIN_SECRET_LENGTH:
            logger.warning("the JWT secret is shorter than %d characters", MIN_SECRET_LENGTH)
        return str(secret)
    if env == "production":
        raise RuntimeError("No JWT secret: set JWT_SECRET (authentication.secret) to run in production")
    redis_url = (settings.get("redis") or {}).get("url")
    shared = shared_dev_secret(redis_url, DEV_SECRET_KEY) if redis_url else None
    if shared:
        logger.warning(
            "No JWT secret configured (JWT_SECRET): using a generated development secret shared "
            "through Redis (%s). Never run like this in production.",
            DEV_SECRET_KEY,
        )
        return shared
    logger.warning(
        "No JWT secret configured (JWT_SECRET): using a random secret for this process; tokens "
        "will not survive a restart nor work on another process. Never run like this in production."
    )
    return secrets.token_urlsafe(48)


def params_provider(addresses: ClientAddress) -> Callable[[Mapping[str, Any], dict[str, Any]], None]:
    """Every REST call and socket handshake: ``Authorization`` -> ``params["authentication"]``
    (parse only, never fails; a socket's token is then checked by its handshake), and the client
    address for the throttles (behind trusted proxies too)."""

    def build(environ: Mapping[str, Any], params: dict[str, Any]) -> None:
        token = token_from_header(params["headers"].get("authorization"))
        if token and "authentication" not in params:
            params["authentication"] = {"strategy": "jwt", "accessToken": token}
        params["remote_addr"] = addresses.address(environ)

    return build


def configure_flask_jwt(flask_app: Any, service: AuthenticationService) -> None:
    """flask-jwt-extended on the Flask app, with the same keys and claims as the service, so a
    plain Flask view can use ``@jwt_required()`` and ``current_user`` with our tokens."""
    from flask_jwt_extended import JWTManager

    tokens = service.tokens
    flask_app.config.update(
        JWT_SECRET_KEY=tokens.signing_key,
        JWT_ALGORITHM=tokens.algorithm,
        JWT_DECODE_ALGORITHMS=[tokens.algorithm],
        JWT_ENCODE_AUDIENCE=tokens.audience,
        JWT_DECODE_AUDIENCE=tokens.audience,
        JWT_ENCODE_ISSUER=tokens.issuer,
        JWT_DECODE_ISSUER=tokens.issuer,
        JWT_DECODE_LEEWAY=int(tokens.leeway),
        JWT_ACCESS_TOKEN_EXPIRES=dt.timedelta(seconds=tokens.expires_in),
        JWT_TOKEN_LOCATION=["headers"],
        JWT_IDENTITY_CLAIM="sub",
        JWT_ENCODE_NBF=False,
    )
    if "flask-jwt-extended" in flask_app.extensions:
        return
    manager = JWTManager(flask_app)

    @manager.user_lookup_loader
    def load_user(header: dict[str, Any], payload: dict[str, Any]) -> Any:
        try:
            return service.load_user(payload["sub"])
        except Exception:
            return None  # answered by user_lookup_error_loader

    # Its failures in the same 401 shape as the rest of the API (its default is {"msg"}, 422).
    def refuse(message: str) -> Any:
        from flask import Response

        body = NotAuthenticated(message).to_json()
        return Response(dumps(body), status=401, mimetype="application/json")

    manager.unauthorized_loader(lambda reason: refuse("Not authenticated"))
    manager.invalid_token_loader(lambda reason: refuse("Invalid token"))
    manager.expired_token_loader(lambda header, payload: refuse("jwt expired"))
    manager.user_lookup_error_loader(lambda header, payload: refuse("Could not find entity"))


def configure_authentication(
    kdk: Application, flask_app: Any, settings: Mapping[str, Any]
) -> AuthenticationService | None:
    """Mount ``authentication`` (after the users service exists) and wire REST and sockets.

    Returns the service (also ``kdk.authentication``), or None when ``authentication`` is not
    configured or ``authentication.enabled`` is false.
    """
    auth_settings = dict(settings.get("authentication") or {})
    if not auth_settings or auth_settings.get("enabled", True) is False:
        return None
    users_path = auth_settings.get("service") or "users"
    if kdk.lookup(users_path) is None:
        raise RuntimeError(f"Authentication needs the service '{users_path}' (authentication.service)")
    secret = resolve_secret(settings)
    redis_url = (settings.get("redis") or {}).get("url")
    local = dict(auth_settings.get("local") or {})
    service = AuthenticationService(
        kdk,
        auth_settings,
        tokens=TokenManager.from_settings(secret, auth_settings.get("jwt") or {}),
        passwords=Passwords(local.get("hash")),
        throttle=LoginThrottle.from_settings(auth_settings.get("throttle"), redis_url),
        permissions=Permissions(
            settings.get("permissions"),
            default_role=auth_settings.get("default_role", "user"),
            anonymous_role=auth_settings.get("anonymous_role", "anonymous"),
            role_field=auth_settings.get("role_field", "role"),
        ),
        client_address=ClientAddress(settings.get("trusted_proxies") or DEFAULT_TRUSTED_PROXIES),
    )
    kdk.authentication = service
    kdk.use(auth_settings.get("path") or "authentication", service, methods=["create", "remove"])
    kdk.params_providers.append(params_provider(service.client_address))
    transport = flask_app.extensions.get("kdk_socketio") if flask_app is not None else None
    channels = kdk.channels
    if transport is not None and channels is not None:
        service.sockets = SocketAuth(kdk, service, channels, transport, auth_settings)
        service.sockets.install()
    if flask_app is not None:
        configure_flask_jwt(flask_app, service)
    kdk.on("teardown", lambda app: service.throttle.close())
    return service
