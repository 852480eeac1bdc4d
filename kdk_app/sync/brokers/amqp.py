"""The sync bus on RabbitMQ (AMQP 0-9-1, through py-amqp): one durable fanout exchange per
stream, and one durable queue per bus instance bound to it.

- Writing: persistent messages on a channel in confirm mode; ``send`` returns once RabbitMQ has
  confirmed every message of the batch (stored in every queue it goes to), within
  ``socket_timeout``.
- Reading: the bus's own queue outlives its connection, so a reader that lost RabbitMQ gets
  what was published meanwhile when it reconnects; messages are acknowledged after they were
  handled (at least once: the bus drops copies by envelope id). The queue expires after
  ``retention_ms`` without a reader, its messages after ``retention_ms``, and it keeps at most
  ``maxlen`` (the oldest go first), as a Redis Stream is trimmed.
- Positions: a queue has none. A reader starts with the events published once its queue exists
  (``"$"``, new only) and then reads on from its queue; any other start position is refused.
- Time: RabbitMQ stores no write time (``Entry.written_ms`` is None), so the signed time is
  checked against the clock within ``retention_ms`` (``max_age_ms``).

Every wait is bounded: connecting by ``socket_timeout``, each later round trip by the socket's
own timeout (``socket_timeout``, enforced by Python, so under gevent too), a read by
``block_ms``. The reader's connection has heartbeats, so a broker gone silent is noticed.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import os
import socket
import ssl
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import amqp
from amqp.exceptions import MessageNacked, NotFound

from .base import NEW_ONLY, BrokerOptions, Entry

logger = logging.getLogger(__name__)

DEFAULT_RETENTION_MS = 3_600_000  # when sync.retention_ms is unset: queues must expire some day
PERSISTENT = 2  # delivery_mode: written to disk, survives a RabbitMQ restart
MAX_NAME = 255  # bytes of an AMQP queue name
# After the first message of a read, how long to wait for each further one already on its way.
FILL_WAIT = 0.002
READ_AHEAD = 65536  # bytes asked of the socket per read


@dataclass(frozen=True)
class AmqpAddress:
    """Where and as whom to connect, from an ``amqp://`` or ``amqps://`` URL (kombu's reading:
    an empty path is the virtual host ``/``; ``amqp://host//`` and ``amqp://host/%2F`` too)."""

    host: str
    port: int
    userid: str
    password: str
    virtual_host: str
    tls: bool

    @classmethod
    def from_url(cls, url: str) -> AmqpAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise ValueError(f"not an AMQP URL: {parts.scheme}://…")
        tls = parts.scheme == "amqps"
        try:
            port = parts.port or (5671 if tls else 5672)
        except ValueError:
            raise ValueError("invalid AMQP URL: the port is not a number") from None
        return cls(
            host=parts.hostname or "localhost",
            port=port,
            userid=unquote(parts.username) if parts.username else "guest",
            password=unquote(parts.password) if parts.password else "guest",
            virtual_host=unquote(parts.path[1:]) or "/",
            tls=tls,
        )

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def connect(self, name: str, timeout: float, heartbeat: int = 0) -> amqp.Connection:
        """An open connection whose every later wait is bounded by ``timeout`` seconds."""
        connection = amqp.Connection(
            self.hostport,
            userid=self.userid,
            password=self.password,
            virtual_host=self.virtual_host,
            # Verified TLS, host name included, against the system CAs (SSL_CERT_FILE names a private CA).
            ssl={"server_hostname": self.host, "cert_reqs": ssl.CERT_REQUIRED} if self.tls else False,
            connect_timeout=timeout,
            heartbeat=heartbeat,
            client_properties={"connection_name": name},
        )
        try:
            connection.connect()
            # py-amqp leaves the socket blocking with no timeout (SO_RCVTIMEO means nothing to a
            # gevent socket): this bounds every round trip, a declare or a close too.
            connection.sock.settimeout(timeout)
            _read_ahead(connection)
        except BaseException:
            _collect(connection)
            raise
        return connection


