"""CORS for every HTTP answer of the app: REST, Socket.IO polling, health, page, gateway.

One :class:`CorsPolicy`, built from the top-level ``cors`` setting, decides for REST (through
:class:`CorsMiddleware`, the outermost WSGI layer, so error answers carry the headers too) and
for Socket.IO (python-engineio asks :meth:`CorsPolicy.allows` before a handshake or a WebSocket
upgrade, where browsers enforce nothing themselves).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core import errors
from ..core.serialization import dumps

logger = logging.getLogger(__name__)

DEFAULT_METHODS = ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE")
DEFAULT_EXPOSE_HEADERS = ("Location", "X-Request-Id")
DEFAULT_MAX_AGE = 600
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class CorsConfigurationError(ValueError):
    """The ``cors`` setting cannot be honoured; raised at start, never per request."""


def _names(value: Any, key: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise CorsConfigurationError(f"cors.{key} must be a list of strings, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class CorsPolicy:
    """``origins`` is ``"*"`` (any origin) or a tuple of exact origins (``scheme://host[:port]``)."""

    origins: str | tuple[str, ...] = "*"
    methods: tuple[str, ...] = DEFAULT_METHODS
    headers: tuple[str, ...] | None = None  # None: allow the headers a preflight asks for
    expose_headers: tuple[str, ...] = DEFAULT_EXPOSE_HEADERS
    credentials: bool = False
    max_age: int | None = DEFAULT_MAX_AGE
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.credentials and self.origins == "*":
            # Browsers refuse credentials with "*"; echoing every origin instead would let any
            # site act with the visitor's cookies, so refuse to start.
            raise CorsConfigurationError(
                "cors.credentials = True needs an explicit cors.origins list "
                '(e.g. ["https://app.example.com"]), not "*"'
            )

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> CorsPolicy:
        """The policy of the app ``settings`` (the whole configuration)."""
        raw = settings.get("cors")
        cors: dict[str, Any] = {} if raw is None else ({"enabled": False} if raw is False else dict(raw))
        legacy = (settings.get("socketio") or {}).get("cors_allowed_origins")
        if legacy is not None:
            logger.warning(
                "socketio.cors_allowed_origins is deprecated: it now sets cors.origins, "
                "which governs REST and Socket.IO alike; move it to cors.origins"
            )
            cors["origins"] = legacy
        origins = cors.get("origins", "*")
        if origins != "*":
            origins = _names(origins, "origins") or ()
            if "*" in origins:
                origins = "*"
        max_age = cors.get("max_age", DEFAULT_MAX_AGE)
        return cls(
            origins=origins,
            methods=tuple(m.upper() for m in _names(cors.get("methods"), "methods") or DEFAULT_METHODS),
            headers=_names(cors.get("headers"), "headers"),
            expose_headers=_names(cors.get("expose_headers", DEFAULT_EXPOSE_HEADERS), "expose_headers") or (),
            credentials=bool(cors.get("credentials", False)),
            max_age=None if max_age is None else int(max_age),
            enabled=bool(cors.get("enabled", True)),
        )

    # --- decisions -----------------------------------------------------------------------
    def allows(self, origin: str | None, environ: Mapping[str, Any] | None = None) -> bool:
        """May a page of ``origin`` use the app? Its own origin always may (the app's page)."""
        if not origin or self.origins == "*":
            return True
        return origin in self.origins or (environ is not None and origin in own_origins(environ))

    def engineio_origins(self) -> str | list[str] | Callable[[str, dict[str, Any]], bool]:
        """The ``cors_allowed_origins`` value for python-engineio."""
        if not self.enabled:
            return []  # engineio: no CORS handling at all
        return "*" if self.origins == "*" else self.allows

    def response_headers(self, environ: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``Access-Control-*`` headers for an actual (non-preflight) request."""
        origin = environ.get("HTTP_ORIGIN")
        headers: list[tuple[str, str]] = []
        if self.origins != "*":
            headers.append(("Vary", "Origin"))  # the answer depends on who asks
        if not origin or not self.allows(origin, environ):
            return headers
        headers.append(("Access-Control-Allow-Origin", "*" if self.origins == "*" else origin))
        if self.credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        if self.expose_headers:
            headers.append(("Access-Control-Expose-Headers", ", ".join(self.expose_headers)))
        return headers

    def preflight_headers(self, environ: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Headers answering an allowed preflight (``OPTIONS`` with ``Access-Control-Request-Method``)."""
        headers = [h for h in self.response_headers(environ) if h[0] != "Access-Control-Expose-Headers"]
        headers.append(("Access-Control-Allow-Methods", ", ".join(self.methods)))
        requested = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")
        if self.headers is not None:
            headers.append(("Access-Control-Allow-Headers", ", ".join(self.headers)))
        elif requested:
            headers.append(("Access-Control-Allow-Headers", requested))
            headers.append(("Vary", "Access-Control-Request-Headers"))
        if self.max_age is not None:
            headers.append(("Access-Control-Max-Age", str(self.max_age)))
        return headers


def own_origins(environ: Mapping[str, Any]) -> set[str]:
    """The origin(s) this request was addressed to: Host, and X-Forwarded-* behind a proxy."""
    host = environ.get("HTTP_HOST")
    if not host:
        return set()
    scheme = environ.get("wsgi.url_scheme", "http")
    found = {f"{scheme}://{host}"}
    forwarded_host = environ.get("HTTP_X_FORWARDED_HOST", host).split(",")[0].strip()
    forwarded_proto = environ.get("HTTP_X_FORWARDED_PROTO", scheme).split(",")[0].strip()
    found.add(f"{forwarded_proto}://{forwarded_host}")
    return found


def is_preflight(environ: Mapping[str, Any]) -> bool:
    return (
        environ.get("REQUEST_METHOD") == "OPTIONS"
        and "HTTP_ORIGIN" in environ
        and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
    )


class CorsMiddleware:
    """Answers preflights and sets the ``Access-Control-*`` headers of every other answer.

    Headers of that family set further in (python-engineio's own, a proxied app's) are
    replaced: the browser talks to this app, so this app's policy is the one that counts.
    """

    def __init__(self, app: WSGIApp, policy: CorsPolicy) -> None:
        self.app = app
        self.policy = policy

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if is_preflight(environ):
            return self._preflight(environ, start_response)
        extra = self.policy.response_headers(environ)

        def cors_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [h for h in headers if not h[0].lower().startswith("access-control-")]
            return start_response(status, kept + extra, exc_info)

        return self.app(environ, cors_start_response)

    def _preflight(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        origin = environ.get("HTTP_ORIGIN")
        method = str(environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD", "")).upper()
        origin_allowed = self.policy.allows(origin, environ)
        if not origin_allowed or method not in self.policy.methods:
            reason = "Method not allowed" if origin_allowed else "Origin not allowed"
            body = dumps(errors.Forbidden(f"CORS: {reason}", {"origin": origin, "method": method}).to_json())
            data = body.encode("utf-8")
            vary = [("Vary", "Origin")] if self.policy.origins != "*" else []
            start_response(
                "403 FORBIDDEN",
                [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *vary],
            )
            return [data]
        start_response("204 NO CONTENT", [("Content-Length", "0"), *self.policy.preflight_headers(environ)])
        return [b""]


def install_cors(flask_app: Any, policy: CorsPolicy) -> CorsMiddleware | None:
    """Wrap ``flask_app.wsgi_app`` last, so that every answer, errors included, passes through."""
    if not policy.enabled:
        return None
    middleware = CorsMiddleware(flask_app.wsgi_app, policy)
    flask_app.wsgi_app = middleware
    flask_app.extensions["kdk_cors"] = middleware
    return middleware
