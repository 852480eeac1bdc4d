"""The service layer: applications, services, hooks, events and errors. Imports no transport."""

from . import errors
from .application import (
    METHOD_ARGUMENTS,
    STANDARD_EVENTS,
    STANDARD_METHODS,
    Application,
    Service,
    ServiceEvent,
)
from .hooks import NOT_SET, HookContext

__all__ = [
    "METHOD_ARGUMENTS",
    "NOT_SET",
    "STANDARD_EVENTS",
    "STANDARD_METHODS",
    "Application",
    "HookContext",
    "Service",
    "ServiceEvent",
    "errors",
]
