"""Redis connections of one process, created lazily so that none is shared across a fork."""

from __future__ import annotations

import logging
import os
import threading

import redis

logger = logging.getLogger(__name__)


class RedisProvider:
    """Hands out this process's Redis client, with bounded timeouts so a dead server fails fast."""

    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        self.url = url
        self.timeout = timeout
        self._client: redis.Redis | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> redis.Redis:
        if self._client is None or self._pid != os.getpid():
            with self._lock:
                if self._client is None or self._pid != os.getpid():
                    self._client = redis.Redis.from_url(
                        self.url,
                        socket_connect_timeout=self.timeout,
                        socket_timeout=self.timeout,
                        health_check_interval=10,
                    )
                    self._pid = os.getpid()
        return self._client

    def ping(self, timeout_ms: int) -> bool:
        """True when Redis answers within ``timeout_ms`` (a short-lived connection of its own)."""
        seconds = timeout_ms / 1000
        try:
            probe = redis.Redis.from_url(self.url, socket_connect_timeout=seconds, socket_timeout=seconds)
            try:
                return bool(probe.ping())
            finally:
                probe.close()
        except redis.RedisError as exc:
            logger.info("Redis ping failed: %s", exc)
            return False
