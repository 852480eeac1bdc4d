"""Build services from the declarative ``services`` section of the configuration."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..core import Application, Service
from .memory import MemoryService
from .mongo import MongoService

ADAPTERS: dict[str, Callable[..., Any]] = {
    "mongodb": lambda path, spec: MongoService(spec.pop("collection", path.replace("/", "_")), **spec),
    "memory": lambda path, spec: MemoryService(spec.pop("store", ()), **spec),
}
# Keys of a service spec that configure its registration rather than the adapter.
REGISTRATION_KEYS = ("methods", "events", "hooks", "publish")


def build_service(app: Application, path: str, spec: Mapping[str, Any]) -> Service:
    """Register one service described by ``spec`` on ``app``.

    ``adapter`` is ``"mongodb"``, ``"memory"``, a ready service object, or a callable
    ``(app, path, options) -> service``. The other keys are adapter options (``schema``,
    ``paginate``, ``multi``, ``id``, ``indexes``, ``operators``, ``filters``,
    ``protected_fields``, ``query_fields``, ``collection``) plus ``methods``, ``events``,
    ``hooks`` and ``publish``. ``paginate`` defaults to the app-level ``paginate`` setting.
    """
    spec = dict(spec)
    registration = {key: spec.pop(key) for key in REGISTRATION_KEYS if key in spec}
    adapter = spec.pop("adapter", "mongodb")
    if isinstance(adapter, str):
        if adapter not in ADAPTERS:
            raise ValueError(f"Unknown adapter '{adapter}' for service '{path}'")
        spec.setdefault("paginate", app.get("paginate") or False)
        impl = ADAPTERS[adapter](path, spec)
    elif callable(adapter) and not hasattr(adapter, "find"):
        impl = adapter(app, path, spec)
    else:
        impl = adapter
    service = app.use(path, impl, methods=registration.get("methods"), events=registration.get("events", ()))
    if "hooks" in registration:
        service.hooks(registration["hooks"])
    if "publish" in registration:
        service.publish(registration["publish"])
    return service


def build_services(app: Application, specs: Mapping[str, Mapping[str, Any]] | None) -> None:
    for path, spec in (specs or {}).items():
        if spec is not None:  # an override file may switch a default service off with None
            build_service(app, path, spec)
