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
from dataclasses import dataclass, field, replace
from typing import Any

from .core import Application, ServiceEvent
from .delivery import LOCAL, SKIP, Delivery

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
# Keeps a connection in a filtered channel when it returns true (Feathers' channel.filter).
ConnectionFilter = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Channel:
    """Named rooms, as Feathers' channels: optionally with custom data sent instead of the
    event's payload (``send``) and filters on the connections (``filter``).

    A plain channel is emitted once, through the message queue, to its rooms on every worker. A
    filtered one is evaluated where the connections are: each process runs the publisher for the
    events it hears from the sync bus too, and sends to its own connections that pass.
    """

    names: tuple[str, ...]
    data: Any = None
    has_data: bool = False
    filters: tuple[ConnectionFilter, ...] = ()
    registry: Channels | None = field(default=None, compare=False, repr=False)

    def send(self, data: Any) -> Channel:
        return replace(self, data=data, has_data=True)

    def filter(self, keep: ConnectionFilter) -> Channel:
        return replace(self, filters=(*self.filters, keep))

    def join(self, *connections: dict[str, Any]) -> Channel:
        for connection in connections:
            self._registry().join(connection, *self.names)
        return self

    def leave(self, *connections: dict[str, Any]) -> Channel:
        for connection in connections:
            self._registry().leave(connection, *self.names)
        return self

    @property
    def connections(self) -> list[dict[str, Any]]:
        """This process's connections in the channel that pass its filters (other workers'
        connections are theirs: see the class doc)."""
        members = self._registry().local_members(self.names)
        return [connection for connection in members if all(keep(connection) for keep in self.filters)]

    @property
    def length(self) -> int:
        return len(self.connections)

    def _registry(self) -> Channels:
        if self.registry is None:
            raise RuntimeError("this channel belongs to no app: make it with app.channel(...)")
        return self.registry


class Channels:
    """The channel registry of one app: ``join``/``leave`` here, publish everywhere."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.emitters: list[ChannelEmitter] = []
        self.delivery = Delivery()
        self.enter_room: RoomAction | None = None
        self.leave_room: RoomAction | None = None
        # This process's connections by room, for filtered channels and `channel.connections`.
        self._members: dict[str, dict[int, dict[str, Any]]] = {}

    def channel(self, *names: str | Iterable[str]) -> Channel:
        flat: list[str] = []
        for name in names:
            flat.extend([name] if isinstance(name, str) else list(name))
        return Channel(tuple(dict.fromkeys(flat)), registry=self)

    def join(self, connection: dict[str, Any], *names: str) -> None:
        for name in names:
            connection.setdefault("channels", set()).add(name)
            self._members.setdefault(name, {})[id(connection)] = connection
            if self.enter_room is not None:
                self.enter_room(connection, name)

    def leave(self, connection: dict[str, Any], *names: str) -> None:
        for name in names or tuple(connection.get("channels", ())):
            connection.get("channels", set()).discard(name)
            self._forget(connection, name)
            if self.leave_room is not None:
                self.leave_room(connection, name)

    def disconnected(self, connection: dict[str, Any]) -> None:
        """A connection closed: it is in no channel any more (its rooms went with it)."""
        for name in connection.get("channels", ()):
            self._forget(connection, name)
        connection.get("channels", set()).clear()

    def _forget(self, connection: dict[str, Any], name: str) -> None:
        members = self._members.get(name)
        if members is not None:
            members.pop(id(connection), None)
            if not members:
                del self._members[name]

    def local_members(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """This process's connections in any of ``names``, each once."""
        found: dict[int, dict[str, Any]] = {}
        for name in names:
            found.update(self._members.get(name, {}))
        return list(found.values())

    def publisher_for(self, event: ServiceEvent) -> Callable[..., Any] | None:
        """Service + event, then service, then app + event, then app (docs/protocol.md §6)."""
        service = self.app.services.get(event.path)
        candidates = [self.app.publishers.get(event.event), self.app.publishers.get("")]
        if service is not None:
            candidates = [service.publishers.get(event.event), service.publishers.get(""), *candidates]
        return next((p for p in candidates if p is not None), None)

    def publish(self, event: ServiceEvent) -> None:
        """The event sink: run the publisher and emit to its channels.

        An event heard from the sync bus was emitted to every plain channel by its origin; here
        only its filtered channels are sent, to this process's connections, and only when this
        process has any (publishers then run once per synced event in such processes).
        """
        if not self.emitters or (event.remote and not self._members):
            return
        publisher = self.publisher_for(event)
        if publisher is None:
            return
        if event.remote:
            targets = self._filtered_targets(publisher, event)
        else:
            targets = _flatten(publisher(event.data, event.context))
        if not targets:
            return
        payload = event.payload
        name = f"{event.path} {event.event}"
        plain = [room for ch in targets if not ch.has_data and not ch.filters for room in ch.names]
        if plain:
            self.emit(name, payload, list(dict.fromkeys(plain)))
        for ch in targets:
            if ch.filters:
                self._emit_filtered(name, ch.data if ch.has_data else payload, ch)
            elif ch.has_data:
                self.emit(name, ch.data, list(ch.names))

    def _filtered_targets(self, publisher: Callable[..., Any], event: ServiceEvent) -> list[Channel]:
        """The filtered channels of a synced event. Its context is the lighter SyncedContext: a
        publisher written for local calls only (reading ``context.app``, say) may fail on it, and
        then sends nothing here, as before filtered channels existed."""
        try:
            return [ch for ch in _flatten(publisher(event.data, event.context)) if ch.filters]
        except Exception:
            logger.debug(
                "publisher of %s %s skipped for a synced event", event.path, event.event, exc_info=True
            )
            return []

    def _emit_filtered(self, name: str, payload: Any, channel: Channel) -> None:
        """To each of this process's connections that pass, in its own room (the socket id)."""
        members = [
            conn for conn in self.local_members(channel.names) if all(keep(conn) for keep in channel.filters)
        ]
        rooms = [conn["sid"] for conn in members if "sid" in conn]
        if not rooms or self.delivery.mode() == SKIP:
            return
        for emitter in self.emitters:
            if emitter.local is not None:
                emitter.local(name, payload, rooms)

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