class AmqpWriter:
    """Publishes batches on one confirming channel; one writer per thread."""

    def __init__(self, connection: amqp.Connection, exchange: str, timeout: float) -> None:
        self._connection = connection
        self.exchange = exchange
        self.timeout = timeout
        self._channel = connection.channel()
        self._channel.exchange_declare(exchange, "fanout", durable=True, auto_delete=False)
        self._channel.confirm_select()
        self._channel.events["basic_ack"].add(self._acked)
        self._channel.events["basic_nack"].add(self._nacked)
        self._published = 0  # messages published on the channel: confirms number them from 1
        self._first = 1  # confirm number of the batch's first message
        self._unconfirmed: set[int] = set()
        self._results: list[BaseException | None] = []

    def send(self, messages: list[bytes]) -> list[BaseException | None]:
        # Ready before the first publish: py-amqp may read confirms while it publishes.
        self._first = self._published + 1
        self._unconfirmed = set(range(self._first, self._first + len(messages)))
        self._results = [None] * len(messages)
        for message in messages:
            self._channel.basic_publish(
                amqp.Message(message, delivery_mode=PERSISTENT), exchange=self.exchange, routing_key=""
            )
            self._published += 1
        deadline = time.monotonic() + self.timeout
        while self._unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"RabbitMQ confirmed {len(messages) - len(self._unconfirmed)} of {len(messages)} "
                    f"message(s) within {self.timeout:g}s"
                )
            try:
                self._connection.blocking_read(remaining)
            except TimeoutError:
                continue
        return self._results

    def _acked(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple, None)

    def _nacked(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple, MessageNacked("RabbitMQ refused the message (nack)"))

    def _settle(self, tag: int, multiple: bool, outcome: BaseException | None) -> None:
        tags = [t for t in self._unconfirmed if t <= tag] if multiple else [tag]
        for settled in tags:
            if settled in self._unconfirmed:
                self._unconfirmed.discard(settled)
                self._results[settled - self._first] = outcome

    def close(self) -> None:
        _shut(self._connection)


class AmqpReader:
    """Consumes the bus's queue; one reader per thread, for one connection."""

    def __init__(self, broker: AmqpBroker) -> None:
        self._broker = broker
        self._connection: amqp.Connection | None = None
        self._channel: Any = None
        self._arrived: deque[tuple[int, bool, bytes | None]] = deque()  # (tag, redelivered, body)
        self._tags: dict[str, int] = {}  # entry id -> delivery tag, until acknowledged
        self._cancelled = False

    def resume(self, position: str) -> str:
        b = self._broker
        o = b.options
        self._connection = connection = b.address.connect(
            f"kdk-sync-reader {b.reader_id}", o.socket_timeout, b.heartbeat
        )
        existed = _queue_exists(connection, b.queue) if b.declared else True
        channel = self._channel = connection.channel()
        channel.exchange_declare(b.exchange, "fanout", durable=True, auto_delete=False)
        channel.queue_declare(b.queue, durable=True, auto_delete=False, arguments=b.queue_arguments)
        channel.queue_bind(b.queue, b.exchange)
        channel.basic_qos(0, b.prefetch, False)
        channel.basic_consume(b.queue, callback=self._arrive, on_cancel=self._cancel)
        if not existed:
            logger.warning(
                "sync queue %r was gone (no reader for sync.retention_ms, or RabbitMQ lost it): "
                "events published to stream %r before it was declared again are lost for this instance",
                b.queue,
                b.exchange,
            )
        if not b.declared:
            logger.info("sync bus reads RabbitMQ queue %r, bound to exchange %r", b.queue, b.exchange)
        b.declared = True
        return position

    def read(self) -> list[Entry]:
        connection = self._live()
        connection.heartbeat_tick()  # sends ours when due; raises when RabbitMQ went silent
        deadline = time.monotonic() + self._broker.options.block_ms / 1000
        while not self._arrived:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._frame(connection, remaining):
                break
        # A delivery is three frames: take what is already on its way, up to a batch.
        while self._arrived and len(self._arrived) < self._broker.batch_size:
            if not self._frame(connection, FILL_WAIT):
                break
        if self._cancelled:
            raise ConnectionError(f"RabbitMQ cancelled the consumer of queue {self._broker.queue!r}")
        entries: list[Entry] = []
        while self._arrived and len(entries) < self._broker.batch_size:
            tag, redelivered, body = self._arrived.popleft()
            if redelivered and body is not None and body in self._broker.handled:
                # Handled here before an acknowledgement was lost with the connection: not
                # again (the signature check would refuse its nonce as a replay, a forgery).
                self._channel.basic_ack(tag)
                continue
            entry = Entry(str(next(self._broker.counter)), None, body)
            self._tags[entry.id] = tag
            entries.append(entry)
        return entries

    def done(self, entries: list[Entry]) -> None:
        if not entries:
            return
        # Entries come in delivery order: one ack covers the batch.
        tag = self._tags[entries[-1].id]
        for entry in entries:
            self._tags.pop(entry.id, None)
            if entry.payload is not None:
                self._broker.handled.add(entry.payload)
        self._channel.basic_ack(tag, multiple=True)

    def close(self) -> None:
        if self._connection is not None:
            _shut(self._connection)
            self._connection = None

    def _live(self) -> amqp.Connection:
        if self._connection is None:
            raise ConnectionError("the sync reader is not connected")
        return self._connection

    def _frame(self, connection: amqp.Connection, timeout: float) -> bool:
        """Read one frame within ``timeout`` s (deliveries land in ``_arrived``); False if none."""
        try:
            connection.blocking_read(timeout)
        except TimeoutError:
            return False
        return not self._cancelled

    def _arrive(self, message: amqp.Message) -> None:
        body = message.body
        # A message published with a content encoding arrives decoded: the signature covers bytes.
        if isinstance(body, str):
            body = body.encode("utf-8", "surrogatepass")
        self._arrived.append((message.delivery_tag, bool(message.delivery_info.get("redelivered")), body))

    def _cancel(self, consumer_tag: str) -> None:
        self._cancelled = True  # the queue was deleted: reconnect and declare it again


