"""The one way the app reaches Redis: every user (Socket.IO queue, sync bus, distribution,
throttle, development secret, health) builds its clients here, so a URL means the same to all.

Accepted URLs:

- ``redis://[[user]:password@]host[:port][/db]``, ``rediss://…`` (TLS), ``unix:///path?db=N``;
- ``redis+sentinel://[[user]:password@]h1:p1,h2:p2,…/db/master``: the master that the
  sentinels name (the syntax python-socketio accepts, so its queue agrees);
- ``redis+cluster://[[user]:password@]h1:p1,h2:p2,…`` (or ``valkey+cluster://``): a Redis Cluster
  that any of these nodes belongs to, database 0 only (:mod:`kdk_app.redis_cluster`);
  ``rediss+cluster://`` (or ``valkeys+cluster://``) talks TLS to every node, with the TLS options
  of ``rediss://`` URLs after ``?`` (``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``,
  ``ssl_cert_reqs``).

Anything else raises ``ValueError`` with a message that says what is wrong, at start
(:func:`validate_redis_url`) rather than in a background thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel

from .redis_cluster import cluster_client

logger = logging.getLogger(__name__)

PLAIN_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "valkey+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "valkey+cluster", "rediss+cluster", "valkeys+cluster")
TLS_CLUSTER_SCHEMES = ("rediss+cluster", "valkeys+cluster")
# What a TLS Cluster URL may say after "?": the file and check options of redis-py's rediss://.
TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
CERT_REQS = ("none", "optional", "required")
EXPECTED = (
    "redis://, rediss://, unix://, redis+sentinel://h1:p1,h2:p2/db/master or "
    "redis+cluster://h1:p1,h2:p2 (rediss+cluster:// for TLS)"
)
# A client of any Redis the app takes: both kinds have the same commands.
AnyRedis = redis.Redis | RedisCluster
# What a Redis command or pipeline may raise: on a cluster, RedisClusterException is no RedisError.
REDIS_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)


@dataclass(frozen=True)
class SentinelTarget:
    """A Sentinel URL, parsed: where the sentinels are, which master, and how to talk to it."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    connection: dict[str, Any] = field(default_factory=dict)  # db, username, password


@dataclass(frozen=True)
class ClusterTarget:
    """A Cluster URL, parsed: nodes to learn the cluster from, and how to talk to every node."""

    nodes: tuple[tuple[str, int], ...]
    connection: dict[str, Any] = field(default_factory=dict)  # username, password


def _refuse(url: str, why: str) -> ValueError:
    scheme, sep, rest = url.partition("://")
    userinfo, at, hosts = rest.partition("@")
    shown = f"{scheme}{sep}***@{hosts}" if at and "/" not in userinfo else url  # no password in logs
    return ValueError(f"invalid Redis URL {shown!r}: {why} (expected {EXPECTED})")


def _addresses(url: str, what: str) -> tuple[tuple[str, int], ...]:
    """The ``h1:p1,h2:p2`` of ``url`` (IPv6 in brackets), or ``ValueError`` naming the bad one."""
    hosts = urlparse(url).netloc.rpartition("@")[2]
    addresses = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _refuse(url, f"{what} address {item!r} is not host:port")
        addresses.append((host.strip("[]"), int(port)))
    return tuple(addresses)


def _credentials(parsed: Any) -> dict[str, Any]:
    connection: dict[str, Any] = {}
    if parsed.username:
        connection["username"] = unquote(parsed.username)
    if parsed.password:
        connection["password"] = unquote(parsed.password)
    return connection


def parse_sentinel_url(url: str) -> SentinelTarget:
    """``redis+sentinel://[[user]:password@]h1:p1,h2:p2/db/master``, or ``ValueError``."""
    parsed = urlparse(url)
    sentinels = _addresses(url, "sentinel")
    parts = [unquote(p) for p in parsed.path.split("/")[1:]]
    if len(parts) != 2 or not parts[1]:
        raise _refuse(url, "a Sentinel URL ends with /<db>/<master name>")
    if not parts[0].isdigit():
        raise _refuse(url, f"database {parts[0]!r} is not a number")
    connection: dict[str, Any] = {"db": int(parts[0]), **_credentials(parsed)}
    return SentinelTarget(sentinels, parts[1], connection)


