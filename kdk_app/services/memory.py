"""An in-memory service with the same semantics as MongoService, for tests, examples and benchmarks."""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .adapter import AdapterService
from .query import Query


def _is_small_decimal(text: str) -> bool:
    # ASCII digits only ("²".isdigit() is true, int("²") fails), short enough for a cheap int().
    return len(text) <= 19 and text.isascii() and text.isdigit()


def get_path(record: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """The value at a dot path, and whether it exists."""
    value: Any = record
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and _is_small_decimal(part) and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def _equals(stored: Any, wanted: Any) -> bool:
    # MongoDB semantics: a scalar matches an array field that contains it.
    if isinstance(stored, list) and not isinstance(wanted, list):
        return any(_equals(item, wanted) for item in stored)
    if isinstance(stored, bool) != isinstance(wanted, bool):
        return False
    return stored == wanted


def _compare(stored: Any, operator: str, operand: Any) -> bool:
    if stored is None or operand is None or isinstance(stored, bool) != isinstance(operand, bool):
        return False
    try:
        if operator == "$lt":
            return stored < operand
        if operator == "$lte":
            return stored <= operand
        if operator == "$gt":
            return stored > operand
        return stored >= operand
    except TypeError:  # MongoDB never matches across type brackets
        return False


def _match_operators(exists: bool, stored: Any, operators: Mapping[str, Any]) -> bool:
    for operator, operand in operators.items():
        if operator == "$in":
            if not any(_equals(stored, item) for item in operand):
                return False
        elif operator == "$nin":
            if any(_equals(stored, item) for item in operand):
                return False
        elif operator == "$ne":
            if _equals(stored, operand) or (operand is None and not exists):
                return False
        elif operator in ("$lt", "$lte", "$gt", "$gte"):
            values = stored if isinstance(stored, list) else [stored]
            if not any(_compare(v, operator, operand) for v in values):
                return False
        else:
            raise ValueError(f"MemoryService does not implement {operator}")
    return True


Predicate = Callable[[Mapping[str, Any]], bool]


def _getter(path: str) -> Callable[[Mapping[str, Any]], tuple[bool, Any]]:
    if "." in path:
        return lambda record: get_path(record, path)
    missing = object()

    def get(record: Mapping[str, Any]) -> tuple[bool, Any]:
        value = record.get(path, missing)
        return (False, None) if value is missing else (True, value)

    return get


def _field_predicate(key: str, condition: Any) -> Predicate:
    get = _getter(key)
    if isinstance(condition, Mapping) and any(str(k).startswith("$") for k in condition):
        return lambda record: _match_operators(*get(record), condition)
    if condition is None:  # MongoDB: null matches a missing field too

        def is_null(record: Mapping[str, Any]) -> bool:
            exists, stored = get(record)
            return not exists or stored is None

        return is_null

    if "." not in key and type(condition) in (str, int, float):
        missing = object()

        def equals_scalar(record: Mapping[str, Any]) -> bool:
            stored = record.get(key, missing)
            if stored.__class__ is condition.__class__:
                return stored == condition
            return stored is not missing and _equals(stored, condition)

        return equals_scalar

    def equals(record: Mapping[str, Any]) -> bool:
        exists, stored = get(record)
        if not exists:
            return False
        if type(stored) is type(condition):
            return stored == condition  # the common case, without the list and bool rules
        return _equals(stored, condition)

    return equals


def compile_query(query: Mapping[str, Any]) -> Predicate:
    """A predicate for ``query``, built once per call rather than re-read for every record."""
    predicates: list[Predicate] = []
    for key, condition in query.items():
        if key == "$or":
            clauses = [compile_query(clause) for clause in condition]
            predicates.append(lambda record, c=clauses: any(p(record) for p in c))
        elif key == "$and":
            clauses = [compile_query(clause) for clause in condition]
            predicates.append(lambda record, c=clauses: all(p(record) for p in c))
        else:
            predicates.append(_field_predicate(key, condition))
    if len(predicates) == 1:
        return predicates[0]
    return lambda record: all(p(record) for p in predicates)


def matches(record: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    return compile_query(query)(record)


_IMMUTABLE = frozenset({str, int, float, bool, type(None)})


def _copy(value: Any) -> Any:
    """A copy of JSON-like data; much cheaper than copy.deepcopy, which handles any object."""
    if type(value) is dict:
        return {k: v if type(v) in _IMMUTABLE else _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [v if type(v) in _IMMUTABLE else _copy(v) for v in value]
    return value if type(value) in _IMMUTABLE else copy.deepcopy(value)


def _sort_key(value: Any) -> tuple[int, Any]:
    # MongoDB's order of type brackets: null, numbers, strings, objects, arrays, booleans.
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (5, value)
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, str(value))


def sort_records(records: list[dict[str, Any]], sort: Mapping[str, int]) -> list[dict[str, Any]]:
    for field, direction in reversed(list(sort.items())):
        records.sort(key=lambda r, f=field: _sort_key(get_path(r, f)[1]), reverse=direction < 0)
    return records


class MemoryService(AdapterService):
    """Records in a dict, keyed by id; integer ids counting up from 0 unless the data has one."""

    def __init__(self, store: Iterable[Mapping[str, Any]] = (), **options: Any) -> None:
        super().__init__(**options)
        self.store: dict[Any, dict[str, Any]] = {}
        self._ids = itertools.count()
        self._lock = threading.RLock()
        for record in store:
            self._insert(dict(record))

    def _insert(self, record: dict[str, Any]) -> dict[str, Any]:
        if record.get(self.id) is None:
            record[self.id] = next(self._ids)
        self.store[record[self.id]] = record
        return record

    def _key(self, id: Any) -> Any:
        """REST ids are strings: '1' finds the record stored under 1."""
        if id in self.store:
            return id
        if isinstance(id, str) and _is_small_decimal(id.removeprefix("-")) and int(id) in self.store:
            return int(id)
        return id

    def _matching(self, query: Query) -> list[dict[str, Any]]:
        records = self.store.values()
        if not query.query:
            return list(records)
        if len(query.query) == 1:
            ((key, wanted),) = query.query.items()
            if "." not in key and type(wanted) in (str, int, float):
                # The most common query, one field equal to a scalar, without a call per record.
                cls = wanted.__class__
                return [
                    r
                    for r in records
                    if ((v := r.get(key)).__class__ is cls and v == wanted)
                    or (v is not None and v.__class__ is not cls and _equals(v, wanted))
                ]
        predicate = compile_query(query.query)
        return [r for r in records if predicate(r)]

    def _find(self, params: dict[str, Any]) -> Any:
        paginate = self.paginate_options(params)
        query = self.parse_query(params)
        with self._lock:
            found = sort_records(self._matching(query), query.sort)
        total = len(found)
        found = found[query.skip :]
        if query.limit is not None:
            found = found[: query.limit]
        data = [_copy(self.select(r, query.select, params)) for r in found]
        return self.page(query, total, data, paginate)

    def _get(self, id: Any, params: dict[str, Any]) -> Any:
        query = self.parse_query(params, paginated=False)
        with self._lock:
            record = self.store.get(self._key(id))
            if record is None or not matches(record, query.query):
                raise self.not_found(id)
            return _copy(self.select(record, query.select, params))

    def _create(self, data: Any, params: dict[str, Any]) -> Any:
        query = self.parse_query(params, paginated=False)
        items = data if isinstance(data, list) else [data]
        with self._lock:
            created = [_copy(self._insert(_copy(dict(item)))) for item in items]
        created = [self.select(r, query.select, params) for r in created]
        return created if isinstance(data, list) else created[0]

    def _update(self, id: Any, data: Any, params: dict[str, Any]) -> Any:
        query = self.parse_query(params, paginated=False)
        with self._lock:
            key = self._key(id)
            current = self.store.get(key)
            if current is None or not matches(current, query.query):
                raise self.not_found(id)
            record = {**_copy(dict(data)), self.id: current[self.id]}
            self.store[key] = record
            return _copy(self.select(record, query.select, params))

    def _targets(self, id: Any, query: Query) -> list[Any]:
        if id is None:
            return [r[self.id] for r in self._matching(query)]
        key = self._key(id)
        record = self.store.get(key)
        if record is None or not matches(record, query.query):
            raise self.not_found(id)
        return [key]

    def _patch(self, id: Any, data: Any, params: dict[str, Any]) -> Any:
        query = self.parse_query(params, paginated=False)
        changes = {k: v for k, v in dict(data).items() if k != self.id}
        with self._lock:
            keys = self._targets(id, query)
            for key in keys:
                self.store[key].update(_copy(changes))
            patched = [_copy(self.select(self.store[k], query.select, params)) for k in keys]
        return patched if id is None else patched[0]

    def _remove(self, id: Any, params: dict[str, Any]) -> Any:
        query = self.parse_query(params, paginated=False)
        with self._lock:
            keys = self._targets(id, query)
            removed = [self.select(self.store.pop(k), query.select, params) for k in keys]
        return removed if id is None else removed[0]
