"""REST transport: one Flask blueprint per service, with the verb table of docs/protocol.md §3.1."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException, NotFound

from ..core import STANDARD_METHODS, Application, HookContext, Service, errors
from ..core.protocol import arguments_of, rest_method
from ..core.serialization import dumps
from .qs import QueryStringError, parse_query_string
from .response import JSONResponse
from .wsgi import environ_headers

logger = logging.getLogger(__name__)

HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(dumps(body), status=status, headers=headers or None)


def error_response(error: BaseException) -> Response:
    feathers_error = errors.convert(error)
    if feathers_error is not error:
        logger.error("unexpected error in %s %s", request.method, request.path, exc_info=error)
    return json_response(feathers_error.to_json(), feathers_error.code)


def _js_falsy(value: Any) -> bool:
    # JavaScript falsiness decides 204 (docs/protocol.md §3.1); [] and {} are truthy there.
    if value is None or value is False or value == "":
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def status_for(context: HookContext, body: Any) -> tuple[int, dict[str, str]]:
    headers = dict(context.http.get("headers") or {})
    if context.http.get("status"):
        return int(context.http["status"]), headers
    location = context.http.get("location") or headers.get("Location")
    if location:
        headers["Location"] = location
        return 303, headers
    if _js_falsy(body):
        return 204, headers
    return (201 if context.method == "create" else 200), headers


def read_body() -> Any:
    try:
        raw = request.get_data(cache=False)
    except HTTPException:  # 413 and the like answer as themselves
        raise
    except Exception as exc:
        # Reading can only fail on the client's side: a broken chunked framing (each WSGI
        # server raises its own class for it), a connection cut mid-body.
        logger.info("unreadable request body: %r", exc)
        raise errors.BadRequest("Invalid request body") from None
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested far deeper than any limit
        raise errors.BadRequest("Invalid JSON in request body") from None


def resolve_method(service: Service, verb: str, id: Any) -> str:
    """The service method for an HTTP verb (custom methods by ``X-Service-Method`` on POST)."""
    if verb == "POST":
        custom = request.headers.get("X-Service-Method")
        if custom:
            if custom not in service.methods or custom in STANDARD_METHODS:
                raise errors.MethodNotAllowed(f"Method `{custom}` is not supported by this endpoint.")
            return custom
        return "create"
    method = rest_method(verb, id is not None)
    if method not in service.methods:
        raise errors.MethodNotAllowed(f"Method `{method}` is not supported by this endpoint.")
    return method


def call_service(kdk: Application, service: Service, id: str | None, route: dict[str, str]) -> Response:
    verb = "GET" if request.method == "HEAD" else request.method
    method = resolve_method(service, verb, id)
    try:
        query = parse_query_string(request.query_string, depth=kdk.get("query_depth", 5))
    except QueryStringError as exc:
        raise errors.BadRequest(f"Invalid query string: {exc}") from None
    params: dict[str, Any] = {
        "query": query,
        "provider": "rest",
        "headers": environ_headers(request.environ),
        "route": route,
    }
    for provide in kdk.params_providers:
        provide(request.environ, params)
    # Arguments in protocol order; create and custom methods ignore an id in the URL.
    values = {"id": id, "params": params}
    args = [values[name] if name in values else read_body() for name in arguments_of(method)]
    context = service.run(method, *args)
    body = context.safe_result
    status, headers = status_for(context, body)
    if status == 204:
        return Response(status=204, headers=headers)
    return json_response(body, status, headers)


def _flask_rule(path: str) -> str:
    """``users/:userId/messages`` becomes ``users/<userId>/messages``."""
    return re.sub(r":([A-Za-z_][A-Za-z0-9_]*)", r"<\1>", path)


def service_blueprint(kdk: Application, service: Service, api_path: str) -> Blueprint:
    name = "rest_" + re.sub(r"\W", "_", service.path)
    prefix = f"{api_path.rstrip('/')}/{_flask_rule(service.path)}" if service.path != "/" else api_path or "/"
    blueprint = Blueprint(name, __name__, url_prefix=prefix if prefix != "/" else None)

    def collection(**route: str) -> Response:
        return call_service(kdk, service, None, route)

    def item(__id: str, **route: str) -> Response:
        if "/" in __id:  # /todos/1/x matches no service route (docs/protocol.md §3.1)
            raise errors.NotFound("Page not found", {"url": request.path})
        return call_service(kdk, service, __id, route)

    blueprint.add_url_rule("/", "collection", collection, methods=HTTP_METHODS, strict_slashes=False)
    blueprint.add_url_rule("/<path:__id>", "item", item, methods=HTTP_METHODS)
    return blueprint


class NotAServicePath(NotFound):
    """A URL under the API path that no service answers, in an app that is not only kdk's: the
    host app's own 404 handling answers it."""


