"""The transport-free application: services by path, hooks, and events.

``app.use(path, impl)`` wraps a service implementation in a :class:`Service` that runs every
call through the hook chain and emits the standard events once per record after success.
Transports (REST, Socket.IO, remote calls) only ever call :meth:`Service.call`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .hooks import NOT_SET, HookContext, HookRegistry, run_chain
from .limits import InputLimits
from .protocol import (  # noqa: F401 - re-exported: importers of these names predate protocol.py
    CUSTOM_ARGUMENTS,
    METHOD_ARGUMENTS,
    METHOD_EVENTS,
    PROTECTED_METHODS,
    STANDARD_EVENTS,
    STANDARD_METHODS,
    check_arity,
    check_method,
)

logger = logging.getLogger(__name__)

Listener = Callable[[Any, Any], Any]
# (service path, method, provider such as "rest", "socketio" or "server", outcome: "ok" or the
# error's class name, seconds the call took)
CallObserver = Callable[[str, str, str, str, float], None]


def normalize_path(path: str) -> str:
    return path.strip("/") or "/"


@dataclass
class ServiceEvent:
    """One event of one service, as it travels to publishers, sync and remote consumers."""

    path: str
    event: str
    data: Any
    # The HookContext of the call, or a lighter context object for events from elsewhere.
    context: HookContext | Any | None
    # True when the event happened on another instance and reached us through the sync bus.
    remote: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def payload(self) -> Any:
        """What leaves the process: ``dispatch`` when a hook set it (paired by index for multi
        calls), else the record. Sockets, the sync bus and remote consumers all send this."""
        context = self.context
        dispatch = getattr(context, "dispatch", NOT_SET)
        if dispatch is NOT_SET:
            return self.data
        result = getattr(context, "result", None)
        if isinstance(result, list) and isinstance(dispatch, list):
            for index, record in enumerate(result):
                if record is self.data and index < len(dispatch):
                    return dispatch[index]
            return self.data
        return dispatch


class EventEmitter:
    """A minimal synchronous event emitter; a listener's failure is logged, never propagated."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Callable[..., Any]]] = {}

    def on(self, event: str, listener: Callable[..., Any]) -> Callable[..., Any]:
        self._listeners.setdefault(event, []).append(listener)
        return listener

    def off(self, event: str, listener: Callable[..., Any] | None = None) -> None:
        if listener is None:
            self._listeners.pop(event, None)
        elif listener in self._listeners.get(event, []):
            self._listeners[event].remove(listener)

    def listeners(self, event: str) -> list[Callable[..., Any]]:
        return list(self._listeners.get(event, ()))

    def _emit_local(self, event: str, *args: Any) -> None:
        for listener in self.listeners(event):
            try:
                listener(*args)
            except Exception:
                logger.exception("listener for %r failed", event)


