"""Batched population: the records another service holds, fetched with one ``find`` per call.

``resolve_result({"user": populate("users", key="user_id")})`` on ``messages`` resolves a page
of 25 messages with ONE ``users.find({"query": {"_id": {"$in": [...]}}, "paginate": False})``.

The find is an internal call (no ``provider``): the hooks of ``users`` run, but checks that
only apply to external callers (``disallow("external")``, authorization of the caller) do not,
so a caller may see populated users it could not ``find`` itself. What it sees of them is still
their external version: when the outer call is external, the populated records are the
``users`` dispatch (what ``resolve_external`` on ``users`` left); for internal calls they are the
full records, carrying that dispatch, which ``resolve_external`` on the outer service puts in
its own dispatch (so events of internal calls are safe too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .hooks import HookContext
from .resolvers import BatchProperty, WithDispatch, is_page

ParamsSource = Mapping[str, Any] | Callable[[HookContext], Mapping[str, Any]] | None


def _key(value: Any) -> str:
    # ObjectIds leave MongoService as strings, REST ids arrive as strings: compare as text.
    return str(value)


def _path(record: Mapping[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _records(value: Any) -> list[Any]:
    if is_page(value):
        return list(value["data"])
    return list(value) if isinstance(value, list) else [value]


def populate(
    service: str,
    key: str,
    *,
    foreign: str | None = None,
    params: ParamsSource = None,
) -> BatchProperty:
    """The records of ``service`` whose ``foreign`` field (by default its id field) equals this
    record's ``key`` (a dot path). A list at ``key`` gives the list of the records found, in
    its order; a single key that matches nothing removes the property.

    ``params`` (a dict, or ``fn(context)`` returning one) are added to the find: a ``query``
    is merged with the ``$in``, e.g. ``{"query": {"$select": ["name"]}}``.
    """

    def load(records: list[Mapping[str, Any]], context: HookContext) -> dict[str, Any]:
        wanted: dict[str, Any] = {}
        for record in records:
            value = _path(record, key)
            for item in value if isinstance(value, list) else [value]:
                if item is not None and not isinstance(item, (Mapping, list)):
                    wanted.setdefault(_key(item), item)
        if not wanted:
            return {}
        target = context.app.service(service)
        field = foreign or str(getattr(target.impl, "id", "_id"))
        extra = dict(params(context) if callable(params) else (params or {}))
        query = {**(extra.pop("query", None) or {}), field: {"$in": list(wanted.values())}}
        inner: dict[str, Any] = {**extra, "query": query, "paginate": False}
        if "cache" in context.params:  # one request cache for the whole population tree
            inner.setdefault("cache", context.params["cache"])
        found = target.run("find", inner)
        results, dispatched = _records(found.result), _records(found.safe_result)
        external = bool(context.params.get("provider"))
        by_key: dict[str, Any] = {}
        for index, record in enumerate(results):
            if not isinstance(record, Mapping):
                continue
            safe = dispatched[index] if index < len(dispatched) else record
            if external:
                by_key.setdefault(_key(record.get(field)), safe)
            else:
                carried = WithDispatch(record)
                carried.dispatch = safe
                by_key.setdefault(_key(record.get(field)), carried)
        return by_key

    def pick(by_key: dict[str, Any], data: dict[str, Any], context: HookContext) -> Any:
        value = _path(data, key)
        if isinstance(value, list):
            return [by_key[_key(v)] for v in value if _key(v) in by_key]
        if value is None:
            return None
        return by_key.get(_key(value))

    return BatchProperty(load, pick)
