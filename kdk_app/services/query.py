"""Validation and normalisation of Feathers queries (docs/protocol.md §2.1), shared by every adapter.

Only allow-listed filters and operators pass; everything else is a BadRequest, so a client can
never smuggle a MongoDB operator (``$where``, ``$regex``, ``$expr`` …) into a query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import BadRequest
from ..core.limits import INT64_MAX

FILTERS = ("$limit", "$skip", "$sort", "$select", "$or", "$and")
OPERATORS = ("$in", "$nin", "$lt", "$lte", "$gt", "$gte", "$ne", "$or")
LIST_OPERATORS = ("$in", "$nin")
MAX_DEPTH = 8

# Converts one query value for a field, or raises BadRequest; None when no conversion applies.
ValueConverter = Callable[[str, Any], Any]


@dataclass
class Query:
    """A validated query: the property part, and the normalised paging and shaping filters."""

    query: dict[str, Any]
    limit: int | None = None
    skip: int = 0
    sort: dict[str, int] = field(default_factory=dict)
    select: list[str] | None = None
    extra_filters: dict[str, Any] = field(default_factory=dict)


# ASCII digits only ("²".isdigit() is true, int("²") fails), at most 19 of them (int64).
_DECIMAL = re.compile(r"\+?[0-9]{1,19}")


def parse_non_negative_int(name: str, value: Any) -> int:
    """``$limit`` and ``$skip``: a whole number ≥ 0, from a number or a URL string."""
    if isinstance(value, bool):
        raise BadRequest(f"Invalid value for {name}: must be a non-negative integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise BadRequest(f"Invalid value for {name}: must be a non-negative integer")
    if value > INT64_MAX:  # MongoDB takes 64-bit numbers only
        raise BadRequest(f"Invalid value for {name}: number out of range")
    return value


def parse_sort(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise BadRequest("Invalid value for $sort: must be an object of field: 1 | -1")
    sort: dict[str, int] = {}
    for key, direction in value.items():
        _check_field_name(key)
        if isinstance(direction, str) and direction.strip() in ("1", "-1"):
            direction = int(direction)
        elif isinstance(direction, str) and direction.lower() in ("asc", "desc"):
            direction = 1 if direction.lower() == "asc" else -1
        if isinstance(direction, bool) or direction not in (1, -1):
            raise BadRequest(f"Invalid sort direction for '{key}': must be 1 or -1")
        sort[key] = int(direction)
    return sort


def parse_select(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Mapping):  # {"0": "a"} left over from a parser, or {a: 1} projections
        value = list(value.values()) if all(_is_index(k) for k in value) else list(value)
    if not isinstance(value, list):
        raise BadRequest("Invalid value for $select: must be an array of field names")
    fields = []
    for item in value:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise BadRequest("Invalid value for $select: must be an array of field names")
        _check_field_name(str(item))
        fields.append(str(item))
    return fields


def _is_index(key: Any) -> bool:
    """An array index as qs leaves it in an object (``{"0": …}``); short, so ``int()`` is cheap."""
    return isinstance(key, str) and len(key) <= 10 and key.isascii() and key.isdigit()


def _check_field_name(name: Any) -> None:
    if not isinstance(name, str) or not name or name.startswith("$") or "\x00" in name:
        raise BadRequest(f"Invalid query field {name!r}")


class QueryValidator:
    """Validates a query against the allow-lists and converts values per field."""

    def __init__(
        self,
        *,
        operators: Iterable[str] = (),
        filters: Mapping[str, Any] | Iterable[str] = (),
        protected_fields: Iterable[str] = (),
        allowed_fields: Iterable[str] | None = None,
        convert: ValueConverter | None = None,
    ) -> None:
        self.operators = frozenset((*OPERATORS, *operators))
        self.filters = dict(filters) if isinstance(filters, Mapping) else dict.fromkeys(filters, True)
        self.protected_fields = frozenset(protected_fields)
        self.allowed_fields = frozenset(allowed_fields) if allowed_fields is not None else None
        self.convert = convert

    def parse(self, raw: Any, paginate: Any = None) -> Query:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise BadRequest("Invalid query: must be an object")
        result = Query(query={})
        for key, value in raw.items():
            if key == "$limit":
                result.limit = parse_non_negative_int(key, value)
            elif key == "$skip":
                result.skip = parse_non_negative_int(key, value)
            elif key == "$sort":
                result.sort = parse_sort(value)
                self._check_fields(result.sort)
            elif key == "$select":
                result.select = parse_select(value)
                self._check_fields(result.select)
            elif key in ("$or", "$and"):
                result.query[key] = self._logical(key, value, depth=1)
            elif isinstance(key, str) and key.startswith("$"):
                if key not in self.filters:
                    raise BadRequest(f"Invalid filter value {key}")
                converter = self.filters[key]
                result.extra_filters[key] = converter(value) if callable(converter) else value
            else:
                result.query[key] = self._property(key, value, depth=1)
        result.limit = effective_limit(result.limit, paginate)
        return result

    def validate_where(self, raw: Any) -> dict[str, Any]:
        """Only the property part (no paging filters), e.g. for a permission condition."""
        return self.parse(raw).query

    def _check_fields(self, names: Iterable[str]) -> None:
        for name in names:
            root = name.split(".", 1)[0]
            if root in self.protected_fields or name in self.protected_fields:
                raise BadRequest(f"Invalid query field '{name}'")
            if self.allowed_fields is not None and root not in self.allowed_fields:
                raise BadRequest(f"Invalid query field '{name}'")

    def _logical(self, key: str, value: Any, depth: int) -> list[dict[str, Any]]:
        if depth > MAX_DEPTH:
            raise BadRequest("Query is nested too deeply")
        if isinstance(value, Mapping) and all(_is_index(k) for k in value):
            value = [value[k] for k in sorted(value, key=int)]
        if not isinstance(value, list) or not value:
            raise BadRequest(f"Invalid value for {key}: must be a non-empty array of queries")
        clauses = []
        for clause in value:
            if not isinstance(clause, Mapping):
                raise BadRequest(f"Invalid value for {key}: must be a non-empty array of queries")
            converted: dict[str, Any] = {}
            for name, inner in clause.items():
                # $or may nest inside $and or $or clauses; $and only at the top (as Feathers).
                if name == "$or":
                    converted[name] = self._logical(name, inner, depth + 1)
                elif isinstance(name, str) and name.startswith("$"):
                    raise BadRequest(f"Invalid query parameter {name}", dict(clause))
                else:
                    converted[name] = self._property(name, inner, depth + 1)
            clauses.append(converted)
        return clauses

    def _property(self, name: str, value: Any, depth: int) -> Any:
        _check_field_name(name)
        self._check_fields([name])
        if depth > MAX_DEPTH:
            raise BadRequest("Query is nested too deeply")
        if isinstance(value, Mapping):
            if any(isinstance(k, str) and k.startswith("$") for k in value):
                return self._operators(name, value, depth)
            # A sub-document equality match: the whole value is data, no operators inside.
            _reject_operators(value, depth)
            return self._convert(name, value)
        if isinstance(value, list):
            _reject_operators(value, depth)
        return self._convert(name, value)

    def _operators(self, name: str, value: Mapping[str, Any], depth: int) -> dict[str, Any]:
        converted: dict[str, Any] = {}
        for operator, operand in value.items():
            # $or is a clause key, never a property operator (MongoDB has no {field: {$or}}).
            if operator not in self.operators or operator == "$or":
                raise BadRequest(f"Invalid query parameter {operator}", dict(value))
            if operator in LIST_OPERATORS:
                if isinstance(operand, Mapping) and all(_is_index(k) for k in operand):
                    operand = [operand[k] for k in sorted(operand, key=int)]
                if not isinstance(operand, list):
                    operand = [operand]
                _reject_operators(operand, depth)
                converted[operator] = [self._convert(name, item) for item in operand]
            else:
                if isinstance(operand, (Mapping, list)):
                    _reject_operators(operand, depth)
                converted[operator] = self._convert(name, operand)
        return converted

    def _convert(self, name: str, value: Any) -> Any:
        return self.convert(name, value) if self.convert is not None else value


def _reject_operators(value: Any, depth: int) -> None:
    """Values used as data must not hide operators deeper down (``{a: {b: {$where: …}}}``)."""
    if depth > MAX_DEPTH:
        raise BadRequest("Query is nested too deeply")
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if not isinstance(key, str) or key.startswith("$"):
                raise BadRequest(f"Invalid query parameter {key}", dict(value))
            _reject_operators(inner, depth + 1)
    elif isinstance(value, list):
        for inner in value:
            _reject_operators(inner, depth + 1)


def effective_limit(limit: int | None, paginate: Any) -> int | None:
    """Feathers' ``getLimit``: the default when no $limit, capped at max (docs/protocol.md §1.4)."""
    if paginate and (paginate.get("default") or paginate.get("max")):
        base = paginate.get("default") or 0
        lower = limit if limit is not None else base
        upper = paginate.get("max")
        return min(lower, upper) if isinstance(upper, int) else lower
    return limit