def parse_cluster_url(url: str) -> ClusterTarget:
    """``redis+cluster://[[user]:password@]h1:p1,h2:p2[/0]`` (``rediss+cluster://…[?tls options]``
    for TLS), or ``ValueError``."""
    parsed = urlparse(url)
    nodes = _addresses(url, "cluster node")
    if parsed.path not in ("", "/", "/0"):
        raise _refuse(url, "Redis Cluster has database 0 only (no /<db> other than /0)")
    if parsed.fragment:
        raise _refuse(url, "a Cluster URL takes no fragment")
    connection = _credentials(parsed)
    if parsed.scheme in TLS_CLUSTER_SCHEMES:
        connection.update(ssl=True, **_tls_options(url, parsed.query))
    elif parsed.query:
        raise _refuse(url, "a Cluster URL takes no options after the nodes (TLS ones: rediss+cluster://)")
    return ClusterTarget(nodes, connection)


def _tls_options(url: str, query: str) -> dict[str, str]:
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - set(TLS_OPTIONS))
    if unknown:
        raise _refuse(url, f"unknown option {unknown[0]!r} (TLS Cluster URLs take {', '.join(TLS_OPTIONS)})")
    if options.get("ssl_cert_reqs", "required") not in CERT_REQS:
        raise _refuse(url, f"ssl_cert_reqs must be one of {', '.join(CERT_REQS)}")
    return options


def validate_redis_url(url: str) -> None:
    """Raise ``ValueError`` (a clear message) unless every Redis user of the app can use ``url``."""
    if not isinstance(url, str) or not url:
        raise _refuse(str(url), "it is empty")
    scheme = urlparse(url).scheme
    if scheme in SENTINEL_SCHEMES:
        parse_sentinel_url(url)
    elif scheme in CLUSTER_SCHEMES:
        parse_cluster_url(url)
    elif scheme in PLAIN_SCHEMES:
        try:
            redis.connection.parse_url(url)
            urlparse(url).port  # noqa: B018 - raises on a port that is not a number
        except ValueError as exc:
            raise _refuse(url, str(exc)) from None
    else:
        raise _refuse(url, f"unknown scheme {scheme!r}" if scheme else "no scheme")


def bounded_options(socket_timeout: float, connect_timeout: float) -> dict[str, Any]:
    """Connection options that bound a command by ``socket_timeout``: redis-py's default retries
    a timed-out command up to 10 times, which turns 250 ms into seconds."""
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "retry": Retry(NoBackoff(), 0),
    }


def redis_client(
    url: str,
    *,
    socket_timeout: float,
    connect_timeout: float,
    **options: Any,
) -> AnyRedis:
    """A client for ``url`` whose connect and every read are bounded, with no redis-py retries
    (their callers own retrying, with backoff). ``options`` go to each connection.

    For Sentinel, the sentinels are asked with the same bounds, and the client follows the
    master after a failover: a connection that finds a replica, or no server, is dropped and
    the next one asks the sentinels again.

    For Cluster, a :class:`~kdk_app.redis_cluster.BoundedRedisCluster`: it learns the slots map
    at its first command (not here) and again after a failed one, and retries once on the new
    map, so it follows a failover by itself too.
    """
    validate_redis_url(url)
    scheme = urlparse(url).scheme
    if scheme in CLUSTER_SCHEMES:
        cluster = parse_cluster_url(url)
        return cluster_client(
            cluster.nodes,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
            **{**cluster.connection, **options},
        )
    bounded = {**bounded_options(socket_timeout, connect_timeout), **options}
    if scheme in SENTINEL_SCHEMES:
        target = parse_sentinel_url(url)
        sentinel = Sentinel(
            list(target.sentinels),
            sentinel_kwargs=bounded_options(socket_timeout, connect_timeout),
            **{**target.connection, **bounded},
        )
        return sentinel.master_for(target.master)
    return redis.Redis.from_url(url, **bounded)


def node_client(
    target: ClusterTarget, address: tuple[str, int], *, socket_timeout: float, connect_timeout: float
) -> redis.Redis:
    """A plain client of one cluster node, for a probe that asks that node itself (bounded, no
    retries, the URL's credentials)."""
    host, port = address
    return redis.Redis(
        host=host, port=port, **target.connection, **bounded_options(socket_timeout, connect_timeout)
    )
