"""``GET /healthcheck``: is this instance up, and does each server it depends on answer in time."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response

from .transports.rest import json_response

# Name of the flag in the answer, and a check that returns within its own bounded time.
HealthCheck = tuple[str, Callable[[], bool]]


def register_healthcheck(flask_app: Flask, checks: list[HealthCheck]) -> None:
    def healthcheck() -> Response:
        body = {"isRunning": True}
        for name, check in checks:
            body[name] = bool(check())
        healthy = all(body.values())
        return json_response(body, 200 if healthy else 503)

    flask_app.add_url_rule("/healthcheck", "healthcheck", healthcheck, methods=["GET"])