class Service(EventEmitter):
    """A service implementation wrapped with hooks and events; what ``app.service(path)`` returns."""

    def __init__(
        self,
        app: Application,
        path: str,
        impl: Any,
        methods: Iterable[str] | None = None,
        events: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.app = app
        self.path = path
        self.impl = impl
        implemented = [m for m in STANDARD_METHODS if callable(getattr(impl, m, None))]
        self.methods: list[str] = list(methods) if methods is not None else implemented
        for method in self.methods:
            if method in PROTECTED_METHODS or method.startswith("_"):
                raise ValueError(f"'{method}' on service '{path}' is not allowed as a custom method")
            if not callable(getattr(impl, method, None)):
                raise ValueError(f"Method '{method}' is not implemented by service '{path}'")
        self.custom_events: list[str] = list(events)
        self.events: list[str] = [*STANDARD_EVENTS, *self.custom_events]
        self.method_events = dict(METHOD_EVENTS)
        self.registry = HookRegistry()
        # Publishers by event ('' for all events); the real-time layer reads them.
        self.publishers: dict[str, Callable[..., Any]] = {}

    # --- configuration -------------------------------------------------------------------
    @property
    def is_remote(self) -> bool:
        """Served by another app through the distribution (its implementation says so)."""
        return bool(getattr(self.impl, "remote", False))

    def hooks(self, spec: Any) -> Service:
        self.registry.register(spec)
        return self

    def publish(self, event_or_fn: Any, fn: Callable[..., Any] | None = None) -> Service:
        event, publisher = ("", event_or_fn) if fn is None else (event_or_fn, fn)
        if event and event not in self.events:
            raise ValueError(f"'{event}' is not a valid service event for '{self.path}'")
        self.publishers[event] = publisher
        return self

    def __getattr__(self, name: str) -> Any:
        # Options and helpers of the implementation (e.g. ``options``, ``id``) read through.
        if name.startswith("__"):
            raise AttributeError(name)
        impl = self.__dict__.get("impl")
        if impl is None:
            raise AttributeError(name)
        if name in self.__dict__.get("methods", ()) and name not in STANDARD_METHODS:
            return lambda data=None, params=None: self.call(name, data, params)
        return getattr(impl, name)

    # --- the standard methods ------------------------------------------------------------
    def find(self, params: dict[str, Any] | None = None) -> Any:
        return self.call("find", params)

    def get(self, id: Any, params: dict[str, Any] | None = None) -> Any:
        return self.call("get", id, params)

    def create(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.call("create", data, params)

    def update(self, id: Any, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.call("update", id, data, params)

    def patch(self, id: Any, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.call("patch", id, data, params)

    def remove(self, id: Any, params: dict[str, Any] | None = None) -> Any:
        return self.call("remove", id, params)

    # --- calls ---------------------------------------------------------------------------
    def call(self, method: str, *args: Any) -> Any:
        """Run ``method`` with its positional arguments through hooks; return the result."""
        return self.run(method, *args).result

    def run(self, method: str, *args: Any) -> HookContext:
        """Like :meth:`call`, but return the whole context (transports need dispatch and http)."""
        if method not in STANDARD_METHODS:
            check_method(self.path, method, self.methods)
        if not callable(getattr(self.impl, method, None)):
            raise errors.MethodNotAllowed(f"Method '{method}' not allowed on service '{self.path}'")
        names = check_arity(method, args)
        values = dict(zip(names, args, strict=False))
        params = values.get("params")
        params = dict(params) if params else {}
        if params.get("provider"):  # from outside: refuse what no later step could handle
            limits = self.app.input_limits
            limits.check(values.get("id"), "id")
            limits.check(values.get("data"), "data")
            limits.check(params.get("query"), "query")
        context = HookContext(
            self.app, self, method, id=values.get("id"), data=values.get("data"), params=params
        )

        def invoke() -> None:
            if context.has_result:  # a before or around hook answered already
                return
            call_args = [getattr(context, name) for name in names]
            context.result = getattr(self.impl, method)(*call_args)

        chain = [*self.app.registry.middlewares(method), *self.registry.middlewares(method)]
        if not self.app.call_observers:
            run_chain(chain, context, invoke)
        else:
            started, outcome = time.perf_counter(), "ok"
            try:
                run_chain(chain, context, invoke)
            except BaseException as error:
                outcome = type(error).__name__
                raise
            finally:
                self.app.observe_call(self.path, method, params.get("provider"), outcome, started)
        if context.event:
            self._emit_method_event(context)
        return context

    def _emit_method_event(self, context: HookContext) -> None:
        event = context.event
        if event is None:
            return
        results = context.result if isinstance(context.result, list) else [context.result]
        for record in results:
            self.app.dispatch_event(ServiceEvent(self.path, event, record, context))

    def emit(self, event: str, data: Any, context: HookContext | None = None) -> None:
        """Emit an event of this service: local listeners, then publishers and sync."""
        self.app.dispatch_event(ServiceEvent(self.path, event, data, context))


class Application(EventEmitter):
    """Services by path, app-level hooks, settings, and the event pipeline."""

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.settings: dict[str, Any] = dict(settings or {})
        self.input_limits = InputLimits.from_settings(self.settings)
        self.services: dict[str, Service] = {}
        self.registry = HookRegistry()
        self.publishers: dict[str, Callable[..., Any]] = {}
        # Called with every ServiceEvent after local listeners ran: channels, sync, distribution.
        self.event_sinks: list[Callable[[ServiceEvent], Any]] = []
        self._routes: list[tuple[re.Pattern[str], str]] = []
        self._is_setup = False
        self._starters: list[Callable[[], Any]] = []
        self.started = False
        # Slots the layers fill and read (declared here, never attached from outside). Typed
        # loosely: the service layer imports none of the layers that fill them.
        self.channels: Any = None  # kdk_app.channels.Channels, from the real-time layer
        self.authentication: Any = None  # the authentication service, when configured
        self.distribution: Any = None  # kdk_app.distributed.Distribution, when configured
        # Called as provider(environ, params) with the WSGI environ of every REST call, and of
        # every socket handshake (into the connection, whose entries every call's params get).
        self.params_providers: list[Callable[[Mapping[str, Any], dict[str, Any]], None]] = []
        # Told of every service call once it ended (metrics): see CallObserver.
        self.call_observers: list[CallObserver] = []

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)

    def set(self, key: str, value: Any) -> Application:
        self.settings[key] = value
        return self

    def hooks(self, spec: Any) -> Application:
        self.registry.register(spec)
        return self

    def publish(self, event_or_fn: Any, fn: Callable[..., Any] | None = None) -> Application:
        event, publisher = ("", event_or_fn) if fn is None else (event_or_fn, fn)
        self.publishers[event] = publisher
        return self

    def channel(self, *names: Any) -> Any:
        """Feathers' ``app.channel(...)``: the channel of these names (a ``kdk_app.channels.Channel``
        with ``join``, ``leave``, ``filter``, ``send`` and ``connections``)."""
        if self.channels is None:
            raise RuntimeError("channels need the real-time layer (socketio.enabled, or redis.url)")
        return self.channels.channel(*names)

    def use(
        self,
        path: str,
        impl: Any,
        *,
        methods: Iterable[str] | None = None,
        events: Iterable[str] = (),
    ) -> Service:
        path = normalize_path(path)
        if path in self.services:
            raise ValueError(f"A service is already registered at '{path}'")
        service = Service(self, path, impl, methods, events)
        self.services[path] = service
        self._routes.append((_route_pattern(path), path))
        if self._is_setup:
            self._setup_service(service)
        self.emit("service", service)
        return service

    def unuse(self, path: str) -> Service | None:
        path = normalize_path(path)
        service = self.services.pop(path, None)
        self._routes = [(pattern, p) for pattern, p in self._routes if p != path]
        if service is not None:
            teardown = getattr(service.impl, "teardown", None)
            if callable(teardown):
                teardown(self, path)
            self.emit("service-removed", service)
        return service

    def service(self, path: str) -> Service:
        found = self.lookup(path)
        if found is None:
            raise errors.NotFound(f"Service '{normalize_path(path)}' not found")
        return found[0]

    def lookup(self, path: str) -> tuple[Service, dict[str, str]] | None:
        """The service for a concrete path, with the values of ``:placeholders`` in its route."""
        path = normalize_path(path)
        if path in self.services:
            return self.services[path], {}
        for pattern, registered in self._routes:
            match = pattern.fullmatch(path)
            if match:
                return self.services[registered], match.groupdict()
        return None

    def emit(self, event: str, *args: Any) -> None:
        self._emit_local(event, *args)

    def observe_call(self, path: str, method: str, provider: Any, outcome: str, started: float) -> None:
        """Tell each call observer; one that fails is logged, never the call's own error."""
        seconds = time.perf_counter() - started
        for observer in list(self.call_observers):
            try:
                observer(path, method, str(provider or "server"), outcome, seconds)
            except Exception:
                logger.exception("call observer failed for %s %s", path, method)

    def dispatch_event(self, event: ServiceEvent) -> None:
        """Local listeners first (at once, whatever the broker does), then every sink."""
        service = self.services.get(event.path)
        if service is not None:
            service._emit_local(event.event, event.data, event.context)
        for sink in list(self.event_sinks):
            try:
                sink(event)
            except Exception:
                logger.exception("event sink failed for %s %s", event.path, event.event)

    def setup(self) -> Application:
        if not self._is_setup:
            self._is_setup = True
            for service in list(self.services.values()):
                self._setup_service(service)
        return self

    def _setup_service(self, service: Service) -> None:
        setup = getattr(service.impl, "setup", None)
        if callable(setup):
            setup(self, service.path)

    def on_start(self, starter: Callable[[], Any]) -> None:
        """Run ``starter`` when this process starts serving (at once if it already has).

        For background work (sync readers, registry heartbeats): building an app, for a CLI
        command or a shell, never starts it; ``start()`` does, in serving processes only.
        """
        self._starters.append(starter)
        if self.started:
            starter()

    def start(self) -> Application:
        """Start the background work of every part, once (see :meth:`on_start`)."""
        if not self.started:
            self.started = True
            for starter in list(self._starters):
                starter()
        return self

    def teardown(self) -> None:
        for service in list(self.services.values()):
            teardown = getattr(service.impl, "teardown", None)
            if callable(teardown):
                try:
                    teardown(self, service.path)
                except Exception:
                    logger.exception("teardown of '%s' failed", service.path)
        self.emit("teardown", self)
        self._is_setup = False


def _route_pattern(path: str) -> re.Pattern[str]:
    parts = []
    for segment in path.split("/"):
        if segment.startswith(":"):
            parts.append(f"(?P<{segment[1:]}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("/".join(parts))
