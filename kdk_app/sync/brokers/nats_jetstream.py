"""The sync bus on a NATS JetStream stream: each message published and acknowledged (PubAck),
read back in order by an ephemeral pull consumer from the last stream sequence handled.

The stream (file storage, limited by ``retention_ms`` as max_age and ``maxlen`` as max_msgs) is
created when missing; its limits follow the settings. Positions are stream sequences, as text;
each message's JetStream time is its write time, which the signature's time is checked against.
The protocol client is :mod:`.nats_client` (synchronous, so it works in greenlets; see there).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .base import NEW_ONLY, BrokerOptions, Entry
from .jetstream_api import API, NS_PER_MS, JetStreamError, api, ensure_stream, resume_sequence, stream_name
from .nats_client import Msg, NatsConnection, NatsError, parse_nats_url, pub

logger = logging.getLogger(__name__)

SUBJECT_PREFIX = "kdk.sync."
# An ephemeral consumer left behind by a reader that died without closing goes after this long.
_INACTIVE_THRESHOLD_S = 60
_MAX_BATCH_BYTES = 4 * 1024 * 1024


def ack_error(reply: Msg) -> BaseException | None:
    """None for a PubAck, else what went wrong with that one message."""
    if reply.status == 503:
        return NatsError("no JetStream stream takes this subject (deleted?)")
    if reply.status is not None:
        return NatsError(f"JetStream refused the message: {reply.status} {reply.description}")
    try:
        answer = json.loads(reply.data)
    except ValueError:
        return NatsError(f"not a JetStream PubAck: {reply.data[:80]!r}")
    error = answer.get("error") if isinstance(answer, dict) else "not an object"
    if error or not isinstance(answer.get("seq"), int):
        return JetStreamError(f"JetStream refused the message: {error}")
    return None


class JetStreamWriter:
    def __init__(self, open_connection: Callable[[], NatsConnection], subject: str, timeout: float) -> None:
        self._open = open_connection
        self.subject = subject
        self.timeout = timeout
        self._conn = open_connection()

    def send(self, messages: list[bytes]) -> list[BaseException | None]:
        conn = self._fresh()
        results: list[BaseException | None] = [None] * len(messages)
        waiting: dict[str, int] = {}
        chunks = []
        for index, message in enumerate(messages):
            if len(message) > conn.max_payload:
                # The server would close the connection, at every attempt: sending it again can
                # never work, and would hold up every event behind it.
                logger.error(
                    "sync: dropping an event of %d bytes, over the NATS server's max_payload (%d)",
                    len(message),
                    conn.max_payload,
                )
                continue
            reply = conn.new_reply()
            waiting[reply] = index
            chunks.append(pub(self.subject, message, reply))
        conn.send(b"".join(chunks))
        acked = 0
        deadline = time.monotonic() + self.timeout
        while waiting:
            reply_msg = conn.next_msg(deadline)
            if reply_msg is None:
                break
            index = waiting.pop(reply_msg.subject, -1)
            if index >= 0:  # else a late answer to an earlier batch
                results[index] = ack_error(reply_msg)
                acked += 1
                deadline = time.monotonic() + self.timeout  # each PubAck has its own timeout
        if waiting:
            missing = TimeoutError(f"no PubAck from JetStream within {self.timeout:g}s")
            if not acked:
                raise missing
            for index in waiting.values():
                results[index] = missing
        return results

    def _fresh(self) -> NatsConnection:
        # An idle connection may have been closed by the server (unanswered PINGs): reopening it
        # before anything was sent loses nothing.
        try:
            self._conn.poll()
        except (OSError, NatsError) as exc:
            logger.debug("sync writer: reconnecting to NATS: %s", exc)
            self._conn.close()
            self._conn = self._open()
        return self._conn

    def close(self) -> None:
        self._conn.close()


@dataclass
class SeenStream:
    """What the broker's readers saw of the stream, kept across their reconnections."""

    created: str | None = None  # the stream's creation time: another one means a new stream


