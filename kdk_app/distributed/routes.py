"""HTTP endpoints: ``GET /distribution/healthcheck/<key>`` and ``GET /distribution/stats``
(the latter for admins only when the app has authentication)."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request

from ..auth.admin import require_admin
from ..core import errors
from ..core.serialization import dumps
from .health import check
from .node import Distribution


def _json(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status=status, mimetype="application/json")


def register_routes(flask_app: Flask, distribution: Distribution) -> None:
    def healthcheck(key: str) -> Response:
        if key != distribution.key:
            return _json(errors.NotFound(f"Unknown distribution key '{key}'").to_json(), 404)
        report = check(distribution)
        return _json(report, 200 if report["healthy"] else 503)

    def stats() -> Response:
        # Instance ids and counters are for operators: an admin token (open without authentication).
        try:
            require_admin(distribution.app, request.headers.get("Authorization"))
        except errors.FeathersError as error:
            return _json(error.to_json(), error.code)
        return _json(distribution.describe())

    flask_app.add_url_rule(
        "/distribution/healthcheck/<path:key>", "distribution_healthcheck", healthcheck, methods=["GET"]
    )
    flask_app.add_url_rule("/distribution/stats", "distribution_stats", stats, methods=["GET"])
