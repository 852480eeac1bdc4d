"""An in-memory service with the same semantics as MongoService, for tests, examples and benchmarks.

Queries are matched by ``core.matcher``, MongoDB's semantics for the Feathers query syntax.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from ..core.matcher import filter_records, matches
from .adapter import AdapterService
from .query import Query


def _is_small_decimal(text: str) -> bool:
    # ASCII digits only ("²".isdigit() is true, int("²") fails), short enough for a cheap int().
    return len(text) <= 19 and text.isascii() and text.isdigit()


def get_path(record: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """The value at a dot path (an index into an array), and whether it exists: the sort key."""
    value: Any = record
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and _is_small_decimal(part) and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


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


def _record_key(field: str, record: dict[str, Any]) -> tuple[int, Any]:
    return _sort_key(get_path(record, field)[1])


def sort_records(records: list[dict[str, Any]], sort: Mapping[str, int]) -> list[dict[str, Any]]:
    for field, direction in reversed(list(sort.items())):
        records.sort(key=partial(_record_key, field), reverse=direction < 0)
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
        return filter_records(self.store.values(), query.query)

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
