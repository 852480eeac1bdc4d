"""The Socket.IO message queue on RabbitMQ (``amqp://``, ``amqps://``), through kombu.

python-socketio's KombuManager already delivers an emit to this process's own clients before
publishing it, and speaks the same messages as any other KombuManager on the channel. This
subclass, like the Redis one (see redis_queue.py):

- bounds a publish (it runs on the request path) by the request-path timeouts: one attempt to
  connect within ``connect`` and each round trip within ``socket`` seconds, no kombu retries
  (its ``ensure`` retries forever by default); a publish that fails on a connection that had
  worked is tried once more on a new one (RabbitMQ closed it, say), otherwise it is logged and
  dropped, never raised, and further publishes are skipped for a short cool-down;
- listens on a connection of its own with heartbeats, so a RabbitMQ gone silent is noticed, and
  reconnects after short, jittered delays (python-socketio doubles its own up to 60 s);
- listens on an exclusive queue that RabbitMQ deletes with its connection (python-socketio's
  queue outlives a dead process for 5 minutes, filling up).

Like Redis pub/sub, it is at most once: events emitted while a listener is disconnected are
lost for its clients.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from typing import Any

import kombu
from socketio import KombuManager

from ..background import jittered
from ..redis_client import RedisTimeouts
from ..turns import take_turns
from .rooms import IndexedRooms

logger = logging.getLogger(__name__)

RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0)  # then every 2 s until RabbitMQ is back
PUBLISH_COOLDOWN = 1.0  # s without publish attempts after one failed
POLL = 1.0  # s, longest wait for one message before the listener looks around
# s; RabbitMQ sends one every half period, the listener gives up after two silent periods.
LISTEN_HEARTBEAT = 3
LISTEN_READ_TIMEOUT = 5.0  # s, bound of one round trip (declare, consume) of the listener
TRANSIENT = 1  # delivery_mode: the queues are in memory anyway
MAX_BACKLOG = 10_000  # messages an exclusive queue keeps for a slow listener; older ones go


class ResilientKombuManager(IndexedRooms, KombuManager):
    # Set by KombuManager (untyped), from our _connection(); replaced after a failed publish.
    publisher_connection: kombu.Connection

    def __init__(
        self, url: str, channel: str, *, timeouts: RedisTimeouts | None = None, **kwargs: Any
    ) -> None:
        self.timeouts = timeouts or RedisTimeouts()
        queue_options = {
            "durable": False,
            "exclusive": True,
            "auto_delete": True,
            "queue_arguments": {"x-max-length": MAX_BACKLOG},
        }
        queue_options.update(kwargs.pop("queue_options", None) or {})
        super().__init__(url, channel=channel, queue_options=queue_options, **kwargs)
        self._producer: kombu.Producer | None = None
        # One connection for every request: frames of two emits must not interleave.
        self._publish_lock = threading.Lock()
        self._publish_paused_until = 0.0
        self.dropped_publishes = 0

    # --- connections -----------------------------------------------------------------------
    def _connection(self, heartbeat: int = 0) -> kombu.Connection:
        # Not connected yet: kombu connects on first use.
        options: dict[str, Any] = {"connect_timeout": self.timeouts.connect, "heartbeat": heartbeat}
        if self.url.startswith("amqps:"):
            # Verified TLS, host name included (kombu fills it in), as the sync bus does.
            options["ssl"] = {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": None}
        options.update(self.connection_options)
        return kombu.Connection(self.url, **options)

    @staticmethod
    def _connect(connection: kombu.Connection, timeout: float) -> None:
        """Connect at most once (kombu's ``connect()`` retries after 2 s) and bound every
        later round trip: py-amqp leaves the socket without a timeout."""
        connection.ensure_connection(max_retries=0)
        connection.connection.sock.settimeout(timeout)

    # --- publishing (request path) -----------------------------------------------------------
    def _publish(self, data: Any) -> None:
        body = self.json.dumps(data)
        with self._publish_lock:
            self._publish_bounded(body)

    def _publish_bounded(self, body: str) -> None:
        if time.monotonic() < self._publish_paused_until:
            self.dropped_publishes += 1
            return
        retry = self._producer is not None
        while True:
            try:
                self._publish_once(body)
                return
            except Exception as exc:  # noqa: BLE001 - local delivery is done; never fail the request
                self._drop_publisher()
                if retry:
                    retry = False  # the connection had worked: once more on a new one
                    continue
                self.dropped_publishes += 1
                self._publish_paused_until = time.monotonic() + PUBLISH_COOLDOWN
                logger.warning(
                    "Socket.IO message queue could not publish to RabbitMQ (skipping for %gs): %s",
                    PUBLISH_COOLDOWN,
                    exc,
                )
                return

    def _publish_once(self, body: str) -> None:
        if self._producer is None:
            self._connect(self.publisher_connection, self.timeouts.socket)
            self._producer = kombu.Producer(
                self.publisher_connection.default_channel, exchange=self._exchange(), **self.producer_options
            )
        self._producer.publish(body, delivery_mode=TRANSIENT)

    def _drop_publisher(self) -> None:
        self._producer = None
        _release(self.publisher_connection)
        self.publisher_connection = self._connection()

    # --- listening (background task) ---------------------------------------------------------
    def _listen(self) -> Iterator[Any]:
        attempt = 0
        while True:
            connection = self._connection(heartbeat=LISTEN_HEARTBEAT)
            try:
                arrived: deque[Any] = deque()
                # Never cancelled: releasing the connection ends it (a cancel would wait on a
                # dead broker), and RabbitMQ deletes the exclusive queue with it.
                self._consumer(connection, arrived).consume()
                if attempt:
                    logger.info("Socket.IO message queue reconnected to RabbitMQ")
                attempt = 0
                yield from self._messages(connection.connection, arrived)
            except Exception as exc:  # any failure: drop the connection and try again soon
                if attempt == 0:
                    logger.warning("Socket.IO message queue lost RabbitMQ: %s", exc)
                attempt += 1
            finally:
                _release(connection)
            # Always wait before trying again, whatever ended the loop above.
            time.sleep(jittered(RECONNECT_DELAYS[min(max(attempt - 1, 0), len(RECONNECT_DELAYS) - 1)]))

    def _consumer(self, connection: kombu.Connection, arrived: deque[Any]) -> kombu.Consumer:
        self._connect(connection, LISTEN_READ_TIMEOUT)
        queue = kombu.Queue(f"python-socketio.{uuid.uuid4()}", self._exchange(), **self.queue_options)
        # Raw bodies (kombu sends python-socketio's JSON text as text/plain): decoded by the
        # manager, which skips what is not JSON, never by kombu's serializers.
        return kombu.Consumer(
            connection.default_channel,
            queues=[queue],
            on_message=lambda m: arrived.append(_text(m.body)),
            no_ack=True,
        )

    @staticmethod
    def _messages(raw: Any, arrived: deque[Any]) -> Iterator[Any]:
        """Messages of one connection (py-amqp's, not kombu's, which would reconnect by itself
        with its own retries), until it fails: it raises then."""
        while True:
            raw.heartbeat_tick()  # sends ours when due; raises when RabbitMQ went silent
            try:
                raw.drain_events(timeout=POLL)
            except TimeoutError:
                pass
            while arrived:
                yield arrived.popleft()
            take_turns()  # let the others run even when messages keep coming


def _text(body: bytes | str) -> str:
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else body


def _release(connection: kombu.Connection) -> None:
    try:
        connection.collect()  # frees the socket without a closing handshake a dead broker would stall
    except Exception as exc:  # noqa: BLE001 - it is dropped anyway
        logger.debug("releasing a queue connection failed: %s", exc)
