"""JSON Schemas of the document: the Feathers error body, pages, and records from marshmallow.

A service's marshmallow schema gives three components (apispec's converter does the fields):
``<Name>Data`` for create and update (required fields kept), ``<Name>Patch`` (nothing required)
and ``<Name>`` for what the service answers (nothing required but the id: ``$select`` may drop
any other field; protected fields are never there).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import RAISE

from ..core import errors
from ..core.limits import INT64_MAX, INT64_MIN
from ..services.schema import ServiceSchema

ERROR_SCHEMA = "FeathersError"
STORABLE = "StorableValue"
# Field names a service stores (adapter.check_field_names): not empty, no leading "$", no "." or
# NUL; and no brackets, which a query string reads as nesting.
FIELD_NAME = {"pattern": "^[^$.\\[\\]\\u0000][^.\\[\\]\\u0000]*$"}

# Every status a kdk route can answer with a Feathers body, and its class name on the wire.
ERROR_STATUSES = {
    cls.code: (cls().name, cls.class_name)
    for cls in (
        errors.BadRequest,
        errors.NotAuthenticated,
        errors.Forbidden,
        errors.NotFound,
        errors.MethodNotAllowed,
        errors.Timeout,
        errors.Conflict,
        errors.PayloadTooLarge,
        errors.TooManyRequests,
        errors.GeneralError,
        errors.Unavailable,
    )
}

ERROR_DESCRIPTIONS = {
    400: "Bad request: invalid query, JSON body, id or data (validation errors in `errors`)",
    401: "Not authenticated: no, or an invalid, bearer token",
    403: "Forbidden by the permissions of the caller's role",
    404: "No record with this id (or none matching the query)",
    405: "Method not allowed (e.g. a multi patch/remove/create on a service that does not allow it)",
    408: "The remote service did not answer in time",
    409: "A record with the same unique value already exists",
    413: "Request body larger than max_body_size",
    429: "Too many attempts: try again later (`data.retryAfter`, seconds)",
    500: "Unexpected server error (details are logged, never sent)",
    503: "A server this call needs (MongoDB, the distribution bus) is unavailable",
}


def error_schema() -> dict[str, Any]:
    """The body of every error (docs/protocol.md §3.3)."""
    return {
        "type": "object",
        "required": ["name", "message", "code", "className"],
        "properties": {
            "name": {"type": "string", "examples": ["BadRequest"]},
            "message": {"type": "string"},
            "code": {"type": "integer", "minimum": 400, "maximum": 599},
            "className": {"type": "string", "examples": ["bad-request"]},
            "data": {"description": "Details, e.g. the offending fields"},
            "errors": {"description": "Validation errors by field"},
        },
    }


def error_response(code: int) -> dict[str, str]:
    """A reference to the response component of ``code`` (see ``error_responses``)."""
    return {"$ref": f"#/components/responses/{ERROR_STATUSES[code][0]}"}


def error_responses() -> dict[str, dict[str, Any]]:
    """``{component name: response}``: one Feathers error response per status."""
    return {ERROR_STATUSES[code][0]: _error_response(code) for code in sorted(ERROR_STATUSES)}


def _error_response(code: int) -> dict[str, Any]:
    name, class_name = ERROR_STATUSES[code]
    schema = {
        "allOf": [
            {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"},
            {
                "properties": {
                    "name": {"const": name},
                    "code": {"const": code},
                    "className": {"const": class_name},
                }
            },
        ]
    }
    return {"description": ERROR_DESCRIPTIONS[code], "content": {"application/json": {"schema": schema}}}


def storable_schema() -> dict[str, Any]:
    """Any JSON a database service stores: int64 numbers, field names it accepts, at any depth."""
    nested = ref(STORABLE)
    return {
        "anyOf": [
            {"type": ["string", "boolean", "null"]},
            {"type": "number", "minimum": INT64_MIN, "maximum": INT64_MAX},
            {"type": "array", "items": nested},
            {"type": "object", "propertyNames": FIELD_NAME, "additionalProperties": nested},
        ]
    }


def storable_object() -> dict[str, Any]:
    return {"type": "object", "propertyNames": FIELD_NAME, "additionalProperties": ref(STORABLE)}


def _bound_integers(properties: dict[str, Any]) -> None:
    # MongoDB stores 64-bit integers; a larger one is a 400 (core/limits.py).
    for prop in properties.values():
        if prop.get("type") == "integer" or prop.get("type") == ["integer", "null"]:
            prop.setdefault("minimum", INT64_MIN)
            prop.setdefault("maximum", INT64_MAX)


def page_schema(record: dict[str, Any], count: bool) -> dict[str, Any]:
    """Feathers' page: ``{total, limit, skip, data}`` (no ``limit`` when none applies)."""
    return {
        "type": "object",
        "required": ["total", "skip", "data"],
        "properties": {
            # None when the service counts nothing (paginate.count false)
            "total": {"type": "integer", "minimum": 0} if count else {"type": ["integer", "null"]},
            "limit": {"type": "integer", "minimum": 0},
            "skip": {"type": "integer", "minimum": 0},
            "data": {"type": "array", "items": record},
        },
    }


