"""``GET /healthcheck``: is this instance up, and does each server it depends on answer in time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response

from .transports.rest import json_response

# What a check returns: its flag, or its flag and extra keys for the answer (e.g. a report).
CheckResult = bool | tuple[bool, Mapping[str, Any]]
# Name of the flag in the answer, and a check that returns within its own bounded time.
HealthCheck = tuple[str, Callable[[], CheckResult]]


def register_healthcheck(flask_app: Flask, checks: list[HealthCheck]) -> None:
    def healthcheck() -> Response:
        flags: dict[str, bool] = {"isRunning": True}
        details: dict[str, Any] = {}
        for name, check in checks:
            result = check()
            if isinstance(result, tuple):
                result, extra = result
                details.update(extra)
            flags[name] = bool(result)
        healthy = all(flags.values())  # only the flags decide; reports are for reading
        return json_response({**flags, **details}, 200 if healthy else 503)

    flask_app.add_url_rule("/healthcheck", "healthcheck", healthcheck, methods=["GET"])
