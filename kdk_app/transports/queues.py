"""Which Socket.IO message queue ``socketio.queue_url`` (default ``redis.url``) means: RabbitMQ
through kombu (imported only then) for ``amqp://`` and ``amqps://``, Redis for any other URL,
this process alone without one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ..core.serialization import FeathersJSON
from ..redis_client import RedisTimeouts
from .redis_queue import ResilientRedisManager
from .rooms import LocalManager

AMQP_SCHEMES = ("amqp", "amqps")

Emitter = Callable[[str, Any, list[str]], None]


def queue_url(settings: Mapping[str, Any]) -> str | None:
    """``socketio.queue_url``, else ``redis.url``, else None."""
    socket_settings = settings.get("socketio") or {}
    return socket_settings.get("queue_url") or (settings.get("redis") or {}).get("url")


def is_amqp(url: str) -> bool:
    return urlsplit(url).scheme in AMQP_SCHEMES


def _queue_manager(url: str, channel: str, timeouts: RedisTimeouts, **options: Any) -> Any:
    if is_amqp(url):
        from .kombu_queue import ResilientKombuManager

        return ResilientKombuManager(url, channel, timeouts=timeouts, **options)
    return ResilientRedisManager(url, channel, timeouts=timeouts, **options)


def message_queue(url: str | None, channel: str, timeouts: RedisTimeouts) -> Any:
    """The client manager of this process's Socket.IO server."""
    return _queue_manager(url, channel, timeouts) if url else LocalManager()


def queue_emitter(url: str, channel: str, timeouts: RedisTimeouts | None = None) -> Emitter:
    """An emitter to socket clients for a process that runs no Socket.IO server."""
    manager = _queue_manager(url, channel, timeouts or RedisTimeouts(), write_only=True, json=FeathersJSON)

    def emit(event: str, payload: Any, rooms: list[str]) -> None:
        manager.emit(event, payload, namespace="/", room=rooms)

    return emit