def component_name(path: str) -> str:
    """``users/:userId/messages`` becomes ``UsersUserIdMessages``."""
    words = re.split(r"[^A-Za-z0-9]+", path)
    return "".join(word[:1].upper() + word[1:] for word in words if word) or "Root"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


class RecordSchemas:
    """Registers the components of one service's marshmallow schema on ``spec``."""

    def __init__(self, spec: APISpec, plugin: MarshmallowPlugin) -> None:
        self.spec = spec
        self.plugin = plugin

    def register(
        self, name: str, service_schema: ServiceSchema, id_field: str, hidden: set[str]
    ) -> tuple[str, str, str]:
        """Names of the (data, patch, record) components for ``service_schema``."""
        converter = self.plugin.converter
        assert converter is not None  # set by APISpec(plugins=[plugin])
        base = converter.schema2jsonschema(service_schema.schema)
        # The service loads with its own unknown policy (INCLUDE unless Meta says otherwise), not
        # marshmallow's default, so additionalProperties follows what the service accepts.
        base.pop("additionalProperties", None)
        data = copy.deepcopy(base)
        data.setdefault("properties", {})
        _bound_integers(data["properties"])
        if service_schema.unknown == RAISE:
            data["additionalProperties"] = False
        else:
            data.update(propertyNames=FIELD_NAME, additionalProperties=ref(STORABLE))
        patch = copy.deepcopy(data)
        patch.pop("required", None)
        record = copy.deepcopy(base)
        record.pop("required", None)
        properties = {
            key: value
            for key, value in record.get("properties", {}).items()
            if key not in hidden and not value.get("writeOnly")
        }
        properties.setdefault(id_field, {"type": ["string", "integer"]})
        record["properties"] = properties
        record["required"] = [id_field]
        # Records written before a schema change (or by a hook) may carry other fields.
        record["additionalProperties"] = True
        self.spec.components.schema(f"{name}Data", data)
        self.spec.components.schema(f"{name}Patch", patch)
        self.spec.components.schema(name, record)
        return f"{name}Data", f"{name}Patch", name

    def query_fields(self, service_schema: ServiceSchema, hidden: set[str]) -> dict[str, dict[str, Any]]:
        """``{field: JSON Schema of one value}`` for the scalar fields a URL query can compare."""
        converter = self.plugin.converter
        assert converter is not None
        found = {}
        for name, field in service_schema.schema.fields.items():
            key = field.data_key or name
            if key in hidden or field.load_only:
                continue
            prop = converter.field2property(field)
            types = prop.get("type")
            types = [t for t in (types if isinstance(types, list) else [types]) if t != "null"]
            if len(types) != 1 or types[0] not in SCALAR_TYPES:
                continue  # objects, arrays and nested schemas: matched as a whole, not documented
            # Only the value's type and format matter in a URL; defaults, docs and refs do not.
            value = {k: v for k, v in prop.items() if k in ("format", "enum", "minimum", "maximum")}
            found[key] = {"type": types[0], **value}
        return found


SCALAR_TYPES = ("string", "integer", "number", "boolean")
