"""Redis as health checks and development secrets use it. Each component that talks to Redis (queue, sync,
distribution, throttle) keeps clients of its own, with the timeouts its loop needs."""

from __future__ import annotations

import logging
import secrets

import redis

logger = logging.getLogger(__name__)


def redis_answers(url: str, timeout_ms: int) -> bool:
    """True when Redis answers PING within ``timeout_ms`` (on a short-lived connection)."""
    seconds = timeout_ms / 1000
    try:
        probe = redis.Redis.from_url(url, socket_connect_timeout=seconds, socket_timeout=seconds)
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
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            client.set(key, secrets.token_urlsafe(48), nx=True)
            value = client.get(key)
        finally:
            client.close()
        return value.decode() if value else None
    except redis.RedisError as exc:
        logger.warning("could not share a development secret through Redis (%s): %s", key, exc)
        return None
