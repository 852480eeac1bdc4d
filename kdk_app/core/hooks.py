"""Hook contexts and the hook chain (docs/protocol.md §7).

A call is a chain of middlewares ``(context, next)``. Around hooks are middlewares already;
before, after and error hooks of one level are collected into a single middleware, as
``@feathersjs/hooks`` does, so ordering and error handling match Feathers exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .application import Application, Service

HOOK_TYPES = ("around", "before", "after", "error")

Hook = Callable[["HookContext"], Any]
AroundHook = Callable[["HookContext", Callable[[], None]], Any]


class _NotSet:
    def __repr__(self) -> str:
        return "NOT_SET"

    def __bool__(self) -> bool:
        return False


NOT_SET: Any = _NotSet()


class HookContext:
    """Everything a hook may read or change about one service call."""

    def __init__(
        self,
        app: Application,
        service: Service,
        method: str,
        *,
        id: Any = None,
        data: Any = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.service = service
        self.path: str = service.path
        self.method = method
        self.type: str | None = None
        self.id = id
        self.data = data
        self.params: dict[str, Any] = params if params is not None else {}
        self.params.setdefault("query", {})
        self.result: Any = NOT_SET
        self.dispatch: Any = NOT_SET
        self.error: BaseException | None = None
        self.original: HookContext | None = None
        self.http: dict[str, Any] = {}
        self.event: str | None = service.method_events.get(method)

    @property
    def has_result(self) -> bool:
        """True once anything, even None, was assigned to ``result`` (JS ``hasOwnProperty``)."""
        return self.result is not NOT_SET

    @property
    def safe_result(self) -> Any:
        """What is sent to an external caller: ``dispatch`` when a hook set it, else ``result``."""
        return self.result if self.dispatch is NOT_SET else self.dispatch

    @property
    def provider(self) -> str | None:
        return self.params.get("provider")

    def __repr__(self) -> str:
        return f"<HookContext {self.path}.{self.method} id={self.id!r}>"


def _apply_return(context: HookContext, returned: Any) -> None:
    # Feathers assigns the properties of a returned object onto the context.
    if isinstance(returned, Mapping):
        for key, value in returned.items():
            setattr(context, key, value)


def collect(before: list[Hook], after: list[Hook], error: list[Hook]) -> AroundHook:
    """One middleware running a level's before hooks, ``next``, its after hooks, and its error hooks."""

    def middleware(context: HookContext, next_: Callable[[], None]) -> None:
        try:
            for hook in before:
                context.type = "before"
                _apply_return(context, hook(context))
            next_()
            for hook in after:
                context.type = "after"
                _apply_return(context, hook(context))
        except Exception as exc:
            if not error:
                raise
            context.original = copy.copy(context)
            context.error = exc
            context.result = NOT_SET
            for hook in error:
                context.type = "error"
                try:
                    _apply_return(context, hook(context))
                except Exception as replaced:  # an error hook that raises replaces the error
                    context.error = replaced
            if context.has_result:
                context.error = None
                return
            raise context.error from None

    return middleware


def run_chain(middlewares: list[AroundHook], context: HookContext, method: Callable[[], None]) -> None:
    """Run ``middlewares`` in order around ``method``; each decides when to call the next one."""
    if not middlewares:
        method()
        return

    def step(index: int) -> None:
        if index == len(middlewares):
            method()
            return
        called = False

        def next_() -> None:
            nonlocal called
            if called:
                raise RuntimeError("next() called twice in one around hook")
            called = True
            step(index + 1)

        middlewares[index](context, next_)

    try:
        step(0)
    finally:
        # step refers to itself through its closure: break the cycle, so the context and
        # its result are freed at once rather than by the garbage collector.
        step = None  # type: ignore[assignment]  # noqa: F841


class HookRegistry:
    """Hooks of one level (the app or one service), by type and method (``all`` for every method)."""

    def __init__(self) -> None:
        self._hooks: dict[str, dict[str, list[Callable[..., Any]]]] = {t: {} for t in HOOK_TYPES}
        self._chains: dict[str, list[AroundHook]] = {}  # by method; cleared by register()

    def register(self, spec: Mapping[str, Any] | list[Any]) -> None:
        """Accept ``{type: {method|'all': [hooks]}}``, ``{type: [hooks]}``, or a list of around hooks."""
        if isinstance(spec, list):
            spec = {"around": {"all": spec}}
        for hook_type, by_method in spec.items():
            if hook_type not in HOOK_TYPES:
                raise ValueError(f"Unknown hook type '{hook_type}'")
            if not isinstance(by_method, Mapping):
                by_method = {"all": by_method}
            for method, hooks in by_method.items():
                hooks = list(hooks) if isinstance(hooks, Iterable) else [hooks]
                self._hooks[hook_type].setdefault(method, []).extend(hooks)
        self._chains.clear()

    def get(self, hook_type: str, method: str) -> list[Callable[..., Any]]:
        return self._hooks[hook_type].get(method, [])

    def middlewares(self, method: str) -> list[AroundHook]:
        """Around hooks (all, then the method's), then the collected before/after/error hooks."""
        chain = self._chains.get(method)
        if chain is None:
            chain = self._chains[method] = self._build(method)
        return chain

    def _build(self, method: str) -> list[AroundHook]:
        chain: list[AroundHook] = [*self.get("around", "all"), *self.get("around", method)]
        before = [*self.get("before", "all"), *self.get("before", method)]
        after = [*self.get("after", "all"), *self.get("after", method)]
        error = [*self.get("error", method), *self.get("error", "all")]
        if before or after or error:
            chain.append(collect(before, after, error))
        return chain
