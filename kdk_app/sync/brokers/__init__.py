"""Brokers the sync bus can run on, chosen by the scheme of ``sync.url`` (default ``redis.url``).

- ``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``, ``redis+cluster://``: a Redis
  Stream (:mod:`.redis_stream`);
- ``amqp://``, ``amqps://``: RabbitMQ (:mod:`.amqp`);
- ``nats://``, ``tls://``: a NATS JetStream stream (:mod:`.nats_jetstream`).

Each module is imported only when its scheme is used, so its client library is needed only then.
"""

from __future__ import annotations

from urllib.parse import urlparse

from ...redis_connect import validate_redis_url
from .base import NEW_ONLY, Broker, BrokerOptions, Entry, Reader, Writer

__all__ = ["NEW_ONLY", "Broker", "BrokerOptions", "Entry", "Reader", "Writer", "broker_kind", "open_broker"]

AMQP_SCHEMES = ("amqp", "amqps")
NATS_SCHEMES = ("nats", "tls")


def broker_kind(url: str) -> str:
    """``"redis"``, ``"amqp"`` or ``"nats"`` for ``url``; ValueError (a clear message) otherwise."""
    scheme = urlparse(url).scheme if isinstance(url, str) else ""
    if scheme in AMQP_SCHEMES:
        return "amqp"
    if scheme in NATS_SCHEMES:
        return "nats"
    try:
        validate_redis_url(url)
    except ValueError as exc:
        raise ValueError(f"{exc}; the sync bus also takes amqp://, amqps:// and nats://") from None
    return "redis"


def open_broker(url: str, options: BrokerOptions) -> Broker:
    """The broker for ``url`` (nothing connects yet: each thread opens its own link)."""
    kind = broker_kind(url)
    if kind == "amqp":
        from .amqp import AmqpBroker

        return AmqpBroker(url, options)
    if kind == "nats":
        from .nats_jetstream import JetStreamBroker

        return JetStreamBroker(url, options)
    from .redis_stream import RedisStreamBroker

    return RedisStreamBroker(url, options)
