"""The ``openapi`` part: ``GET /openapi.json`` and Swagger UI at ``GET /docs``.

Settings: ``openapi = {"enabled": True, "path": "/openapi.json", "docs_path": "/docs"}``
(``docs_path`` None: the document without the page). The
document is built at the first request, when every part has mounted its routes, and built
again only when the services change (remote services mount after start). Swagger UI is served
from ``swagger/vendor/`` (vendored by ``vendor.py``, no CDN) under the same CSP as the page at
``/``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, send_file, url_for

from ..core import Application, errors
from ..core.serialization import dumps
from ..health import add_get_route
from ..web import CONTENT_SECURITY_POLICY
from .spec import TITLE, build_document
from .vendor import FILES, SWAGGER_DIR, VENDOR_DIR

logger = logging.getLogger(__name__)

DEFAULTS = {"enabled": True, "path": "/openapi.json", "docs_path": "/docs"}
INIT_SCRIPT = "swagger-init.js"


@dataclass(frozen=True)
class OpenAPISettings:
    enabled: bool
    path: str
    docs_path: str | None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> OpenAPISettings:
        raw = settings.get("openapi")
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ValueError("openapi: must be a dict such as {'enabled': True, 'path': '/openapi.json'}")
        options = {**DEFAULTS, **raw}
        path, docs_path = options["path"], options["docs_path"]
        for name, value in (("path", path), ("docs_path", docs_path)):
            if value is None and name == "docs_path":
                continue
            if not isinstance(value, str) or not value.startswith("/") or value.rstrip("/") == "":
                raise ValueError(f"openapi.{name}: must be a URL path such as '/docs', not {value!r}")
        if docs_path is not None and docs_path.rstrip("/") == path.rstrip("/"):
            raise ValueError("openapi.docs_path: must differ from openapi.path")
        return cls(bool(options["enabled"]), path.rstrip("/"), docs_path.rstrip("/") if docs_path else None)


@dataclass
class OpenAPIState:
    """On ``flask_app.extensions["kdk_openapi"]``: the document, by the services it describes."""

    settings: OpenAPISettings
    key: tuple[Any, ...] | None = None
    body: bytes = b""
    lock: threading.Lock = field(default_factory=threading.Lock)


def services_key(kdk: Application) -> tuple[Any, ...]:
    """Changes when a service is mounted or removed, or its methods change."""
    return tuple((path, tuple(service.methods)) for path, service in sorted(kdk.services.items()))


def document_body(flask_app: Flask, kdk: Application, settings: Mapping[str, Any]) -> bytes:
    """The document as JSON bytes, built once per set of services."""
    state: OpenAPIState = flask_app.extensions["kdk_openapi"]
    key = services_key(kdk)
    with state.lock:
        if state.key != key:
            document = build_document(flask_app, kdk, settings)
            state.body, state.key = dumps(document).encode(), key
            logger.info("openapi: document built (%d paths)", len(document.get("paths", {})))
        return state.body


def _routed(flask_app: Flask, path: str) -> bool:
    return any(rule.rule.rstrip("/") == path for rule in flask_app.url_map.iter_rules())


def install_openapi(flask_app: Flask, kdk: Application, settings: Mapping[str, Any]) -> None:
    """Mount the document and Swagger UI unless ``openapi.enabled`` is false."""
    options = OpenAPISettings.from_settings(settings)
    if not options.enabled:
        return
    flask_app.extensions["kdk_openapi"] = OpenAPIState(options)
    if _routed(flask_app, options.path):
        logger.warning("openapi: %s is already routed, the document is not served", options.path)
        return

    def openapi_json() -> Response:
        response = Response(document_body(flask_app, kdk, settings), mimetype="application/json")
        response.headers["Cache-Control"] = "no-cache"
        return response

    add_get_route(flask_app, options.path, "kdk_openapi", openapi_json)
    if options.docs_path is None:
        return
    if _routed(flask_app, options.docs_path):
        logger.warning("openapi: %s is already routed, Swagger UI is not served", options.docs_path)
        return
    register_swagger_ui(flask_app, options)


def register_swagger_ui(flask_app: Flask, options: OpenAPISettings) -> None:
    docs_path = options.docs_path
    assert docs_path is not None
    assets: dict[str, Path] = {f.target: VENDOR_DIR / f.target for f in FILES}
    assets[INIT_SCRIPT] = SWAGGER_DIR / INIT_SCRIPT
    template = flask_app.jinja_env.from_string((SWAGGER_DIR / "index.html").read_text(encoding="utf-8"))

    def page() -> Response:
        html = template.render(
            title=TITLE,
            assets=url_for("kdk_docs").rstrip("/"),
            openapi_url=url_for("kdk_openapi"),
        )
        response = Response(html, mimetype="text/html")
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-cache"
        return response

    def asset(name: str) -> Response:
        path = assets.get(name)
        if path is None:
            raise errors.NotFound("Page not found", {"url": f"{docs_path}/{name}"})
        response = send_file(path, max_age=0)  # revalidated by its ETag each time
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    add_get_route(flask_app, docs_path, "kdk_docs", page)
    flask_app.add_url_rule(f"{docs_path}/<name>", "kdk_docs_asset", asset, methods=["GET"])
