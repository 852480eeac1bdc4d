"""Redis as health checks and development secrets use it. Each component that talks to Redis (queue, sync,
distribution, throttle) keeps clients of its own, with the timeouts its loop needs, all built by
:func:`kdk_app.redis_connect.redis_client`."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from .redis_connect import redis_client

logger = logging.getLogger(__name__)

DEFAULT_SOCKET_TIMEOUT_MS = 250
DEFAULT_CONNECT_TIMEOUT_MS = 250


@dataclass(frozen=True)
class RedisTimeouts:
    """The bound of one Redis round trip on the request path (``redis.socket_timeout_ms``)
    and of opening a connection (``redis.connect_timeout_ms``), in seconds."""

    socket: float = DEFAULT_SOCKET_TIMEOUT_MS / 1000
    connect: float = DEFAULT_CONNECT_TIMEOUT_MS / 1000

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RedisTimeouts:
        section = settings.get("redis") or {}
        return cls(
            socket=_positive_ms(section, "socket_timeout_ms", DEFAULT_SOCKET_TIMEOUT_MS),
            connect=_positive_ms(section, "connect_timeout_ms", DEFAULT_CONNECT_TIMEOUT_MS),
        )


def _positive_ms(section: Mapping[str, Any], key: str, default: int) -> float:
    value = section.get(key)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"redis.{key} must be a positive number of milliseconds, got {value!r}")
    return value / 1000


def redis_answers(url: str, timeout_ms: int) -> bool:
    """True when Redis answers PING within ``timeout_ms`` (on a short-lived connection)."""
    seconds = timeout_ms / 1000
    try:
        probe = redis_client(url, socket_timeout=seconds, connect_timeout=seconds)
        try:
            return bool(probe.ping())
        finally:
            probe.close()
    except redis.RedisError as exc:
        logger.info("Redis ping failed: %s", exc)
        return False


def shared_dev_secret(url: str, key: str) -> str | None:
    """One generated secret at ``key`` for every process of a development deployment sharing
    Redis (the first process sets it); None when Redis does not answer."""
    try:
        client = redis_client(url, socket_timeout=1.0, connect_timeout=1.0)
        try:
            client.set(key, secrets.token_urlsafe(48), nx=True)
            value = client.get(key)
        finally:
            client.close()
        return value.decode() if value else None
    except redis.RedisError as exc:
        logger.warning("could not share a development secret through Redis (%s): %s", key, exc)
        return None
