"""Which operations need a bearer token: read from the hooks a service really runs.

kdk's own hooks are recognised by name (``authenticate``, ``authorize`` and the registration
throttle of ``kdk_app/auth/hooks.py``). ``authorize()`` needs a token where the ``permissions``
give the anonymous role nothing. A hook we cannot read (an app's own) might check anything: the
token is then documented as optional, ``[{}, {"bearerAuth": []}]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core import Application, Service

AUTH_HOOKS_MODULE = "kdk_app.auth.hooks"
BEARER = "bearerAuth"
REQUIRED: list[dict[str, list[str]]] = [{BEARER: []}]
OPTIONAL: list[dict[str, list[str]]] = [{}, {BEARER: []}]


@dataclass
class Access:
    """What the hooks of one method say about tokens, and the errors they can answer."""

    security: list[dict[str, list[str]]] | None  # None: tokens play no part
    statuses: frozenset[int]


def _hooks(registry: Any, method: str) -> list[Callable[..., Any]]:
    found: list[Callable[..., Any]] = []
    for hook_type in ("around", "before", "after", "error"):
        for key in ("all", method):
            found.extend(registry.get(hook_type, key))
    return found


def _closure_value(hook: Callable[..., Any], name: str, default: Any = None) -> Any:
    code = getattr(hook, "__code__", None)
    cells = getattr(hook, "__closure__", None) or ()
    if code is None or name not in code.co_freevars:
        return default
    return cells[code.co_freevars.index(name)].cell_contents


def _kdk_hook_name(hook: Callable[..., Any]) -> str | None:
    """``authenticate`` for the hook that ``authenticate(...)`` returned; None for an app's hook."""
    if getattr(hook, "__module__", None) != AUTH_HOOKS_MODULE:
        return None
    return str(getattr(hook, "__qualname__", "")).split(".", 1)[0]


def _is_kdk_hook(hook: Callable[..., Any]) -> bool:
    return str(getattr(hook, "__module__", "")).startswith("kdk_app.")


def _anonymous_allowed(kdk: Application, path: str, method: str) -> bool:
    auth = kdk.authentication
    permissions = getattr(auth, "permissions", None)
    if permissions is None:
        return False
    return permissions.rule(permissions.anonymous_role, path, method) is not None


def access(kdk: Application, service: Service, method: str) -> Access:
    hooks = [*_hooks(kdk.registry, method), *_hooks(service.registry, method)]
    required = optional = False
    statuses: set[int] = set()
    for hook in hooks:
        name = _kdk_hook_name(hook)
        if name == "authenticate":
            statuses.add(401)  # a bad token is refused even where none is needed
            allowed = _closure_value(hook, "optional", False)
            if allowed is True or (not isinstance(allowed, bool) and method in allowed):
                optional = True
            else:
                required = True
        elif name == "authorize":
            statuses.update((401, 403))
            if _anonymous_allowed(kdk, service.path, method):
                optional = True
            else:
                required = True
        elif name == "set_owner":
            statuses.add(401)
        elif name == "throttle_registration":
            statuses.add(429)
        elif not _is_kdk_hook(hook):
            statuses.update((401, 403))
            optional = True
    if required:
        return Access(REQUIRED, frozenset(statuses))
    if optional:
        return Access(OPTIONAL, frozenset(statuses))
    return Access(None, frozenset(statuses))


def security_scheme() -> dict[str, Any]:
    return {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The accessToken from POST /authentication",
    }
