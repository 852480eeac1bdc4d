"""Channels and publishers (docs/protocol.md §6): which connections receive which service events.

A channel is a Socket.IO room. A publisher maps an event to channels; the event is then
emitted once to the union of their rooms through the message queue (Redis when configured),
so every worker and host delivers it to its own members exactly once.

Where emissions go is a list of :class:`ChannelEmitter` that layers append to (the Socket.IO
server, or a write-only emitter on its queue; anything else that wants every emission). An
event from another app is emitted to this process's clients only, or not at all: the
:class:`~kdk_app.delivery.Delivery` mode that the distribution sets around it says which.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .core import Application, ServiceEvent
from .delivery import LOCAL, Delivery

logger = logging.getLogger(__name__)

# emit(event_name, payload, rooms) — the Socket.IO server, or a write-only emitter on Redis.
Emitter = Callable[[str, Any, list[str]], None]


@dataclass(frozen=True)
class ChannelEmitter:
    """One destination of emissions: to every process's clients, and to this process's own.

    ``local`` is None where this process serves no clients (a write-only queue emitter).
    """

    everywhere: Emitter
    local: Emitter | None = None


# Join or leave one connection to or from a room on this worker.
RoomAction = Callable[[dict[str, Any], str], None]


@dataclass(frozen=True)
class Channel:
    """Named rooms, optionally with custom data sent instead of the event's payload."""

    names: tuple[str, ...]
    data: Any = None
    has_data: bool = False

    def send(self, data: Any) -> Channel:
        return Channel(self.names, data, True)


class Channels:
    """The channel registry of one app: ``join``/``leave`` here, publish everywhere."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.emitters: list[ChannelEmitter] = []
        self.delivery = Delivery()
        self.enter_room: RoomAction | None = None
        self.leave_room: RoomAction | None = None

    def channel(self, *names: str | Iterable[str]) -> Channel:
        flat: list[str] = []
        for name in names:
            flat.extend([name] if isinstance(name, str) else list(name))
        return Channel(tuple(dict.fromkeys(flat)))

    def join(self, connection: dict[str, Any], *names: str) -> None:
        for name in names:
            connection.setdefault("channels", set()).add(name)
            if self.enter_room is not None:
                self.enter_room(connection, name)

    def leave(self, connection: dict[str, Any], *names: str) -> None:
        for name in names or tuple(connection.get("channels", ())):
            connection.get("channels", set()).discard(name)
            if self.leave_room is not None:
                self.leave_room(connection, name)

    def publisher_for(self, event: ServiceEvent) -> Callable[..., Any] | None:
        """Service + event, then service, then app + event, then app (docs/protocol.md §6)."""
        service = self.app.services.get(event.path)
        candidates = [self.app.publishers.get(event.event), self.app.publishers.get("")]
        if service is not None:
            candidates = [service.publishers.get(event.event), service.publishers.get(""), *candidates]
        return next((p for p in candidates if p is not None), None)

    def publish(self, event: ServiceEvent) -> None:
        """The event sink: run the publisher and emit to its channels. Synced events are skipped."""
        if event.remote or not self.emitters:
            return
        publisher = self.publisher_for(event)
        if publisher is None:
            return
        targets = _flatten(publisher(event.data, event.context))
        if not targets:
            return
        payload = event.payload
        name = f"{event.path} {event.event}"
        plain = [room for ch in targets if not ch.has_data for room in ch.names]
        if plain:
            self.emit(name, payload, list(dict.fromkeys(plain)))
        for ch in targets:
            if ch.has_data:
                self.emit(name, ch.data, list(ch.names))

    def emit(self, name: str, payload: Any, rooms: list[str]) -> None:
        """To every emitter, as the delivery mode says (docs/architecture.md: events)."""
        mode = self.delivery.mode()
        for emitter in self.emitters:
            if mode is None:
                emitter.everywhere(name, payload, rooms)
            elif mode == LOCAL and emitter.local is not None:
                emitter.local(name, payload, rooms)


def _flatten(value: Any) -> list[Channel]:
    if not value:
        return []
    if isinstance(value, Channel):
        return [value]
    if isinstance(value, str):
        return [Channel((value,))]
    channels: list[Channel] = []
    for item in value:
        channels.extend(_flatten(item))
    return channels
