"""``GET /healthcheck``: is this instance up, and does each server it depends on answer in time
(KDK's shape); ``GET /livez``: the process serves. ``/readyz`` is in :mod:`kdk_app.readiness`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, request

from .core import errors
from .transports.rest import HTTP_METHODS, json_response

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

    add_get_route(flask_app, "/healthcheck", "healthcheck", healthcheck)


def add_get_route(flask_app: Flask, rule: str, endpoint: str, view: Callable[[], Response]) -> None:
    """``view`` on GET (and HEAD); any other method a Feathers 405. The rule takes every method so
    that the catch-all service route (``/<path>`` with an empty ``api_path``) cannot answer a
    POST with 404 "no such service"."""

    def get_only() -> Response:
        if request.method not in ("GET", "HEAD"):
            raise errors.MethodNotAllowed(f"Method {request.method} not allowed on {rule}")
        return view()

    flask_app.add_url_rule(rule, endpoint, get_only, methods=HTTP_METHODS)


def register_livez(flask_app: Flask) -> None:
    """``GET /livez``: 200 whenever the process answers at all; it asks no server (a down MongoDB
    makes the instance unready, not dead: restarting it would not bring MongoDB back)."""

    def livez() -> Response:
        return json_response({"status": "ok"})

    # "kdk_": in a host app, kdk answers this route's errors as Feathers JSON too.
    add_get_route(flask_app, "/livez", "kdk_livez", livez)
