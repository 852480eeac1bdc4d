"""The paths and operations of one service, as ``transports/rest.py`` serves them.

``GET {prefix}`` find, ``POST`` create (or a custom method named by ``X-Service-Method``),
``GET|PUT|PATCH|DELETE {prefix}/{id}`` get, update, patch, remove, and ``PATCH|DELETE {prefix}``
where the service allows multi patch or remove (docs/protocol.md §3.1). Database services
(``AdapterService``) get their query syntax, pages and record schemas; any other service (a
remote one, an app's own class) gets its methods with any JSON in and out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core import STANDARD_METHODS, Application, Service
from ..core.limits import INT64_MAX
from ..services.adapter import AdapterService
from ..services.mongo import MongoService
from ..services.query import OPERATORS
from ..services.schema import ServiceSchema
from . import security
from .schemas import (
    FIELD_NAME,
    RecordSchemas,
    component_name,
    error_response,
    page_schema,
    ref,
    storable_object,
)

ANY_JSON: dict[str, Any] = {}
CUSTOM_HEADER = "X-Service-Method"
LIST_OPERATORS = ("$in", "$nin")
VALUE_OPERATORS = tuple(op for op in OPERATORS if op != "$or")  # $or is a clause, not a field's


@dataclass
class Context:
    kdk: Application
    records: RecordSchemas
    api_path: str


@dataclass
class Shapes:
    """What one service takes and answers, as JSON Schemas."""

    data: dict[str, Any]
    patch: dict[str, Any]
    record: dict[str, Any]
    adapter: AdapterService | None
    query_fields: dict[str, dict[str, Any]] | None  # None: any field may be queried
    sort_fields: list[str] | None


def rest_prefix(api_path: str, path: str) -> tuple[str, list[str]]:
    """The OpenAPI path of a service's collection, and its route parameters."""
    names = re.findall(r":([A-Za-z_][A-Za-z0-9_]*)", path)
    templated = re.sub(r":([A-Za-z_][A-Za-z0-9_]*)", r"{\1}", path)
    prefix = f"{api_path.rstrip('/')}/{templated}" if path != "/" else (api_path or "/")
    return prefix, names


def _shapes(ctx: Context, service: Service) -> Shapes:
    impl = service.impl
    if not isinstance(impl, AdapterService):
        return Shapes(ANY_JSON, ANY_JSON, ANY_JSON, None, None, None)
    options = impl.options
    hidden = set(options.get("protected_fields") or ())
    schema = impl.schema
    if not isinstance(schema, ServiceSchema):
        record = {"type": "object", "required": [impl.id], "properties": {impl.id: {}}}
        return Shapes(storable_object(), storable_object(), record, impl, None, None)
    name = component_name(service.path)
    data, patch, record_name = ctx.records.register(name, schema, impl.id, hidden)
    fields = ctx.records.query_fields(schema, hidden)
    fields.setdefault(impl.id, {"type": "string"})
    only_declared = options.get("query_fields", "schema") == "schema"
    return Shapes(
        ref(data),
        ref(patch),
        ref(record_name),
        impl,
        fields if only_declared else None,
        sorted(fields) if only_declared else None,
    )


# --- parameters ------------------------------------------------------------------------------


def _paging_parameters(adapter: AdapterService, sort_fields: list[str] | None) -> list[dict[str, Any]]:
    paginate = adapter.options.get("paginate")
    limits = ""
    if isinstance(paginate, Mapping):
        limits = f" Default {paginate.get('default')}, at most {paginate.get('max')} (larger is capped)."
    direction = {"type": "integer", "enum": [1, -1]}
    if sort_fields is None:
        sort_schema: dict[str, Any] = {
            "type": "object",
            "propertyNames": FIELD_NAME,
            "additionalProperties": direction,
        }
    else:
        sort_schema = {
            "type": "object",
            "properties": dict.fromkeys(sort_fields, direction),
            "additionalProperties": False,
        }
    return [
        {
            "name": "$limit",
            "in": "query",
            "description": "Records per page." + limits,
            "schema": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
        },
        {
            "name": "$skip",
            "in": "query",
            "description": "Records to skip.",
            "schema": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
        },
        {
            "name": "$sort",
            "in": "query",
            "description": "Order: `$sort[field]=1` ascending, `-1` descending.",
            "style": "deepObject",
            "explode": True,
            "schema": sort_schema,
        },
    ]


