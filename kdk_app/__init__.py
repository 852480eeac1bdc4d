"""kdk-app: real-time, service-oriented backends on Flask, in the style of Kalisio KDK.

The public API, imported from here::

    from kdk_app import KDK, create_app, Application, Service, HookContext, errors
    from kdk_app import MongoService, MemoryService, EventSync

Names load on first use (PEP 562), so ``import kdk_app`` stays light and ``kdk serve`` can patch
the standard library with gevent before Flask, pymongo or redis are imported.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "KDK": "kdk_app.extension",
    "create_app": "kdk_app.app",
    "start_serving": "kdk_app.serving",
    "Part": "kdk_app.parts",
    "Application": "kdk_app.core.application",
    "Service": "kdk_app.core.application",
    "ServiceEvent": "kdk_app.core.application",
    "HookContext": "kdk_app.core.hooks",
    "errors": "kdk_app.core",
    "MongoService": "kdk_app.services",
    "MemoryService": "kdk_app.services",
    "Channels": "kdk_app.channels",
    "Channel": "kdk_app.channels",
    "EventSync": "kdk_app.sync",
    "load_config": "kdk_app.config",
    "NULL": "kdk_app.core.resolvers",
    "resolve": "kdk_app.core.resolvers",
    "virtual": "kdk_app.core.resolvers",
    "batch_virtual": "kdk_app.core.resolvers",
    "resolve_data": "kdk_app.core.resolvers",
    "resolve_result": "kdk_app.core.resolvers",
    "resolve_external": "kdk_app.core.resolvers",
    "resolve_query": "kdk_app.core.resolvers",
    "populate": "kdk_app.core.populate",
    "validate_data": "kdk_app.core.validation",
    "validate_query": "kdk_app.core.validation",
    "disallow": "kdk_app.core.common_hooks",
    "iff": "kdk_app.core.common_hooks",
    "iff_else": "kdk_app.core.common_hooks",
    "is_provider": "kdk_app.core.common_hooks",
    "discard": "kdk_app.core.common_hooks",
    "prevent_changes": "kdk_app.core.common_hooks",
    "soft_delete": "kdk_app.core.common_hooks",
    "set_now": "kdk_app.core.common_hooks",
    "cache": "kdk_app.core.common_hooks",
    "request_cache": "kdk_app.core.common_hooks",
}

__all__ = [
    "Application",
    "Channel",
    "Channels",
    "EventSync",
    "HookContext",
    "KDK",
    "MemoryService",
    "MongoService",
    "Part",
    "Service",
    "ServiceEvent",
    "create_app",
    "errors",
    "load_config",
    "start_serving",
    "NULL",
    "resolve",
    "virtual",
    "batch_virtual",
    "resolve_data",
    "resolve_result",
    "resolve_external",
    "resolve_query",
    "populate",
    "validate_data",
    "validate_query",
    "disallow",
    "iff",
    "iff_else",
    "is_provider",
    "discard",
    "prevent_changes",
    "soft_delete",
    "set_now",
    "cache",
    "request_cache",
]

if TYPE_CHECKING:
    from .app import create_app
    from .channels import Channel, Channels
    from .config import load_config
    from .core import errors
    from .core.application import Application, Service, ServiceEvent
    from .core.common_hooks import (
        cache,
        disallow,
        discard,
        iff,
        iff_else,
        is_provider,
        prevent_changes,
        request_cache,
        set_now,
        soft_delete,
    )
    from .core.hooks import HookContext
    from .core.populate import populate
    from .core.resolvers import (
        NULL,
        batch_virtual,
        resolve,
        resolve_data,
        resolve_external,
        resolve_query,
        resolve_result,
        virtual,
    )
    from .core.validation import validate_data, validate_query
    from .extension import KDK
    from .parts import Part
    from .services import MemoryService, MongoService
    from .serving import start_serving
    from .sync import EventSync


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kdk_app' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
