"""Common hooks, after ``feathers-hooks-common``: disallow, iff, discard, prevent_changes,
soft_delete, set_now and a per-request cache.

Each hook is ``hook(context)`` (before/after) unless said otherwise; ``cache`` is an around hook.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import BadRequest, MethodNotAllowed
from .hooks import NOT_SET, HookContext
from .resolvers import is_page

Hook = Callable[..., Any]
Predicate = Callable[[HookContext], Any] | bool


def now_ms() -> int:
    """Milliseconds since the epoch, as ``Date.now()`` (what the Feathers chat stores)."""
    return time.time_ns() // 1_000_000


def is_provider(*providers: str) -> Callable[[HookContext], bool]:
    """A predicate: the call came from one of ``providers`` ("external": any, "server": internal)."""
    if not providers:
        raise ValueError("is_provider needs at least one provider")

    def predicate(context: HookContext) -> bool:
        provider = context.params.get("provider")
        for wanted in providers:
            if wanted == "server" and not provider:
                return True
            if wanted == "external" and provider:
                return True
            if provider and wanted == provider:
                return True
        return False

    return predicate


def disallow(*providers: str) -> Hook:
    """Refuse the call with 405 MethodNotAllowed: from every caller, internal ones included,
    when no provider is named (as Feathers); else from the named ones: ``"rest"``,
    ``"socketio"``, ``"external"`` (any of them) or ``"server"`` (internal calls)."""
    applies = is_provider(*providers) if providers else (lambda context: True)

    def hook(context: HookContext) -> None:
        if applies(context):
            caller = context.params.get("provider") or "server"
            raise MethodNotAllowed(f"Provider '{caller}' can not call '{context.method}'. (disallow)")

    return hook


def _apply(context: HookContext, hooks: Iterable[Hook]) -> None:
    for hook in hooks:  # as the hook chain does: a returned mapping is assigned to the context
        returned = hook(context)
        if isinstance(returned, Mapping):
            for key, value in returned.items():
                setattr(context, key, value)


class Iff:
    """``iff(predicate, *hooks)``: the hooks run when the predicate holds; ``.else_(*hooks)`` otherwise."""

    def __init__(self, predicate: Predicate, hooks: Iterable[Hook]) -> None:
        self.predicate = predicate
        self.hooks = list(hooks)
        self.otherwise: list[Hook] = []

    def else_(self, *hooks: Hook) -> Iff:
        self.otherwise = list(hooks)
        return self

    def __call__(self, context: HookContext) -> None:
        holds = self.predicate(context) if callable(self.predicate) else self.predicate
        _apply(context, self.hooks if holds else self.otherwise)


def iff(predicate: Predicate, *hooks: Hook) -> Iff:
    return Iff(predicate, hooks)


def iff_else(predicate: Predicate, true_hooks: Iterable[Hook], false_hooks: Iterable[Hook]) -> Iff:
    return Iff(predicate, true_hooks).else_(*false_hooks)


# --- paths in records ----------------------------------------------------------------------
def _without(record: Any, path: str) -> Any:
    """A copy of ``record`` without the dot ``path`` (a literal dotted key is removed too)."""
    if not isinstance(record, Mapping):
        return record
    copied = dict(record)
    copied.pop(path, None)
    head, _, rest = path.partition(".")
    if rest and isinstance(copied.get(head), Mapping):
        copied[head] = _without(copied[head], rest)
    return copied


def _has(record: Mapping[str, Any], path: str) -> bool:
    if path in record:
        return True
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return True


def _each(value: Any, change: Callable[[Any], Any]) -> Any:
    if is_page(value):
        return {**value, "data": [change(item) for item in value["data"]]}
    if isinstance(value, list):
        return [change(item) for item in value]
    return change(value)


def _strip(value: Any, fields: tuple[str, ...]) -> Any:
    def record(item: Any) -> Any:
        for field in fields:
            item = _without(item, field)
        return item

    return _each(value, record)


def discard(*fields: str) -> Hook:
    """Remove ``fields`` (dot paths allowed) for external callers only: from the data before,
    from the result (and any dispatch) after. Internal calls keep them."""
    if not fields:
        raise ValueError("discard needs at least one field")

    def hook(context: HookContext) -> None:
        if not context.params.get("provider"):
            return
        if context.type == "before":
            if context.data is not None:
                context.data = _strip(context.data, fields)
            return
        if context.dispatch is not NOT_SET:
            context.dispatch = _strip(context.dispatch, fields)
        if context.has_result:
            context.result = _strip(context.result, fields)

    return hook


def prevent_changes(*fields: Any) -> Hook:
    """Before patch: ``fields`` may not be changed. ``prevent_changes("email")`` drops them
    from the data; ``prevent_changes(True, "email")`` refuses the call with 400 BadRequest
    (Feathers' ``preventChanges(ifThrow, ...fields)``)."""
    raise_error = False
    if fields and isinstance(fields[0], bool):
        raise_error, fields = fields[0], fields[1:]
    names = tuple(str(f) for f in fields)
    if not names:
        raise ValueError("prevent_changes needs at least one field")

    def hook(context: HookContext) -> None:
        if context.method != "patch" or not isinstance(context.data, Mapping):
            return
        present = [name for name in names if _has(context.data, name)]
        if present and raise_error:
            raise BadRequest(f"Field {present[0]} may not change. (preventChanges)")
        for name in present:
            context.data = _without(context.data, name)

    return hook


def set_now(*fields: str) -> Hook:
    """Set ``fields`` to :func:`now_ms` (milliseconds since the epoch): on the data in a before
    hook (each item of a multi create), on the result in an after hook."""
    if not fields:
        raise ValueError("set_now needs at least one field")

    def stamp(item: Any) -> Any:
        if not isinstance(item, Mapping):
            return item
        now = now_ms()
        return {**item, **dict.fromkeys(fields, now)}

    def hook(context: HookContext) -> None:
        if context.type == "after":
            if context.has_result:
                context.result = _each(context.result, stamp)
        elif context.data is not None:
            context.data = _each(context.data, stamp)

    return hook


def soft_delete(field: str = "deleted_at") -> Hook:
    """Before hook for ``all`` methods: ``remove`` becomes a ``patch`` setting ``field`` to
    :func:`now_ms`; find, get, update, patch and remove only see records without ``field``
    (a ``{field: None}`` query: null or missing). ``params["with_deleted"] = True`` turns it off
    for one call. The patch is a call of this service with the remove's params, so its hooks
    run and it emits ``patched``; the remove then emits ``removed`` with the patched record.
    With a service schema and ``query_fields="schema"``, ``field`` must be declared in it."""

    def hook(context: HookContext) -> None:
        params = context.params
        if params.get("with_deleted") or context.method == "create":
            return
        query = {**(params.get("query") or {}), field: None}
        context.params = {**params, "query": query}
        if context.method == "remove" and not context.has_result:
            context.result = context.service.patch(context.id, {field: now_ms()}, context.params)

    return hook


# --- a per-request cache -----------------------------------------------------------------------
def request_cache(context: HookContext) -> dict[Any, Any]:
    """The cache of the call ``context`` belongs to (created on first use). Pass it on as
    ``params["cache"]`` to the calls it makes; ``populate`` does."""
    store: dict[Any, Any] = context.params.setdefault("cache", {})
    return store


def _cache_key(context: HookContext) -> tuple[str, str, str]:
    return (context.path, str(context.id), repr(sorted((context.params.get("query") or {}).items())))


def cache() -> Hook:
    """Around hook: a ``get`` answered from ``params["cache"]`` when the same record was got
    before in that cache, so resolvers of one request get each record once. Only calls that
    carry a cache use it (no global state); patch, update and remove of an id drop it."""

    def hook(context: HookContext, next_: Callable[[], None]) -> None:
        store = context.params.get("cache")
        if not isinstance(store, dict):
            next_()
            return
        if context.method != "get":
            next_()
            if context.id is not None:
                for key in [k for k in store if k[:2] == (context.path, str(context.id))]:
                    del store[key]
            return
        key = _cache_key(context)
        if key in store:
            context.result = copy.deepcopy(store[key])
            return
        next_()
        store[key] = copy.deepcopy(context.result)

    return hook