def _select_parameter(shapes: Shapes) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "string", **FIELD_NAME}
    if shapes.sort_fields is not None:
        item = {"type": "string", "enum": shapes.sort_fields}
    return {
        "name": "$select",
        "in": "query",
        "description": "Fields to return (the id always is): `$select=text&$select=n`.",
        "style": "form",
        "explode": True,
        "schema": {"type": "array", "items": item},
    }


def _field_parameters(shapes: Shapes) -> list[dict[str, Any]]:
    if shapes.adapter is None or shapes.query_fields is None:
        return []
    extra = [op for op in shapes.adapter.options.get("operators") or () if op not in OPERATORS]
    parameters = []
    for name, value in sorted(shapes.query_fields.items()):
        operators = {op: value for op in (*VALUE_OPERATORS, *extra)}
        parameters.append(
            {
                "name": name,
                "in": "query",
                "description": (
                    f"`{name}=value` matches equal values; operators as `{name}[$gt]=value`. "
                    f"`$in`/`$nin` take a list: `{name}[$in]=a&{name}[$in]=b`."
                ),
                "style": "deepObject",
                "explode": True,
                "schema": {"type": "object", "properties": operators, "additionalProperties": False},
            }
        )
    return parameters


QUERY_DESCRIPTION = (
    "Query: fields by value or operator (`$in`, `$nin`, `$lt`, `$lte`, `$gt`, `$gte`, `$ne`), "
    "`$or[0][field]=a&$or[1][field]=b`, in the `qs` syntax of Feathers clients; only the listed "
    "operators and filters are accepted, anything else is a 400."
)


def _query_parameters(shapes: Shapes, method: str) -> list[dict[str, Any]]:
    if shapes.adapter is None:
        return []
    params = [_select_parameter(shapes)]
    if method == "find":
        params = [*_paging_parameters(shapes.adapter, shapes.sort_fields), *params]
    if method != "create":
        params += _field_parameters(shapes)
    return params


def _id_parameter(route_names: list[str]) -> tuple[str, dict[str, Any]]:
    name = "id" if "id" not in route_names else "__id"
    return name, {
        "name": name,
        "in": "path",
        "required": True,
        "description": "The record's id",
        "schema": {"type": "string", "pattern": "^[^/]+$"},
    }


# --- responses -------------------------------------------------------------------------------


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error_codes(service: Service, method: str, *, item: bool, access: security.Access) -> set[int]:
    impl = service.impl
    codes = {400, 500, *access.statuses}
    if item:
        codes.add(404)
    if method in ("create", "update", "patch") or method not in STANDARD_METHODS:
        codes.add(413)
    if method == "create" or method not in STANDARD_METHODS:
        codes.add(405)  # an array where multi create is off; an unknown X-Service-Method
    if isinstance(impl, MongoService):
        codes.add(503)
        unique = any(index.document.get("unique") for index in impl.indexes)
        if unique and method in ("create", "update", "patch"):
            codes.add(409)
    if service.is_remote:
        codes.update((408, 503))
    return codes


def _operation(
    service: Service,
    method: str,
    access: security.Access,
    *,
    item: bool,
    summary: str,
    success: tuple[int, dict[str, Any]],
    parameters: list[dict[str, Any]],
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status, response = success
    responses: dict[str, Any] = {str(status): response}
    for code in sorted(_error_codes(service, method, item=item, access=access)):
        responses[str(code)] = error_response(code)
    operation: dict[str, Any] = {
        "tags": [service.path],
        "summary": summary,
        "operationId": f"{service.path}.{method}{'' if item or method in ('find', 'create') else 'Many'}",
        "parameters": parameters,
        "responses": responses,
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if access.security is not None:
        operation["security"] = access.security
    return operation


def _one_or_many(schema: dict[str, Any], many: bool) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "array", "items": schema, "minItems": 1}]} if many else schema


