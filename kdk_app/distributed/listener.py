"""One pub/sub connection per process: replies, remote events, registry changes.

Its subscription to this instance's reply channel is also how others see that we are alive,
so ``connected`` is exact: True only while subscribed.

On a Redis Cluster the liveness scripts count this subscription only on the master of the
partition's slot (see :mod:`.liveness`). A manual failover or a resharding moves that slot and
leaves this connection up on a node that no longer serves it, so every call would find no live
provider. So every ``NODE_CHECK_INTERVAL`` the listener asks its node for a key of the slot: a
MOVED answer means subscribe again, on the slot's master now.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from redis.cluster import ClusterPubSub

from ..background import BackgroundThread, Backoff
from ..redis_connect import AnyRedis
from .stats import DistributionStats

logger = logging.getLogger(__name__)

Handler = Callable[[bytes], None]
NODE_CHECK_INTERVAL = 2.0  # s between two checks that a cluster listener's node serves the slot


class NodeMoved(Exception):
    """The partition's slot is no longer on the node this listener subscribed on."""


class Listener:
    def __init__(
        self,
        connect: Callable[[float], AnyRedis],
        handlers: dict[str, Handler],
        stats: DistributionStats,
        on_subscribed: Callable[[], None] = lambda: None,
        route: str | None = None,
    ) -> None:
        self.connect = connect
        self.handlers = handlers
        self.stats = stats
        self.on_subscribed = on_subscribed
        self.route = route  # a key of the partition's hash tag, for the check on a cluster
        self.subscribed = threading.Event()
        self._thread = BackgroundThread("kdk-dist-listener", self._run)

    @property
    def connected(self) -> bool:
        return self.subscribed.is_set()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._thread.stop(timeout)
        self.subscribed.clear()

    def _run(self, stop: threading.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            client = self.connect(5.0)
            pubsub = None
            try:
                # On a cluster this connects (slots map), and it subscribes on the node of the
                # first channel: all of them share the partition's hash tag (see liveness).
                pubsub = client.pubsub()
                pubsub.subscribe(*self.handlers)
                next_check = time.monotonic() + NODE_CHECK_INTERVAL
                while not stop.is_set():
                    if isinstance(pubsub, ClusterPubSub) and time.monotonic() >= next_check:
                        next_check = time.monotonic() + NODE_CHECK_INTERVAL
                        self._check_node(pubsub)
                    message = pubsub.get_message(timeout=0.25)  # how soon stop() is noticed
                    if not message:
                        continue
                    if message.get("type") == "message":
                        self._handle(message)
                    elif message.get("type") == "subscribe" and message.get("data") == len(self.handlers):
                        # Confirmed for every channel: from now on others see us alive.
                        self.subscribed.set()
                        backoff.reset()
                        self.on_subscribed()
            except Exception as exc:  # noqa: BLE001 - any failure: resubscribe after a pause
                self.subscribed.clear()
                self.stats.bump("redis_errors")
                logger.warning("distribution: lost the Redis subscription, retrying: %s", exc)
                stop.wait(backoff.next())
            finally:
                self.subscribed.clear()
                try:
                    if pubsub is not None:
                        pubsub.close()
                    client.close()
                except Exception:  # noqa: BLE001 - closing a broken connection may fail too
                    pass

    def _check_node(self, pubsub: ClusterPubSub) -> None:
        node = pubsub.get_pubsub_node()
        if self.route is None or node is None or node.redis_connection is None:
            return
        try:
            node.redis_connection.exists(self.route)  # that node itself: no redirection followed
        except redis.exceptions.MovedError as moved:
            raise NodeMoved(f"{node.name} no longer serves the partition's slot ({moved})") from None

    def _handle(self, message: dict[str, object]) -> None:
        channel = message["channel"]
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        handler = self.handlers.get(name)
        data = message["data"]
        if handler is None or not isinstance(data, (bytes, str)):
            return
        try:
            handler(data if isinstance(data, bytes) else data.encode())
        except Exception:
            logger.exception("distribution: handling a message on %s failed", name)
