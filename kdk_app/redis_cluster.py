"""The app's Redis Cluster client: a ``redis.cluster.RedisCluster`` that behaves like its other
Redis clients (see :mod:`kdk_app.redis_connect`, which builds it from a ``redis+cluster://`` URL).

Three differences from a plain ``RedisCluster``, each because a caller relies on it:

- **Nothing talks to the cluster before the first command.** ``RedisCluster`` reads the slots map
  and ``COMMAND`` in its constructor, so building one would fail whenever the cluster is down,
  and the app builds clients at start and in its retry loops, as it may with ``redis.Redis``.
- **Every failure is a ``RedisError``.** ``RedisClusterException`` (no node answers, slots not
  covered, a command it cannot route) is not one; commands raise :class:`ClusterUnavailable`
  instead, which every caller already handles. (Pipelines still raise it: their callers catch
  :data:`kdk_app.redis_connect.REDIS_ERRORS`.)
- **One retry, where a failover needs it.** redis-py re-learns the slots map after a failed
  connection. After a connection error (refused, reset: what a dead master gives) the one retry
  runs on that map, so the first command after a promotion reaches the new master. A timeout
  is not retried, as on a single Redis: the command may have run (a second INCR would count
  twice) and a hung node would only be waited for again. Nor is CLUSTERDOWN (a failover under
  way): redis-py sleeps 0.25 s before it, and waiting for the promotion is the caller's job.
  So a command is at most two attempts, each bounded by the timeouts and, when it fails,
  followed by one slots-map refresh: one round trip to a node that answers. When no node
  answers, that refresh waits on each of them in turn; then for ``PAUSE`` (1 s) commands fail
  at once after their own attempt instead of waiting on every node again (and a client that has
  not connected yet does not try again either).

Pipelines are redis-py's own: after a timeout or a connection error they send the failed
commands again one by one, so only commands that may run twice belong in one. The app's hold
SET, SADD, wake pushes and the sync bus's XADDs (its readers drop duplicates); the login
throttle sends its counts as single commands for that reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import Encoder
from redis.exceptions import ConnectionError, RedisClusterException, SlotNotCoveredError
from redis.retry import Retry

logger = logging.getLogger(__name__)

RETRIES = 1  # one more attempt, on the re-learned slots map
PAUSE = 1.0  # s: after no node answered, commands fail at once this long instead of asking again

_IDLE, _CONNECTING, _READY = "idle", "connecting", "ready"


class ClusterUnavailable(ConnectionError):
    """A ``RedisClusterException`` raised as a ``RedisError`` (its message kept)."""


class BoundedRedisCluster(RedisCluster):
    """A ``RedisCluster`` that connects at its first command; see the module docstring."""

    # Not TimeoutError, ClusterDownError. (redis-py leaves the attribute unannotated, so mypy
    # takes its own 4-tuple for its type.)
    ERRORS_ALLOW_RETRY = (ConnectionError, SlotNotCoveredError)  # type: ignore[assignment]

    def __init__(self, **options: Any) -> None:
        # Only our own attributes here; RedisCluster.__init__ runs at the first command.
        self._kdk_options = options
        self._kdk_state = _IDLE
        self._kdk_lock = threading.Lock()
        self._kdk_owner: int | None = None  # the thread running RedisCluster.__init__
        self._kdk_error: BaseException | None = None  # why no node answered, the last time
        self._kdk_failed_at = 0.0
        # What Script() (register_script) and keyslot() need, without a connection.
        self.encoder = Encoder(
            options.get("encoding", "utf-8"),
            options.get("encoding_errors", "strict"),
            options.get("decode_responses", False),
        )

    def __getattr__(self, name: str) -> Any:
        # Reached only for attributes not set yet: RedisCluster's state before it connected.
        # Inside RedisCluster.__init__ a missing attribute is just missing.
        state = self.__dict__.get("_kdk_state")
        owner = self.__dict__.get("_kdk_owner")
        if name.startswith("__") or state in (None, _READY) or owner == threading.get_ident():
            raise AttributeError(name)
        self._kdk_connect()
        return getattr(self, name)

    def _kdk_connect(self) -> None:
        with self._kdk_lock:  # one attempt at a time; those who waited get its outcome
            if self._kdk_state == _READY:
                return
            self._kdk_check_pause(ClusterUnavailable)
            self._kdk_state, self._kdk_owner = _CONNECTING, threading.get_ident()
            try:
                RedisCluster.__init__(self, **self._kdk_options)
                self._kdk_pause_refreshes()
                self._kdk_state, self._kdk_error = _READY, None
            except RedisClusterException as exc:
                self._kdk_failed(exc)
                raise ClusterUnavailable(f"Redis Cluster: {exc}") from exc
            except Exception as exc:
                self._kdk_failed(exc)
                raise
            finally:
                self._kdk_owner = None
                if self._kdk_state != _READY:
                    self._kdk_forget()
                    self._kdk_state = _IDLE  # the next command tries again, after the pause

    def _kdk_failed(self, error: BaseException) -> None:
        self._kdk_error, self._kdk_failed_at = error, time.monotonic()

    def _kdk_check_pause(self, kind: type[Exception]) -> None:
        """Raise ``kind`` at once while the last attempt to reach any node is under PAUSE old."""
        error, ago = self._kdk_error, time.monotonic() - self._kdk_failed_at
        if error is not None and ago < PAUSE:
            raise kind(f"Redis Cluster: no node answered {ago:.2f}s ago ({error})") from error

    def _kdk_pause_refreshes(self) -> None:
        """After a slots-map refresh that no node answered, the next one waits PAUSE: when every
        node hangs a refresh waits on each of them, and a command would pay that every time."""
        manager = self.nodes_manager
        refresh = manager.initialize

        def initialize(*args: Any, **kwargs: Any) -> None:
            self._kdk_check_pause(RedisClusterException)  # what redis-py raises when none answers
            try:
                refresh(*args, **kwargs)
            except RedisClusterException as exc:
                self._kdk_failed(exc)
                raise
            self._kdk_error = None

        # An instance attribute shadowing the method, on this client's own manager only;
        # redis-py looks it up by name.
        vars(manager)["initialize"] = initialize

    def _kdk_forget(self) -> None:
        """Drop what a failed RedisCluster.__init__ left behind, so that the next one starts clean."""
        manager = self.__dict__.get("nodes_manager")
        if manager is not None:
            try:
                manager.close()
            except Exception as exc:  # noqa: BLE001 - its connections are dropped anyway
                logger.debug("closing a half-built cluster client failed: %s", exc)
        for name in [name for name in self.__dict__ if not name.startswith("_kdk") and name != "encoder"]:
            del self.__dict__[name]

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            raise ClusterUnavailable(f"Redis Cluster: {exc}") from exc

    def close(self) -> None:
        if self.__dict__.get("_kdk_state") == _READY:  # else there is nothing to close
            super().close()


def cluster_client(
    nodes: Sequence[tuple[str, int]],
    *,
    socket_timeout: float,
    connect_timeout: float,
    **options: Any,
) -> BoundedRedisCluster:
    """A client of the cluster that ``nodes`` belong to. Every connection to a node is bounded by
    ``socket_timeout`` and ``connect_timeout`` and never retried by redis-py at that level (the
    cluster client sets that); ``options`` go to each node connection (``RedisCluster`` drops
    those a node connection does not take)."""
    return BoundedRedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        retry=Retry(NoBackoff(), RETRIES),
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        **options,
    )
