"""Feathers 5 resolvers: per-property functions run on data, results, queries and what external
callers receive, and the hooks that apply them (``resolve_data``, ``resolve_result``,
``resolve_external``, ``resolve_query``).

A property resolver is ``fn(value, data, context)``; what it returns becomes the property, and
``None`` removes it (Feathers' ``undefined``). Return :data:`NULL` to store a real ``None``.
Every resolver sees the record as it came in, never what another resolver of the same record
returned. A :class:`BatchProperty` (``batch_virtual``, ``populate``) loads what it needs once
for all the records of a call, so a page of 25 messages makes one call for their users.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import BadRequest, FeathersError
from .hooks import NOT_SET, HookContext

logger = logging.getLogger(__name__)

PropertyFn = Callable[[Any, dict[str, Any], HookContext], Any]
VirtualFn = Callable[[dict[str, Any], HookContext], Any]


class _Null:
    def __repr__(self) -> str:
        return "NULL"


# Returned by a resolver: the property is kept with the value None (None alone removes it).
NULL: Any = _Null()


class Virtual:
    """A property computed from the whole record: ``fn(data, context)``; its current value is ignored."""

    def __init__(self, fn: VirtualFn) -> None:
        self.fn = fn

    def __call__(self, value: Any, data: dict[str, Any], context: HookContext) -> Any:
        return self.fn(data, context)


def virtual(fn: VirtualFn) -> Virtual:
    """Feathers' ``virtual((data, context) => …)``."""
    return Virtual(fn)


class BatchProperty:
    """A property whose values are loaded once for all the records of a call.

    ``load(records, context)`` runs once per call (once per page); ``pick(state, data, context)``
    then gives each record its value from what ``load`` returned.
    """

    def __init__(
        self,
        load: Callable[[list[Mapping[str, Any]], HookContext], Any],
        pick: Callable[[Any, dict[str, Any], HookContext], Any],
    ) -> None:
        self.load = load
        self.pick = pick


def batch_virtual(
    load: Callable[[list[Mapping[str, Any]], HookContext], Any],
    pick: Callable[[Any, dict[str, Any], HookContext], Any],
) -> BatchProperty:
    """A virtual property loaded for all records at once (see :class:`BatchProperty`)."""
    return BatchProperty(load, pick)


class Resolver:
    """Property resolvers by name; ``resolve`` one record or ``resolve_many`` (batched) records."""

    def __init__(self, properties: Mapping[str, Any]) -> None:
        for name, fn in properties.items():
            if not callable(fn) and not isinstance(fn, BatchProperty):
                raise TypeError(f"The resolver of '{name}' must be a function, virtual() or batch_virtual()")
        self.properties = dict(properties)

    def resolve(self, data: Any, context: HookContext) -> Any:
        return self.resolve_many([data], context)[0]

    def resolve_many(self, records: list[Any], context: HookContext) -> list[Any]:
        objects = [r for r in records if isinstance(r, Mapping)]
        states = {
            name: prop.load(objects, context) if objects else None
            for name, prop in self.properties.items()
            if isinstance(prop, BatchProperty)
        }
        return [self._one(r, context, states) if isinstance(r, Mapping) else r for r in records]

    def _one(self, data: Mapping[str, Any], context: HookContext, states: dict[str, Any]) -> dict[str, Any]:
        original = dict(data)
        result: dict[str, Any] = {}
        failures: dict[str, Any] = {}
        for name in [*original, *(n for n in self.properties if n not in original)]:
            fn = self.properties.get(name)
            if fn is None:
                result[name] = original[name]
                continue
            try:
                if isinstance(fn, BatchProperty):
                    value = fn.pick(states[name], original, context)
                else:
                    value = fn(original.get(name), original, context)
            except FeathersError as error:  # Feathers collects these into one BadRequest
                failures[name] = error.to_json()
                continue
            if value is NULL:
                result[name] = None
            elif value is not None:
                result[name] = value
        if failures:
            raise BadRequest("Error resolving data", errors=failures)
        return result


