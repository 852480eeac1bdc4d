"""The Feathers service protocol, once, for every transport (REST, Socket.IO, remote calls).

Which methods exist, the positional arguments of each, where its ``params`` go, which event it
emits, the REST verb of each, and the checks every call from outside gets before any hook.
See docs/protocol.md §1, §3.1 and §4.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from . import errors

STANDARD_METHODS = ("find", "get", "create", "update", "patch", "remove")
METHOD_EVENTS = {"create": "created", "update": "updated", "patch": "patched", "remove": "removed"}
STANDARD_EVENTS = tuple(METHOD_EVENTS.values())
# Positional arguments of each standard method; custom methods take (data, params).
METHOD_ARGUMENTS = {
    "find": ("params",),
    "get": ("id", "params"),
    "create": ("data", "params"),
    "update": ("id", "data", "params"),
    "patch": ("id", "data", "params"),
    "remove": ("id", "params"),
}
CUSTOM_ARGUMENTS = ("data", "params")
# Names that can never be exposed as custom methods (Feathers' protectedMethods, in Python terms).
PROTECTED_METHODS = frozenset(
    {"all", "around", "before", "after", "error", "hooks", "setup", "teardown", "publish"}
    | {"on", "off", "emit", "once", "call", "use", "service"}
)
# The REST verb of each standard method; custom methods are a POST with X-Service-Method.
REST_VERBS = {
    "find": "GET",
    "get": "GET",
    "create": "POST",
    "update": "PUT",
    "patch": "PATCH",
    "remove": "DELETE",
}


def arguments_of(method: str) -> tuple[str, ...]:
    """The positional argument names of ``method`` (a custom method: ``data, params``)."""
    return METHOD_ARGUMENTS.get(method, CUSTOM_ARGUMENTS)


def params_position(method: str) -> int:
    """Where ``params`` is among ``method``'s arguments (where a socket call carries its query)."""
    return arguments_of(method).index("params")


def rest_method(verb: str, has_id: bool) -> str:
    """The standard method of an HTTP verb (POST is ``create``; a custom method is chosen by header)."""
    if verb == "GET":
        return "get" if has_id else "find"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "remove"}[verb]


def check_method(path: str, method: str, methods: Collection[str]) -> None:
    """MethodNotAllowed unless ``method`` is one of the service's exposed ``methods``."""
    if method not in methods:
        raise errors.MethodNotAllowed(f"Method '{method}' not allowed on service '{path}'")


def check_arity(method: str, args: tuple[Any, ...] | list[Any]) -> tuple[str, ...]:
    """BadRequest when a call passes more arguments than ``method`` takes; its argument names."""
    names = arguments_of(method)
    if len(args) > len(names):
        raise errors.BadRequest(f"Too many arguments for '{method}' method")
    return names
