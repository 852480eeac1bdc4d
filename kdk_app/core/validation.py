"""``validate_data`` and ``validate_query``: marshmallow schemas as hooks (Feathers'
``validateData``/``validateQuery``). A failure is a 400 BadRequest ``"Validation failed"`` whose
``errors`` hold a list of messages per field, as a service's own ``schema=`` answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from marshmallow import EXCLUDE, INCLUDE, RAISE, Schema, ValidationError

from .errors import BadRequest
from .hooks import HookContext

SchemaSource = Schema | type[Schema]
UnknownPolicy = Literal["exclude", "include", "raise"]
# Query keys that are not fields: paging and shaping filters, and the logical operators.
QUERY_FILTERS = frozenset({"$limit", "$skip", "$sort", "$select"})
LOGICAL = frozenset({"$or", "$and"})
LIST_OPERATORS = frozenset({"$in", "$nin"})


def _instance(schema: SchemaSource) -> Schema:
    return schema() if isinstance(schema, type) else schema


def _unknown(schema: Schema) -> UnknownPolicy:
    # Fields outside the schema pass unless its Meta says otherwise (as services/schema.py does).
    declared = getattr(getattr(type(schema), "Meta", None), "unknown", None)
    return declared if declared in (INCLUDE, RAISE, EXCLUDE) else INCLUDE


def _messages(error: ValidationError) -> dict[str, Any]:
    # marshmallow's normalized_messages(): errors of the whole schema go under "_schema".
    messages = error.messages
    return messages if isinstance(messages, dict) else {"_schema": messages}


def load_data(schema: Schema, data: Any, *, partial: bool, id_field: str | None) -> dict[str, Any]:
    """``data`` validated and coerced by ``schema``; the record's id passes through unchecked."""
    if not isinstance(data, Mapping):
        raise BadRequest("Data must be an object")
    payload = {k: v for k, v in data.items() if k != id_field}
    try:
        loaded = dict(schema.load(payload, partial=partial, unknown=_unknown(schema)))
    except ValidationError as exc:
        raise BadRequest("Validation failed", errors=_messages(exc)) from None
    if id_field is not None and id_field in data:
        loaded[id_field] = data[id_field]
    return loaded


def validate_data(schema: SchemaSource) -> Callable[[HookContext], None]:
    """Before hook: create and update data checked in full, patch data partially (each item of
    a multi create); ``context.data`` becomes the loaded (coerced) data."""
    instance = _instance(schema)

    def hook(context: HookContext) -> None:
        if context.method not in ("create", "update", "patch") or context.data is None:
            return
        id_field = getattr(context.service.impl, "id", None)
        id_field = id_field if isinstance(id_field, str) else None
        partial = context.method == "patch"
        if isinstance(context.data, list):
            context.data = [load_data(instance, d, partial=partial, id_field=id_field) for d in context.data]
        else:
            context.data = load_data(instance, context.data, partial=partial, id_field=id_field)

    return hook


class _QueryChecker:
    def __init__(self, schema: Schema) -> None:
        self.fields = {f.data_key or name: f for name, f in schema.fields.items()}
        self.strict = _unknown(schema) == RAISE
        self.errors: dict[str, Any] = {}

    def value(self, name: str, value: Any) -> Any:
        field = self.fields[name]
        if value is None or (value == "" and field.allow_none):  # qs sends null as ''
            return None
        try:
            return field.deserialize(value)
        except ValidationError as exc:
            self.errors[name] = exc.messages
            return value

    def query(self, query: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
        if depth > 8:
            raise BadRequest("Query is nested too deeply")
        checked: dict[str, Any] = {}
        for name, value in query.items():
            if name in QUERY_FILTERS:
                checked[name] = value
            elif name in LOGICAL:
                if not isinstance(value, list) or not all(isinstance(q, Mapping) for q in value):
                    raise BadRequest(f"Invalid value for {name}: must be an array of queries")
                checked[name] = [self.query(q, depth + 1) for q in value]
            elif name not in self.fields:
                if self.strict:
                    self.errors[name] = ["Unknown field."]
                checked[name] = value
            elif isinstance(value, Mapping):
                checked[name] = {op: self.operand(name, op, arg) for op, arg in value.items()}
            else:
                checked[name] = self.value(name, value)
        return checked

    def operand(self, name: str, operator: str, value: Any) -> Any:
        if operator in LIST_OPERATORS and isinstance(value, list):
            return [self.value(name, item) for item in value]
        return self.value(name, value)


def validate_query(schema: SchemaSource) -> Callable[[HookContext], None]:
    """Before hook: each field's values in ``params["query"]`` (plain, or the operands of
    ``$in``, ``$lt`` …, inside ``$or``/``$and`` too) deserialized by its schema field, so
    ``?n=3`` compares as 3; ``$limit``, ``$sort`` … pass as they are. Fields outside the schema
    pass, unless the schema's ``Meta.unknown`` is ``RAISE``."""
    instance = _instance(schema)

    def hook(context: HookContext) -> None:
        query = context.params.get("query") or {}
        if not isinstance(query, Mapping):
            raise BadRequest("Query must be an object")
        checker = _QueryChecker(instance)
        checked = checker.query(query)
        if checker.errors:
            raise BadRequest("Validation failed", errors=checker.errors)
        context.params = {**context.params, "query": checked}

    return hook