class JetStreamReader:
    def __init__(
        self,
        conn: NatsConnection,
        name: str,
        subject: str,
        options: BrokerOptions,
        batch_size: int,
        seen: SeenStream,
    ) -> None:
        self._conn = conn
        self._seen = seen
        self.name = name
        self.subject = subject
        self.options = options
        self.batch_size = batch_size
        self._consumer: str | None = None
        self._last = 0  # the stream sequence of the last entry read

    def resume(self, position: str) -> str:
        info, created = ensure_stream(self._conn, self.name, self.subject, self.options)
        seen, self._seen.created = self._seen.created, info.get("created")
        replaced = seen is not None and seen != self._seen.created
        state = info.get("state") or {}
        self._last = resume_sequence(self.name, position, state, created=created, replaced=replaced)
        config = {
            "deliver_policy": "by_start_sequence",
            "opt_start_seq": self._last + 1,
            "ack_policy": "none",  # the position is ours: a reconnection makes a new consumer
            "inactive_threshold": _INACTIVE_THRESHOLD_S * 1_000_000_000,
            "mem_storage": True,
        }
        answer = api(self._conn, f"CONSUMER.CREATE.{self.name}", {"stream_name": self.name, "config": config})
        self._consumer = answer["name"]
        return str(self._last)

    def read(self) -> list[Entry]:
        # What is there already, at once; else wait (up to the block time) for the next one.
        # A byte bound too, or a batch of large messages makes the server drop us as too slow.
        max_bytes = max(_MAX_BATCH_BYTES, 2 * self._conn.max_payload)
        request = {"batch": self.batch_size, "no_wait": True, "max_bytes": max_bytes}
        entries = self._pull(request, self.options.socket_timeout)
        if not entries:
            block_ms = max(self.options.block_ms, 10)  # 0 would be a pull that never expires
            request = {"batch": 1, "expires": block_ms * NS_PER_MS}
            entries = self._pull(request, block_ms / 1000 + self.options.socket_timeout)
        return entries

    def _pull(self, request: dict[str, Any], wait: float) -> list[Entry]:
        if self._consumer is None:
            raise NatsError("sync reader: resume() first")
        reply = self._conn.new_reply()
        next_subject = f"{API}.CONSUMER.MSG.NEXT.{self.name}.{self._consumer}"
        self._conn.send(pub(next_subject, json.dumps(request).encode(), reply))
        deadline = time.monotonic() + wait
        entries: list[Entry] = []
        while len(entries) < request["batch"]:
            msg = self._conn.next_msg(deadline)
            if msg is None:
                raise TimeoutError(f"no answer from JetStream within {wait:g}s")
            if msg.reply and msg.reply.startswith("$JS.ACK."):
                entry = self._entry(msg)
                if entry is not None:
                    entries.append(entry)
            elif msg.subject != reply or msg.status == 100:
                continue  # the end of an earlier pull, a heartbeat
            elif msg.status in (404, 408) or (entries and "MaxBytes" in msg.description):
                break  # no (more) messages, the wait expired, or the batch is full
            else:
                raise NatsError(f"JetStream pull failed: {msg.status} {msg.description}")
        return entries

    def _entry(self, msg: Msg) -> Entry | None:
        # $JS.ACK.<stream>.<consumer>.<delivered>.<seq>.<consumer seq>.<ns>.<pending>, or with
        # <domain>.<account hash> after $JS.ACK (and a token more at the end) on newer servers.
        tokens = msg.reply.split(".") if msg.reply else []
        base = 2 if len(tokens) == 9 else 4
        try:
            sequence, written_ns = int(tokens[base + 3]), int(tokens[base + 5])
        except (IndexError, ValueError):
            logger.warning("sync reader: unexpected JetStream reply subject %r", msg.reply)
            return None
        if sequence <= self._last:
            return None  # delivered twice: already handed on
        if sequence > self._last + 1:
            logger.warning(
                "sync stream %r: entries %d to %d were removed (retention or maxlen) before this "
                "instance read them",
                self.name,
                self._last + 1,
                sequence - 1,
            )
        self._last = sequence
        return Entry(str(sequence), written_ns // NS_PER_MS, msg.data)

    def done(self, entries: list[Entry]) -> None:
        return None

    def close(self) -> None:
        try:
            if self._consumer is not None:  # fire and forget: it would expire by itself anyway
                self._conn.send(pub(f"{API}.CONSUMER.DELETE.{self.name}.{self._consumer}", b""))
        except (OSError, NatsError):
            pass
        finally:
            self._conn.close()


class JetStreamBroker:
    kind = "nats"

    def __init__(self, url: str, options: BrokerOptions, batch_size: int = 100) -> None:
        parse_nats_url(url)  # a bad URL fails at configuration time, not in a thread
        self.url = url
        self.options = options
        self.batch_size = batch_size
        self.name = stream_name(options.stream)
        self.subject = SUBJECT_PREFIX + self.name
        self.max_age_ms = options.retention_ms or 0  # unused: every message carries its write time
        self._seen = SeenStream()

    def check_position(self, position: str) -> None:
        if position != NEW_ONLY and not (position.isascii() and position.isdigit()):
            raise ValueError(f"not a JetStream stream sequence: {position!r} (a number, or '$')")

    def _connect(self) -> NatsConnection:
        return NatsConnection(self.url, self.options.socket_timeout, name=f"kdk-sync {self.name}").connect()

    def _open_for_writing(self) -> NatsConnection:
        conn = self._connect()
        try:
            ensure_stream(conn, self.name, self.subject, self.options)
        except BaseException:
            conn.close()
            raise
        return conn

    def writer(self) -> JetStreamWriter:
        return JetStreamWriter(self._open_for_writing, self.subject, self.options.socket_timeout)

    def retire(self) -> None:
        """Nothing to drop: a reader's ephemeral consumer goes with its connection."""

    def reader(self) -> JetStreamReader:
        conn = self._connect()
        return JetStreamReader(conn, self.name, self.subject, self.options, self.batch_size, self._seen)