def resolve(properties: Mapping[str, Any] | Resolver) -> Resolver:
    """Feathers' ``resolve({...})``: a :class:`Resolver` from property resolvers."""
    return properties if isinstance(properties, Resolver) else Resolver(properties)


def is_page(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("data"), list) and "total" in value


def resolve_value(resolver: Resolver, value: Any, context: HookContext) -> Any:
    """A record, a list of records, or a page (its ``data``), resolved in one batch."""
    if is_page(value):
        return {**value, "data": resolver.resolve_many(value["data"], context)}
    if isinstance(value, list):
        return resolver.resolve_many(value, context)
    if isinstance(value, Mapping):
        return resolver.resolve(value, context)
    return value  # None, a count … nothing to resolve


def _resolvers(resolvers: Iterable[Mapping[str, Any] | Resolver]) -> list[Resolver]:
    found = [resolve(r) for r in resolvers]
    if not found:
        raise ValueError("At least one resolver is needed")
    return found


def _run(resolvers: list[Resolver], value: Any, context: HookContext) -> Any:
    for resolver in resolvers:  # Feathers runs several resolvers one after the other
        value = resolve_value(resolver, value, context)
    return value


DATA_METHODS = frozenset({"create", "update", "patch"})

Hook = Callable[..., Any]


def resolve_data(*resolvers: Mapping[str, Any] | Resolver) -> Hook:
    """Before (or around) hook: ``context.data`` of create, update and patch resolved (each
    item of a multi create)."""
    chain = _resolvers(resolvers)

    def hook(context: HookContext, next_: Callable[[], None] | None = None) -> None:
        if context.method in DATA_METHODS and context.data is not None:
            context.data = _run(chain, context.data, context)
        if next_ is not None:
            next_()

    return hook


def resolve_query(*resolvers: Mapping[str, Any] | Resolver) -> Hook:
    """Before (or around) hook: ``params["query"]`` resolved, e.g. to force ``user_id``."""
    chain = _resolvers(resolvers)

    def hook(context: HookContext, next_: Callable[[], None] | None = None) -> None:
        query = context.params.get("query") or {}
        resolved = query
        for resolver in chain:
            resolved = resolver.resolve(resolved, context)
        context.params = {**context.params, "query": resolved}
        if next_ is not None:
            next_()

    return hook


def resolve_result(*resolvers: Mapping[str, Any] | Resolver) -> Hook:
    """After (or around) hook: the result resolved (a page's ``data``, a list, one record)."""
    chain = _resolvers(resolvers)

    def hook(context: HookContext, next_: Callable[[], None] | None = None) -> None:
        if next_ is not None:
            next_()
        if context.has_result:
            context.result = _run(chain, context.result, context)

    return hook


class WithDispatch(dict):  # type: ignore[type-arg]
    """A populated record as internal callers see it, carrying what external ones may see."""

    dispatch: Any = NOT_SET


def external_version(value: Any) -> Any:
    """``value`` with every populated record (at any depth) replaced by its external version."""
    if isinstance(value, WithDispatch) and value.dispatch is not NOT_SET:
        return external_version(value.dispatch)
    if isinstance(value, Mapping):
        return {k: external_version(v) for k, v in value.items()}
    if isinstance(value, list):
        return [external_version(item) for item in value]
    return value


def resolve_external(*resolvers: Mapping[str, Any] | Resolver) -> Hook:
    """Around (or after) hook: what external callers and events get, in ``context.dispatch``.

    It runs on every call, internal ones included, because the events of an internal call go
    to external clients too; internal callers still get ``context.result`` untouched. REST and
    Socket.IO answer external callers with ``context.safe_result`` (the dispatch), and events
    carry ``ServiceEvent.payload`` (the dispatch, paired per record). Populated records in the
    result are replaced by their own service's dispatch first.
    """
    chain = _resolvers(resolvers)

    def hook(context: HookContext, next_: Callable[[], None] | None = None) -> None:
        if next_ is not None:
            next_()
        if not context.has_result:
            return
        source = context.result if context.dispatch is NOT_SET else context.dispatch
        context.dispatch = _run(chain, external_version(source), context)

    return hook
