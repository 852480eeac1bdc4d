"""Redis as health checks and development secrets use it. Each component that talks to Redis (queue, sync,
distribution, throttle) keeps clients of its own, with the timeouts its loop needs, all built by
:func:`kdk_app.redis_connect.redis_client`."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import redis

from .redis_connect import CLUSTER_SCHEMES, REDIS_ERRORS, node_client, parse_cluster_url, redis_client

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
    """True when Redis answers PING within ``timeout_ms`` (on a short-lived connection); for a
    Cluster, when a node of the URL says the cluster is ok."""
    seconds = timeout_ms / 1000
    if urlparse(url).scheme in CLUSTER_SCHEMES:
        return cluster_ok(url, seconds)
    try:
        probe = redis_client(url, socket_timeout=seconds, connect_timeout=seconds)
        try:
            return bool(probe.ping())
        finally:
            probe.close()
    except REDIS_ERRORS as exc:
        logger.info("Redis ping failed: %s", exc)
        return False


def cluster_ok(url: str, seconds: float) -> bool:
    """True when the first node of ``url`` that answers within ``seconds`` (all tries together)
    says ``cluster_state:ok``: every slot has a master the cluster does not hold as failed. One
    round trip when that node is up; a cluster client would first load the slots map and
    COMMAND (about 100 KB)."""
    target = parse_cluster_url(url)
    deadline = time.monotonic() + seconds
    for address in target.nodes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        probe = node_client(target, address, socket_timeout=remaining, connect_timeout=remaining)
        try:
            state = probe.cluster("info").get("cluster_state")
            if state != "ok":
                logger.info("Redis Cluster state, as %s:%s sees it: %s", *address, state)
            return state == "ok"
        except redis.RedisError as exc:  # a node gone for good stays in the URL: no log line each time
            logger.debug("Redis Cluster node %s:%s did not answer: %s", *address, exc)
        finally:
            probe.close()
    logger.info("no node of the Redis Cluster URL answered within %gs", seconds)
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
        if isinstance(value, bytes):  # always, without decode_responses
            value = value.decode()
        return value or None
    except REDIS_ERRORS as exc:
        logger.warning("could not share a development secret through Redis (%s): %s", key, exc)
        return None
