"""Redis as a health check sees it. Each component that talks to Redis (message queue, sync,
distribution, throttle) keeps clients of its own, with the timeouts its loop needs."""

from __future__ import annotations

import logging

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
