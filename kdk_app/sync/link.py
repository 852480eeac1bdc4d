"""The Redis side of one worker thread: its client, its up/down state, and its backoff."""

from __future__ import annotations

import logging

import redis

from ..redis_connect import redis_client

logger = logging.getLogger(__name__)


def make_client(url: str, *, timeout: float, connect_timeout: float) -> redis.Redis:
    """A client that fails fast: our loops own retrying, with their own backoff."""
    return redis_client(url, socket_timeout=timeout, connect_timeout=connect_timeout, health_check_interval=0)


class LinkState:
    """Whether a worker's last Redis command succeeded; logs transitions, not every failure."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.up: bool | None = None  # None: not tried yet

    def ok(self) -> bool:
        """Record a success; True when it ends an outage (a reconnection)."""
        recovered = self.up is False
        if recovered:
            logger.info("sync %s: Redis is back", self.name)
        elif self.up is None:
            logger.debug("sync %s: connected to Redis", self.name)
        self.up = True
        return recovered

    def failed(self, error: BaseException) -> None:
        if self.up is not False:
            logger.warning("sync %s: Redis unavailable, retrying: %s", self.name, error)
        else:
            logger.debug("sync %s: still no Redis: %s", self.name, error)
        self.up = False

    def reset(self) -> None:
        self.up = None
