"""Marshmallow schemas on services: validate data, coerce query values that arrive as strings."""

from __future__ import annotations

from typing import Any, Literal

from marshmallow import INCLUDE, Schema, ValidationError
from marshmallow import fields as ma_fields

from ..core.errors import BadRequest

# marshmallow's ``unknown=`` values (spelled out: older marshmallow has no alias for them).
UnknownPolicy = Literal["exclude", "include", "raise"]


def _unknown_policy(schema: Schema) -> UnknownPolicy:
    # Fields outside the schema are allowed unless the schema's Meta says otherwise.
    declared = getattr(getattr(type(schema), "Meta", None), "unknown", None)
    return declared if declared is not None else INCLUDE


class ServiceSchema:
    """Wraps a marshmallow schema (class or instance) for one service."""

    def __init__(self, schema: Schema | type[Schema], *, id_field: str) -> None:
        self.schema: Schema = schema() if isinstance(schema, type) else schema
        self.id_field = id_field
        self.unknown = _unknown_policy(self.schema)
        self._fields = {field.data_key or name: field for name, field in self.schema.fields.items()}
        self.field_names = frozenset(self._fields) | {id_field}

    def load(self, data: Any, *, partial: bool = False) -> dict[str, Any]:
        """Validated and coerced data, or BadRequest with one list of messages per field."""
        if not isinstance(data, dict):
            raise BadRequest("Data must be an object")
        payload = {k: v for k, v in data.items() if k != self.id_field}
        try:
            loaded = self.schema.load(payload, partial=partial, unknown=self.unknown)
        except ValidationError as exc:
            raise BadRequest("Validation failed", errors=exc.normalized_messages()) from None
        return loaded

    def convert_query_value(self, name: str, value: Any) -> Any:
        """Deserialize ``value`` with the field's type, so ``n=3`` from a URL compares as 3."""
        field = self._field(name)
        if field is None or value is None or isinstance(value, (dict, list)):
            return value
        if value == "" and field.allow_none:  # qs sends null as ''
            return None
        try:
            return field.deserialize(value)
        except ValidationError as exc:
            raise BadRequest(f"Invalid value for query field '{name}'", errors={name: exc.messages}) from None

    def _field(self, name: str) -> ma_fields.Field | None:
        return self._fields.get(name)


def make_schema(schema: Schema | type[Schema] | None, id_field: str) -> ServiceSchema | None:
    return ServiceSchema(schema, id_field=id_field) if schema is not None else None
