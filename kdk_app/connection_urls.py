"""The broker and cache URLs of a configuration, checked at start by ``create_app`` and by
``kdk config``: a typo stops the app with a clear message instead of a thread failing later."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .redis_connect import validate_redis_url
from .sync.brokers import broker_kind
from .transports.queues import is_amqp


def _section(settings: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = settings.get(name)
    return value if isinstance(value, Mapping) else {}


def _check_queue_url(url: str) -> None:
    if not is_amqp(url):
        validate_redis_url(url)


def check_connection_urls(settings: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the setting when ``redis.url``, ``sync.url`` or
    ``socketio.queue_url`` is unusable."""
    checks = (
        ("redis.url", _section(settings, "redis").get("url"), validate_redis_url),
        ("sync.url", _section(settings, "sync").get("url"), broker_kind),
        ("socketio.queue_url", _section(settings, "socketio").get("queue_url"), _check_queue_url),
    )
    for name, url, check in checks:
        if url:
            try:
                check(url)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
