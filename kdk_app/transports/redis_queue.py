"""The Socket.IO message queue on Redis, tuned to survive Redis outages.

python-socketio's RedisManager already delivers an emit to this process's own clients before
publishing it, so local clients keep receiving events while Redis is down. This subclass adds
bounded connection timeouts (a dead Redis must not stall an emit) and reconnects the
subscriber within seconds instead of backing off to a minute.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from socketio import RedisManager

from ..core.serialization import FeathersJSON
from .rooms import IndexedRooms

logger = logging.getLogger(__name__)

RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0)  # then every 2 s until Redis is back


class ResilientRedisManager(IndexedRooms, RedisManager):
    def __init__(self, url: str, channel: str, **kwargs: Any) -> None:
        options = {"socket_connect_timeout": 1.0, "socket_keepalive": True, "health_check_interval": 5}
        options.update(kwargs.pop("redis_options", None) or {})
        super().__init__(url, channel=channel, redis_options=options, **kwargs)
        self.subscribed = False

    def _redis_listen_with_retries(self) -> Iterator[Any]:
        attempt = 0
        while True:
            try:
                if not self.subscribed:
                    self._redis_connect()
                    self.pubsub.subscribe(self.channel)
                    self.subscribed = True
                    if attempt:
                        logger.info("Socket.IO message queue reconnected to Redis")
                    attempt = 0
                yield from self.pubsub.listen()
            except Exception as exc:  # any failure: drop the connection and try again soon
                if self.subscribed or attempt == 0:
                    logger.warning("Socket.IO message queue lost Redis: %s", exc)
                self.subscribed = False
                self.connected = False
                time.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
                attempt += 1


def redis_emitter(redis_url: str, channel: str) -> Callable[[str, Any, list[str]], None]:
    """Publish to socket clients through Redis from a process that runs no Socket.IO server."""
    manager = ResilientRedisManager(redis_url, channel, write_only=True, json=FeathersJSON)

    def emit(event: str, payload: Any, rooms: list[str]) -> None:
        manager.emit(event, payload, namespace="/", room=rooms)

    return emit