def register_rest(flask_app: Flask, kdk: Application, api_path: str = "", *, all_errors: bool = True) -> None:
    """Mount every service of ``kdk`` (now and later), its errors answered as Feathers JSON.

    ``all_errors``: every error of the Flask app is answered as Feathers JSON (an app that is only
    kdk's, as ``create_app`` builds). Otherwise only kdk's routes are: a host app's own views and
    unknown URLs keep the host's error pages.
    """
    for service in list(kdk.services.values()):
        blueprint = service_blueprint(kdk, service, api_path)
        register_error_handlers(blueprint)  # handlers of the blueprint win over the host app's
        flask_app.register_blueprint(blueprint)

    # Services registered after start (remote services of other instances) have no blueprint:
    # Flask cannot add routes once serving, so one catch-all resolves them by path.
    def dynamic(rest: str) -> Response:
        found = kdk.lookup(rest)
        if found is not None:
            return call_service(kdk, found[0], None, found[1])
        parent, _, id = rest.rstrip("/").rpartition("/")
        found = kdk.lookup(parent) if parent else None
        if found is None:
            if not all_errors:
                raise NotAServicePath()
            raise errors.NotFound("Page not found", {"url": request.path})
        return call_service(kdk, found[0], id, found[1])

    flask_app.add_url_rule(
        f"{api_path.rstrip('/')}/<path:rest>", "rest_dynamic", dynamic, methods=HTTP_METHODS
    )
    register_error_handlers(flask_app, None if all_errors else _is_kdk_request)


def _is_kdk_request() -> bool:
    endpoint = request.endpoint or ""
    return endpoint.startswith(("rest_", "kdk_")) or endpoint in KDK_ENDPOINTS


# Endpoints of kdk's own routes outside the service blueprints.
KDK_ENDPOINTS = frozenset({"healthcheck", "web_index"})


def register_error_handlers(target: Flask | Blueprint, only: Callable[[], bool] | None = None) -> None:
    """Feathers JSON for every error of ``target`` (when ``only`` is given, of its requests only)."""

    def ours(error: Exception) -> bool:
        return (only is None or only()) and not isinstance(error, NotAServicePath)

    @target.errorhandler(errors.FeathersError)
    def feathers_error(error: errors.FeathersError) -> Response:
        return error_response(error)

    @target.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response | HTTPException:
        if not ours(error):
            return error  # the host app's page (werkzeug's, unless it has its own)
        code = error.code or 500
        if code == 404:
            return error_response(errors.NotFound("Page not found", {"url": request.path}))
        if code == 405:
            return error_response(errors.MethodNotAllowed(f"Method {request.method} not allowed"))
        if code == 413:
            return error_response(errors.PayloadTooLarge("Request body is too large"))
        cls = errors.ERRORS_BY_CODE.get(code, errors.GeneralError if code >= 500 else errors.BadRequest)
        return error_response(cls(error.description or error.name))

    @target.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        if not ours(error):
            raise error  # the host app's own handling of its own views
        return error_response(error)
