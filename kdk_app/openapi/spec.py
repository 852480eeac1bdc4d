"""The OpenAPI 3.1 document of what an app really serves: every service of the
:class:`~kdk_app.core.Application` (remote ones too, once mounted), the authentication service,
and kdk's own routes (health, readiness, metrics) that are mounted on the Flask app.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask

from .. import __version__
from ..core import Application
from . import security
from .authentication import authentication_paths
from .schemas import (
    ERROR_SCHEMA,
    STORABLE,
    RecordSchemas,
    error_response,
    error_responses,
    error_schema,
    storable_schema,
)
from .services import Context, service_paths

logger = logging.getLogger(__name__)

OPENAPI_VERSION = "3.1.0"
TITLE = "kdk-app API"

# kdk's own GET routes, by endpoint: (summary, body schema of the 200 answer, statuses).
JSON_OBJECT: dict[str, Any] = {"type": "object"}
OWN_ROUTES: dict[str, tuple[str, dict[str, Any], tuple[int, ...]]] = {
    "healthcheck": (
        "Is this instance up, and does each server it needs answer (flags, 503 when one does not)",
        {"type": "object", "required": ["isRunning"], "properties": {"isRunning": {"type": "boolean"}}},
        (503,),
    ),
    "kdk_livez": (
        "The process answers (asks no server)",
        {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
        (),
    ),
    "kdk_readyz": (
        "Ready to serve: MongoDB, Redis and the sync bus (503 when not)",
        {
            "type": "object",
            "required": ["status", "checks"],
            "properties": {"status": {"enum": ["ready", "unready"]}, "checks": JSON_OBJECT},
        },
        (503,),
    ),
}


def _own_routes(flask_app: Flask) -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in flask_app.url_map.iter_rules():
        if rule.endpoint in OWN_ROUTES:
            summary, body, codes = OWN_ROUTES[rule.endpoint]
            responses: dict[str, Any] = {
                "200": {"description": "OK", "content": {"application/json": {"schema": body}}}
            }
            for code in codes:  # the same body, in a 503
                responses[str(code)] = {
                    "description": "Not healthy",
                    "content": {"application/json": {"schema": body}},
                }
            responses["405"] = error_response(405)
            operation = {"tags": ["operations"], "summary": summary, "operationId": rule.endpoint}
            paths[rule.rule] = {"get": {**operation, "responses": responses}}
        elif rule.endpoint == "kdk_metrics":
            paths[rule.rule] = {"get": _metrics_operation()}
    return paths


def _metrics_operation() -> dict[str, Any]:
    return {
        "tags": ["operations"],
        "summary": "Prometheus metrics (text exposition format); a bearer token when metrics.token is set",
        "operationId": "kdk_metrics",
        "security": security.OPTIONAL,
        "responses": {
            "200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
            "401": error_response(401),
        },
    }


def build_document(flask_app: Flask, kdk: Application, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAPI document, as a dict ready for JSON."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title=TITLE,
        version=__version__,
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={
            "description": (
                "Generated from the services this app serves. Errors are Feathers JSON: "
                "`{name, message, code, className, data?, errors?}`."
            )
        },
    )
    spec.components.schema(ERROR_SCHEMA, error_schema())
    spec.components.schema(STORABLE, storable_schema())
    for name, response in error_responses().items():
        spec.components.response(name, response)
    auth = kdk.authentication
    if auth is not None:
        spec.components.security_scheme(security.BEARER, security.security_scheme())
    ctx = Context(kdk, RecordSchemas(spec, plugin), str(settings.get("api_path") or ""))
    for path in sorted(kdk.services):
        service = kdk.services[path]
        if auth is not None and service.impl is auth:
            paths = authentication_paths(auth, path, ctx.api_path)
        else:
            paths = service_paths(ctx, service)
        for url, item in paths.items():
            _add_path(spec, url, item)
    for url, item in _own_routes(flask_app).items():
        _add_path(spec, url, item)
    return spec.to_dict()


def _add_path(spec: APISpec, url: str, item: dict[str, Any]) -> None:
    parameters = item.get("parameters")
    operations = {verb: operation for verb, operation in item.items() if verb != "parameters"}
    spec.path(path=url, operations=operations, parameters=parameters)