class AmqpBroker:
    kind = "amqp"

    def __init__(
        self, url: str, options: BrokerOptions, batch_size: int = 100, reader_id: str | None = None
    ) -> None:
        self.url = url
        self.address = AmqpAddress.from_url(url)
        self.options = options
        self.batch_size = batch_size
        # Twice a batch unacknowledged: the next batch is on its way while one is handled.
        self.prefetch = 2 * batch_size
        self.retention_ms = options.retention_ms or DEFAULT_RETENTION_MS
        self.max_age_ms = self.retention_ms  # no write time from RabbitMQ: see signed.py
        self.exchange = options.stream
        # Stable for the life of this bus (stop/start included), unique among processes.
        self.reader_id = (
            reader_id or options.instance_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        self.queue = _queue_name(options.stream, self.reader_id)
        self.queue_arguments: dict[str, int] = {
            "x-expires": self.retention_ms,
            "x-message-ttl": self.retention_ms,
        }
        if options.maxlen:
            self.queue_arguments["x-max-length"] = options.maxlen  # the oldest messages go first
        # RabbitMQ sends a heartbeat every half period and we give up after two periods.
        read_wait = options.block_ms / 1000 + options.socket_timeout
        self.heartbeat = max(5, math.ceil(2 * read_wait))
        self.declared = False  # the queue was declared once: its absence later is a loss
        self.counter = itertools.count(1)  # entry ids: increasing for the life of this bus
        # Only unacknowledged messages come again: a few prefetch windows cover them.
        self.handled = RecentBodies(4 * self.prefetch)

    def check_position(self, position: str) -> None:
        if position != NEW_ONLY:
            raise ValueError(
                f"RabbitMQ keeps no stream positions: a sync bus on amqp:// starts with new events "
                f"only ({NEW_ONLY!r}), then reads on from its own queue; got {position!r}"
            )

    def writer(self) -> AmqpWriter:
        timeout = self.options.socket_timeout
        connection = self.address.connect(f"kdk-sync-writer {self.reader_id}", timeout)
        try:
            return AmqpWriter(connection, self.exchange, timeout)
        except BaseException:
            _shut(connection)
            raise

    def reader(self) -> AmqpReader:
        return AmqpReader(self)

    def retire(self) -> None:
        # Named after this process, the queue would otherwise fill for retention_ms after it.
        connection = self.address.connect(f"kdk-sync-retire {self.reader_id}", self.options.socket_timeout)
        try:
            connection.channel().queue_delete(self.queue)
        finally:
            _shut(connection)
        self.declared = False  # a later start declares it afresh, with no loss to report


class RecentBodies:
    """Digests of the last ``size`` message bodies handled (a bounded set)."""

    def __init__(self, size: int) -> None:
        self._order: deque[bytes] = deque()
        self._seen: set[bytes] = set()
        self.size = size

    def add(self, body: bytes) -> None:
        digest = _digest(body)
        if digest in self._seen:
            return
        self._order.append(digest)
        self._seen.add(digest)
        if len(self._order) > self.size:
            self._seen.discard(self._order.popleft())

    def __contains__(self, body: bytes) -> bool:
        return _digest(body) in self._seen


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


def _queue_name(stream: str, reader_id: str) -> str:
    name = f"{stream}.{reader_id}"
    if len(name.encode()) <= MAX_NAME:
        return name
    return f"{stream[:100]}.{hashlib.sha256(name.encode()).hexdigest()[:32]}"


def _queue_exists(connection: amqp.Connection, queue: str) -> bool:
    # A passive declare of a missing queue closes its channel: a channel of its own.
    probe = connection.channel()
    try:
        probe.queue_declare(queue, passive=True)
    except NotFound:
        return False
    probe.close()
    return True


def _shut(connection: amqp.Connection) -> None:
    try:
        connection.close()
    except Exception as exc:  # noqa: BLE001 - closing a dead connection may fail; it is dropped anyway
        logger.debug("closing an AMQP connection failed: %s", exc)
    finally:
        _collect(connection)


def _collect(connection: amqp.Connection) -> None:
    try:
        connection.collect()
    except Exception as exc:  # noqa: BLE001 - only frees the socket
        logger.debug("releasing an AMQP connection failed: %s", exc)


def _read_ahead(connection: amqp.Connection) -> None:
    """Have py-amqp read up to ``READ_AHEAD`` bytes per call, not exactly the bytes it needs
    (three system calls per frame, nine per message): it keeps the rest in its read buffer.
    About twice the messages per second for a reader catching up."""
    transport = connection.transport
    recv = getattr(transport, "_quick_recv", None)
    if recv is not None:  # another py-amqp: keep its own reads
        transport._quick_recv = lambda n: recv(max(n, READ_AHEAD))
