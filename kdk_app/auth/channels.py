"""Publishers that send a service's events only to the connections allowed to read the record.

``permission_publisher()`` derives the rooms from the ``permissions`` setting, for the ``get``
rule of each role on the event's service:

* an unconditional rule sends to the role's room (``admins`` for ``admin``, ``role:<name>``
  otherwise, see ``authentication.role_rooms``); for the anonymous role, to every connection
  (``anonymous`` and ``authenticated``);
* a condition ``{field: "$user._id"}`` (alone) sends to ``user:<record[field]>``;
* any other condition cannot be decided per room, so that role gets no event (never too many).

``owner_publisher("owner")`` is the explicit version: ``user:<record.owner>`` plus ``admins``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..core import HookContext
from .realtime import user_room

Publisher = Callable[[Any, HookContext | None], list[str]]
SELF = "$user._id"


def _owner_value(record: Mapping[str, Any], field: str) -> str | None:
    value = record.get(field)
    return str(value) if value is not None and value != "" else None


def permission_publisher(method: str = "get") -> Publisher:
    def publisher(data: Any, context: HookContext | None) -> list[str]:
        if context is None or not isinstance(data, Mapping):
            return []
        auth = context.app.authentication
        if auth is None:
            return []
        permissions = auth.permissions
        sockets = auth.sockets
        role_room = sockets.role_room if sockets is not None else (lambda r: f"role:{r}")
        everyone = (
            [sockets.anonymous_room, sockets.authenticated_room]
            if sockets is not None
            else ["anonymous", "authenticated"]
        )
        rooms: list[str] = []
        for role in permissions.spec:
            rule = permissions.rule(role, context.path, method)
            if rule is None:
                continue
            if rule.condition is None:
                if role == permissions.anonymous_role:  # anybody may read it: every connection
                    rooms.extend(everyone)
                else:
                    rooms.append(role_room(role))
                continue
            if len(rule.condition) == 1:
                field, value = next(iter(rule.condition.items()))
                if value == SELF:
                    owner = _owner_value(data, field)
                    if owner is not None:
                        rooms.append(user_room(owner))
        return list(dict.fromkeys(rooms))

    return publisher


def owner_publisher(field: str = "owner", *, rooms: Iterable[str] = ("admins",)) -> Publisher:
    extra = list(rooms)

    def publisher(data: Any, context: HookContext | None) -> list[str]:
        if not isinstance(data, Mapping):
            return []
        owner = _owner_value(data, field)
        return ([user_room(owner)] if owner is not None else []) + extra

    return publisher