def service_paths(ctx: Context, service: Service) -> dict[str, dict[str, Any]]:
    """``{openapi path: path item}`` for ``service``."""
    prefix, route_names = rest_prefix(ctx.api_path, service.path)
    id_name, id_param = _id_parameter(route_names)
    item_path = f"{prefix.rstrip('/')}/{{{id_name}}}"
    route_params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[^/]+$"}}
        for name in route_names
    ]
    shapes = _shapes(ctx, service)
    adapter = shapes.adapter
    methods = service.methods
    record = shapes.record
    records = {"type": "array", "items": record}
    collection: dict[str, Any] = {}
    items: dict[str, Any] = {}

    def access(method: str) -> security.Access:
        return security.access(ctx.kdk, service, method)

    def many(method: str) -> bool:
        return adapter.allows_multi(method) if adapter is not None else True

    if "find" in methods:
        paginate = adapter.paginate_options({}) if adapter is not None else None
        if isinstance(paginate, Mapping):
            found = page_schema(record, bool(paginate.get("count", True)))
        else:
            found = records if adapter is not None else ANY_JSON
        collection["get"] = _operation(
            service,
            "find",
            access("find"),
            item=False,
            summary=f"Find {service.path}",
            success=(200, _json(found, "A page of records" if isinstance(paginate, Mapping) else "Records")),
            parameters=_query_parameters(shapes, "find"),
        )
        if adapter is not None:
            collection["get"]["description"] = QUERY_DESCRIPTION
    if "get" in methods:
        items["get"] = _operation(
            service,
            "get",
            access("get"),
            item=True,
            summary=f"Get one of {service.path}",
            success=(200, _json(record, "The record")),
            parameters=[id_param, *_query_parameters(shapes, "get")],
        )
    customs = [m for m in methods if m not in STANDARD_METHODS]
    if "create" in methods or customs:
        collection["post"] = _post(service, shapes, customs, access, many("create"))
    if "update" in methods:
        items["put"] = _operation(
            service,
            "update",
            access("update"),
            item=True,
            summary=f"Replace one of {service.path}",
            success=(200, _json(record, "The record as stored")),
            parameters=[id_param, *_query_parameters(shapes, "update")],
            body=shapes.data,
        )
    for method, verb, verb_summary in (("patch", "patch", "Change"), ("remove", "delete", "Remove")):
        if method not in methods:
            continue
        body = shapes.patch if method == "patch" else None
        items[verb] = _operation(
            service,
            method,
            access(method),
            item=True,
            summary=f"{verb_summary} one of {service.path}",
            success=(200, _json(record, "The record")),
            parameters=[id_param, *_query_parameters(shapes, method)],
            body=body,
        )
        if many(method):
            collection[verb] = _operation(
                service,
                method,
                access(method),
                item=False,
                summary=f"{verb_summary} every record of {service.path} the query matches",
                success=(200, _json(records if adapter is not None else ANY_JSON, "The records")),
                parameters=_query_parameters(shapes, method),
                body=body,
            )
    paths: dict[str, dict[str, Any]] = {}
    if collection:
        paths[prefix] = {"parameters": route_params, **collection} if route_params else collection
    if items:
        paths[item_path] = {"parameters": route_params, **items} if route_params else items
    return paths


def _post(
    service: Service, shapes: Shapes, customs: list[str], access: Any, multi_create: bool
) -> dict[str, Any]:
    """``POST {prefix}``: create, and the custom methods chosen by the ``X-Service-Method`` header
    (one operation: OpenAPI has one POST per path)."""
    creates = "create" in service.methods
    method = "create" if creates else customs[0]
    body = _one_or_many(shapes.data, multi_create) if creates else ANY_JSON
    created = _one_or_many(shapes.record, multi_create) if creates else ANY_JSON
    parameters: list[dict[str, Any]] = []
    summary = f"Create in {service.path}" if creates else f"Call a method of {service.path}"
    if customs:
        parameters.append(
            {
                "name": CUSTOM_HEADER,
                "in": "header",
                "required": not creates,
                "description": "A custom method to call instead of create; it takes any JSON body.",
                "schema": {"type": "string", "enum": customs},
            }
        )
        summary += f"; custom methods: {', '.join(customs)} (`{CUSTOM_HEADER}` header)"
        body = {"anyOf": [body, ANY_JSON]} if creates else body
    if creates:
        parameters += _query_parameters(shapes, "create")
    operation = _operation(
        service,
        method,
        access(method),
        item=False,
        summary=summary,
        success=(201 if creates else 200, _json(created, "Created" if creates else "The method's result")),
        parameters=parameters,
        body=body,
    )
    if customs:
        responses = operation["responses"]
        responses.setdefault("200", _json(ANY_JSON, "A custom method's result"))
        responses["204"] = {"description": "A custom method answered nothing"}
        for custom in customs:
            for code, response in _operation(
                service, custom, access(custom), item=False, summary="", success=(200, {}), parameters=[]
            )["responses"].items():
                responses.setdefault(code, response)
        operation["x-kdk-custom-methods"] = customs
    return operation
