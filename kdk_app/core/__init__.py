"""The service layer: applications, services, hooks, events and errors. Imports no transport."""

from . import errors
from .application import Application, Service, ServiceEvent
from .hooks import NOT_SET, HookContext
from .protocol import METHOD_ARGUMENTS, STANDARD_EVENTS, STANDARD_METHODS

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
