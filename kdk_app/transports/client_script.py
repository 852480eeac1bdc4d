"""``GET /socket.io/socket.io.js``: the official Socket.IO client, served as Node's server does.

Pages written for a Feathers server load the client from the API server itself
(``<script src="/socket.io/socket.io.js">``). These paths are below the Socket.IO path, which
the dispatch in :mod:`kdk_app.transports.socketio` sends to python-engineio; it hands the
client's paths to Flask instead. The file is the build vendored for the browser page
(``kdk_app/static/public/vendor``, pinned in ``kdk_app/static/package.json``): the 4.x client of
the Engine.IO 4 / Socket.IO 5 protocol this server speaks. Node serves an unminified
``socket.io.js`` beside the minified one; here both names answer the minified build.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, Response, send_from_directory

VENDOR_DIR = Path(__file__).resolve().parent.parent / "static" / "public" / "vendor"
# What a page may ask for, and the vendored file that answers it.
CLIENT_FILES = {
    "socket.io.js": "socket.io.min.js",
    "socket.io.min.js": "socket.io.min.js",
    "socket.io.js.map": "socket.io.min.js.map",
    "socket.io.min.js.map": "socket.io.min.js.map",
}
MAX_AGE = 3600  # seconds; the ETag lets a browser revalidate after that for a 304


def client_paths(prefix: str) -> frozenset[str]:
    """The request paths of the client's files below the Socket.IO path ``prefix``."""
    return frozenset(f"{prefix}/{name}" for name in CLIENT_FILES)


def register_client_script(flask_app: Flask, prefix: str) -> None:
    """One route per file (unknown names are not routes: the JSON 404 of kdk's catch-all)."""

    def client_file(name: str) -> Response:
        mimetype = "application/json" if name.endswith(".map") else "application/javascript"
        return send_from_directory(VENDOR_DIR, CLIENT_FILES[name], mimetype=mimetype, max_age=MAX_AGE)

    for name in CLIENT_FILES:
        flask_app.add_url_rule(
            f"{prefix}/{name}",
            f"kdk_socketio_client_{name}",
            client_file,
            defaults={"name": name},
            methods=["GET"],
        )
