"""The browser page: ``GET /`` and its static files (``kdk_app/static/``, see its README.md).

The page talks to the server with the official Feathers browser client over Socket.IO, so
nothing here knows about services beyond the name the page should list.

Settings read (all optional): ``web = {"enabled": True, "service": "messages",
"title": "Messages", "page_size": 25, "static_folder": None}`` and ``socketio.path``. With
``static_folder``, that folder is served instead of this page (``register_static_folder``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, send_file

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Only this folder is reachable over HTTP; the npm pins and vendor.py beside it are not.
PUBLIC_DIR = STATIC_DIR / "public"
INDEX_TEMPLATE = STATIC_DIR / "index.html"
STATIC_URL_PATH = "/static"

# Same-origin scripts only, no inline code: user text can never become script. 'self' covers
# the ws:// upgrade to the same host in current browsers; ws:/wss: keep older ones working.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self' ws: wss:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def page_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """What the page template needs, with defaults for the example app."""
    web = settings.get("web") or {}
    socket_settings = settings.get("socketio") or {}
    return {
        "title": str(web.get("title", "Messages")),
        "service": str(web.get("service", "messages")).strip("/"),
        "page_size": int(web.get("page_size", 25)),
        "socketio_path": "/" + str(socket_settings.get("path", "/socket.io")).strip("/"),
        "socketio_enabled": bool(socket_settings.get("enabled", True)),
        "auth_enabled": bool((settings.get("authentication") or {}).get("enabled", False)),
    }


def serve_public_files(flask_app: Flask) -> None:
    """Point the app's ``/static`` route at ``static/public/`` (adding the route if there is none)."""
    # Flask("kdk_app") already routes /static to kdk_app/static/; retarget it rather than add a
    # second, competing rule, so the tooling beside public/ is never served.
    flask_app.static_folder = str(PUBLIC_DIR)
    if "static" not in flask_app.view_functions:
        flask_app.static_url_path = STATIC_URL_PATH
        flask_app.add_url_rule(
            f"{STATIC_URL_PATH}/<path:filename>", endpoint="static", view_func=flask_app.send_static_file
        )


def register_web(flask_app: Flask, settings: Mapping[str, Any], service_paths: Iterable[str] = ()) -> None:
    """Serve the page at ``/`` and its files under ``/static/``, unless ``web.enabled`` is false."""
    web = settings.get("web") or {}
    if not web.get("enabled", True):
        return
    if web.get("static_folder"):
        reserved = {path.strip("/").split("/")[0] for path in service_paths}
        register_static_folder(flask_app, web["static_folder"], reserved)
        return
    context = page_settings(settings)
    if not context["socketio_enabled"]:
        logger.warning("web page: socketio.enabled is false here, the page needs a Socket.IO server")
    serve_public_files(flask_app)
    if any(rule.rule == "/" for rule in flask_app.url_map.iter_rules()):
        # A service mounted at "/" owns the root; keep it working and say why there is no page.
        logger.warning("web page not mounted: '/' is already routed")
        return
    # Compiled once; url_for() needs the request, so rendering happens per call.
    template = flask_app.jinja_env.from_string(INDEX_TEMPLATE.read_text(encoding="utf-8"))

    def index() -> Response:
        response = Response(template.render(**context), mimetype="text/html")
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-cache"
        return response

    flask_app.add_url_rule("/", "web_index", index, methods=["GET"])


def register_static_folder(flask_app: Flask, folder: str | Path, reserved: set[str]) -> None:
    """Serve a front-end folder (``web.static_folder``): ``index.html`` at ``/`` and every other
    file at its own path, as Feathers' ``express.static`` does, so a folder written for a
    Feathers app can be dropped in. Only the regular files found at start are routes (one rule
    each: a catch-all would compete with the REST one); dot files and directories (``.env``,
    ``.git``), files outside the folder through links, and paths whose first segment is a
    service (``reserved``) are never served."""
    root = Path(folder).resolve()
    if not (root / "index.html").is_file():
        raise ValueError(f"web.static_folder: {root} has no index.html")
    files: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if not path.resolve().is_relative_to(root):
            logger.warning("web.static_folder: %s points outside the folder, not served", relative)
            continue
        if relative.parts[0] in reserved:
            logger.warning("web.static_folder: %s is a service's path, not served", relative)
            continue
        files[relative.as_posix()] = path

    def serve(name: str) -> Response:
        response = send_file(files[name], max_age=0)  # revalidated by its ETag each time
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    flask_app.add_url_rule("/", "web_index", serve, defaults={"name": "index.html"}, methods=["GET"])
    for name in files:
        flask_app.add_url_rule(
            f"/{name}", f"web_file_{name}", serve, defaults={"name": name}, methods=["GET"]
        )
    logger.info("web: serving %d files of %s", len(files), root)
