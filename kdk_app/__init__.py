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
]

if TYPE_CHECKING:
    from .app import create_app
    from .channels import Channel, Channels
    from .config import load_config
    from .core import errors
    from .core.application import Application, Service, ServiceEvent
    from .core.hooks import HookContext
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
