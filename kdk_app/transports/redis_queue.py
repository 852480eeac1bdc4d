"""The Socket.IO message queue on Redis, tuned to survive Redis outages, stopped or hung.

python-socketio's RedisManager already delivers an emit to this process's own clients before
publishing it, so local clients keep receiving events while Redis is down. This subclass:

- takes the publish off the request path: an emit only queues the encoded message (bounded,
  the oldest go first when full); one sender thread per process sends the queue in order, a
  batch per round trip (a pipeline), so a create never waits on Redis and a burst of events
  costs one round trip, not one each;
- bounds each send by ``redis.socket_timeout_ms``, one attempt and no redis-py retries; a batch
  that fails is logged and dropped (it may have been sent in part: never twice), and the
  sender waits a short cool-down before the next, while new messages queue;
- listens on a client and pubsub of its own that publishing never touches. python-socketio's
  publish reconnects by replacing ``self.pubsub`` with an unsubscribed one, on which
  ``listen()`` returns at once: a listener sharing it spins at 100 % CPU;
- pings while idle so a hung Redis is noticed, and always sleeps between reconnect attempts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from redis.cluster import RedisCluster
from socketio import RedisManager

from ..background import BackgroundThread, jittered
from ..redis_client import RedisTimeouts
from ..redis_connect import redis_client
from ..sync.outbox import Outbox, Pending
from ..turns import take_turns
from .rooms import IndexedRooms

logger = logging.getLogger(__name__)

RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0)  # then every 2 s until Redis is back
PUBLISH_COOLDOWN = 1.0  # s without publish attempts after one failed
PUBLISH_QUEUE_SIZE = 10_000  # messages waiting for the sender; then the oldest are dropped
PUBLISH_BATCH = 200  # messages per pipeline
PUBLISH_FLUSH_TIMEOUT = 1.0  # s a stopping process gives the sender to send what is queued
POLL = 1.0  # s, longest wait for one message before the listener looks around
PING_AFTER = 2.0  # s of silence before the listener pings
DEAD_AFTER = 5.0  # s of silence (pings unanswered) after which the connection is dropped
LISTEN_READ_TIMEOUT = 5.0  # s, bound of one read on the listening connection
PING_MESSAGE = "kdk-queue-ping"


class ResilientRedisManager(IndexedRooms, RedisManager):
    # Set by RedisManager (untyped): the publishing client, None until the first connect.
    redis: Any

    def __init__(
        self, url: str, channel: str, *, timeouts: RedisTimeouts | None = None, **kwargs: Any
    ) -> None:
        self.timeouts = timeouts or RedisTimeouts()
        # Bounded by redis_client (no retries). No CLIENT SETINFO on connect: one round trip
        # less that a hung Redis would make wait.
        options = {
            "socket_timeout": self.timeouts.socket,
            "socket_connect_timeout": self.timeouts.connect,
            "socket_keepalive": True,
            "lib_name": None,
            "lib_version": None,
        }
        options.update(kwargs.pop("redis_options", None) or {})
        super().__init__(url, channel=channel, redis_options=options, **kwargs)
        self.dropped_publishes = 0
        self._outbox = Outbox(PUBLISH_QUEUE_SIZE)
        # Started by the first publish, so in the process that publishes (a gunicorn worker,
        # after the fork), never in a parent that only imported the app.
        self._sender = BackgroundThread("kdk-queue-publisher", self._send_loop, wake=self._outbox.wake)
        self._listen_client: Any = None

    # --- clients ---------------------------------------------------------------------------
    def _client(self, options: dict[str, Any]) -> Any:
        """A new client for ``self.redis_url`` (Sentinel URLs too), from the app's one factory."""
        options = dict(options)
        return redis_client(
            self.redis_url,
            socket_timeout=options.pop("socket_timeout"),
            connect_timeout=options.pop("socket_connect_timeout"),
            **options,
        )

    def _redis_connect(self) -> None:
        # Publishing side only: the listener keeps its own client and pubsub.
        if self.redis is not None:
            self.redis.close()
        self.redis = self._client(dict(self.redis_options))
        self.connected = True

    # --- publishing: queued on the request path, sent by the sender thread -------------------
    def _publish(self, data: Any) -> Any:
        if not self._sender.running:
            self._sender.start()
        dropped = self._outbox.put((self.json.dumps(data).encode("utf-8"), None))
        if dropped:
            self.dropped_publishes += dropped
        return None

    @property
    def pending_publishes(self) -> int:
        return len(self._outbox)

    def stop_publisher(self, timeout: float = PUBLISH_FLUSH_TIMEOUT) -> None:
        """Send what is queued (one attempt) and stop the sender; the next publish restarts it."""
        self._sender.stop(timeout)

    def _send_loop(self, stop: Any) -> None:
        while not stop.is_set():
            batch = self._outbox.take(PUBLISH_BATCH, POLL)
            if batch and not self._send(batch):
                stop.wait(jittered(PUBLISH_COOLDOWN))
        while len(self._outbox) and self._send(self._outbox.take(PUBLISH_BATCH, 0)):
            pass

    def _send(self, batch: list[Pending]) -> bool:
        try:
            if not self.connected:
                self._redis_connect()
            if isinstance(self.redis, RedisCluster):  # PUBLISH has no key a cluster pipeline routes
                for message, _token in batch:
                    self.redis.publish(self.channel, message)
            else:
                pipeline = self.redis.pipeline(transaction=False)
                for message, _token in batch:
                    pipeline.publish(self.channel, message)
                pipeline.execute()
            return True
        except Exception as exc:  # noqa: BLE001 - local delivery is done; never fail the sender
            # A new client next time; but a cluster client re-learns the cluster by itself, and
            # a new one would first wait on every node of the URL when none answers.
            self.connected = isinstance(self.redis, RedisCluster)
            self.dropped_publishes += len(batch)
            logger.warning(
                "Socket.IO message queue could not publish %d message(s) to Redis (next try in %gs): %s",
                len(batch),
                PUBLISH_COOLDOWN,
                exc,
            )
            return False

    # --- listening (background task) ---------------------------------------------------------
    def _subscribe(self) -> Any:
        options = {**self.redis_options, "socket_timeout": LISTEN_READ_TIMEOUT}
        client = self._client(options)
        try:
            # On a Redis Cluster this connects (slots map) and subscribes on one node: PUBLISH
            # reaches every node, so any one will do.
            pubsub = client.pubsub()
            pubsub.subscribe(self.channel)
        except Exception:
            _close(client)
            raise
        self.pubsub = pubsub  # for code that looks; nothing in this class reads it back
        self._listen_client = client  # closed with the pubsub: a cluster client has connections too
        return pubsub

    def _redis_listen_with_retries(self) -> Iterator[Any]:
        attempt = 0
        pubsub = None
        while True:
            try:
                if pubsub is None:
                    pubsub = self._subscribe()
                    if attempt:
                        logger.info("Socket.IO message queue reconnected to Redis")
                    attempt = 0
                yield from self._messages(pubsub)
            except Exception as exc:  # any failure: drop the connection and try again soon
                if attempt == 0:
                    logger.warning("Socket.IO message queue lost Redis: %s", exc)
                attempt += 1
            if pubsub is not None:
                _close(pubsub)
                _close(self._listen_client)
                pubsub = None
            # Always wait before trying again, whatever ended the loop above.
            time.sleep(jittered(RECONNECT_DELAYS[min(max(attempt - 1, 0), len(RECONNECT_DELAYS) - 1)]))

    def _messages(self, pubsub: Any) -> Iterator[Any]:
        """Messages of one connection; returns when it is no longer subscribed, raises when dead."""
        last_heard = time.monotonic()
        last_ping = 0.0
        while pubsub.subscribed:
            message = pubsub.get_message(timeout=POLL)
            now = time.monotonic()
            if message is not None:
                last_heard = now
                yield message
            elif now - last_heard >= DEAD_AFTER:
                raise TimeoutError(f"no answer from Redis for {DEAD_AFTER:g}s")
            elif now - last_heard >= PING_AFTER and now - last_ping >= PING_AFTER:
                last_ping = now
                pubsub.ping(PING_MESSAGE)
            take_turns()  # let the others run even when messages keep coming
        logger.warning("Socket.IO message queue found its Redis subscription gone")

    def _listen(self) -> Iterator[Any]:
        channel = self.channel.encode("utf-8")
        for message in self._redis_listen_with_retries():
            if message.get("channel") == channel and message.get("type") == "message" and "data" in message:
                yield message["data"]


def _close(link: Any) -> None:
    """Close a pubsub or a client of the listener."""
    try:
        link.close()
    except Exception as exc:  # noqa: BLE001 - closing a dead connection may fail; it is dropped anyway
        logger.debug("closing the queue's Redis link failed: %s", exc)
