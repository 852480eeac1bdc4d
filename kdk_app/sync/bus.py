"""Cross-instance service events over a broker (what feathers-sync does).

Every local event is queued as an envelope and sent by a background publisher; a background
reader reads the broker and re-dispatches other instances' events locally with ``remote=True``,
so listeners hear them and sinks (sockets, this bus) leave them alone. Entries are signed with
a secret every instance shares; others are refused and counted. The broker is a Redis Stream,
RabbitMQ or NATS JetStream, by the URL's scheme (see :mod:`.brokers`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from pymongo.database import Database

from ..core.application import Application, ServiceEvent
from ..logs import REQUEST_ID
from ..signing import Refused
from .brokers import NEW_ONLY, BrokerOptions, Entry, open_broker
from .drainer import Drainer
from .durable import DurableStore
from .envelope import EnvelopeError, envelope_from_dict, make_envelope, synced_context
from .publisher import Publisher
from .reader import StreamReader
from .recent import RecentIds
from .refusals import RefusalLog
from .signed import StreamSigner
from .stats import SyncStats

logger = logging.getLogger(__name__)


def default_instance_id() -> str:
    # Host and pid for humans reading the stream; the random part keeps two buses of one
    # process (tests, several apps) apart.
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class EventSync:
    """Publishes this instance's service events and dispatches everyone else's.

    ``secret`` signs and verifies the entries: every instance on the stream needs the same one.
    ``start()`` registers the sink and starts both threads; ``stop()`` undoes it. A stopped
    bus can be started again: it resumes after the last entry it handled (or ``from_id``),
    and any events still in its outbox are sent then.
    """

    def __init__(
        self,
        app: Application,
        url: str,
        *,
        secret: bytes | str,
        stream: str = "kdk:events",
        retention_ms: int = 3_600_000,
        maxlen: int = 100_000,
        instance_id: str | None = None,
        # A stopping process waits for the reader's read to end: short reads make stops quick.
        block_ms: int = 250,
        start_id: str | None = None,
        outbox_size: int = 10_000,
        socket_timeout: float = 1.0,
        dedupe_size: int = 10_000,
        backoff: tuple[float, float] = (0.1, 2.0),
        max_skew: float = 60.0,
        refusal_log_interval: float = 60.0,
        durable: Callable[[], Database] | None = None,
        orphan_after: float = 5.0,
    ) -> None:
        self.instance_id = instance_id or default_instance_id()
        self.broker = open_broker(
            url,
            BrokerOptions(
                stream=stream,
                socket_timeout=socket_timeout,
                block_ms=block_ms,
                retention_ms=retention_ms,
                maxlen=maxlen,
                instance_id=self.instance_id,
            ),
        )
        if start_id is not None:
            self.broker.check_position(start_id)  # fail at configuration time, not in the thread
        self.app = app
        self.url = url
        self.stream = stream
        self.start_id = start_id
        self.stats = SyncStats()
        self._recent = RecentIds(dedupe_size)
        self._signer = StreamSigner(
            secret.encode() if isinstance(secret, str) else secret,
            stream,
            max_skew,
            max_age_ms=self.broker.max_age_ms,
        )
        self._refusals = RefusalLog(stream, refusal_log_interval)
        self._lock = threading.Lock()
        self._running = False
        # With ``durable`` (a MongoDB database), events are saved before the call returns and
        # survive this process; see durable.py.
        self._store = (
            DurableStore(
                durable, self.instance_id, stream=stream, orphan_after=orphan_after, timeout=socket_timeout
            )
            if durable is not None
            else None
        )
        self._publisher = Publisher(
            self.broker.writer,
            self.stats,
            outbox_size=outbox_size,
            backoff=backoff,
            seal=self._signer.seal,
            on_sent=self._store.forget if self._store is not None else None,
        )
        self._drainer = (
            Drainer(
                self._store,
                self.broker.writer,
                self._signer.seal,
                self.stats,
                interval=min(1.0, orphan_after / 4),
            )
            if self._store is not None
            else None
        )
        self._reader = StreamReader(self.broker.reader, self._handle_entry, self.stats, backoff=backoff)
        # The blocking read must outlast its own block time before the socket gives up.
        read_timeout = block_ms / 1000 + socket_timeout
        self._stop_timeout = read_timeout + 2 * socket_timeout + 1.0

    # --- lifecycle -----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    @property
    def last_id(self) -> str | None:
        """Id of the last stream entry handled (or the pinned start position)."""
        return self._reader.last_id

    @property
    def pending(self) -> int:
        """Events queued locally and not yet written to the broker."""
        return self._publisher.pending

    def start(self, from_id: str | None = None) -> EventSync:
        """Start publishing and reading; read after ``from_id``, else resume, else new only."""
        if from_id is not None:
            self.broker.check_position(from_id)
        with self._lock:
            if self._running:
                raise RuntimeError("EventSync is already running")
            position = from_id or self._reader.last_id or self.start_id or NEW_ONLY
            self._publisher.start()
            self._reader.start(position)
            if self._drainer is not None:
                self._drainer.start()
            if self._sink not in self.app.event_sinks:
                self.app.event_sinks.append(self._sink)
            self._running = True
        logger.info("sync bus %s on stream %r from %s", self.instance_id, self.stream, position)
        return self

    def stop(self) -> None:
        """Stop both threads (bounded wait); unsent events stay queued for a later start."""
        with self._lock:
            if not self._running:
                return
            self._running = False
            if self._sink in self.app.event_sinks:
                self.app.event_sinks.remove(self._sink)
            self._reader.stop(self._stop_timeout)
            self._publisher.stop(self._stop_timeout)
            if self._drainer is not None:
                self._drainer.stop(self._stop_timeout)
                self._retire()
        logger.info("sync bus %s stopped at %s", self.instance_id, self.last_id)

    def close(self) -> None:
        """Stop for good (the app's teardown): also drop what the broker keeps for this bus alone,
        such as its RabbitMQ queue. A closed bus can still be started again, on a fresh queue."""
        self.stop()
        try:
            self.broker.retire()
        except Exception as exc:  # noqa: BLE001 - then the broker expires it after retention_ms
            logger.info("sync: could not drop the %s reader's state: %s", self.broker.kind, exc)

    def _retire(self) -> None:
        if self._store is None or self._publisher.pending:
            return  # unsent events stay saved: a live instance sends them once this one is stale
        try:
            self._store.retire()
        except Exception as exc:  # noqa: BLE001 - then others find it stale, and nothing to send
            logger.debug("sync: could not retire %s: %s", self.instance_id, exc)

    @property
    def durable(self) -> bool:
        """Events are saved in MongoDB until the broker has them."""
        return self._store is not None

    def is_connected(self) -> bool:
        """Cheap health flag: running, the reader's last command worked, the publisher's too."""
        return self._running and self._reader.state.up is True and self._publisher.state.up is not False

    # --- publishing ----------------------------------------------------------------------
    def _sink(self, event: ServiceEvent) -> None:
        if event.remote or event.meta.get("distributed"):
            # From the bus (its origin published it already), or an event of a remote service
            # that distribution delivered here: its provider's own sync bus carries it.
            return
        try:
            envelope = make_envelope(event.path, event.event, event.payload, event.context, self.instance_id)
            # Bytes here too: a lone surrogate fails this event, not the publisher's batches.
            message = envelope.encode().encode()
        except (TypeError, ValueError):
            # Encoded here, on the caller's thread, so the envelope is a snapshot of the data.
            self.stats.bump("publish_failures")
            logger.exception("sync: cannot encode %s %s", event.path, event.event)
            return
        token = None
        if self._store is not None:
            token = self._store.save(message)
            self.stats.bump("saved" if token is not None else "unsaved")
        self._publisher.submit(message, token)

    # --- receiving -----------------------------------------------------------------------
    def _handle_entry(self, entry: Entry) -> None:
        entry_id = entry.id
        try:
            body = self._signer.open(entry)
        except Refused as refused:
            # Written by someone without the secret (or replayed): never dispatched.
            self.stats.bump("forged")
            self._refusals.refused(entry_id, refused)
            return
        try:
            envelope = envelope_from_dict(body)
        except EnvelopeError as exc:
            self.stats.bump("invalid")
            logger.warning("sync: skipping invalid entry %s: %s", entry_id, exc)
            return
        if envelope.origin == self.instance_id:
            self.stats.bump("dropped_own")
            return
        if not self._recent.add(envelope.id):
            self.stats.bump("dropped_duplicate")
            return
        service = self.app.services.get(envelope.path)
        if service is None or service.is_remote:
            # Remote services get their events from distribution, once; not a second time here.
            self.stats.bump("dropped_unknown_path")
            logger.debug("sync: no service at %r for %s", envelope.path, entry_id)
            return
        self.stats.bump("received")
        self.stats.observe_lag(max(0.0, time.time() - envelope.ts / 1000))  # clocks may differ a little
        # The origin's request id, so this instance's log lines about the event carry it.
        token = REQUEST_ID.set(envelope.context.get("request_id"))
        try:
            self.app.dispatch_event(
                ServiceEvent(
                    envelope.path,
                    envelope.event,
                    envelope.data,
                    synced_context(envelope),
                    remote=True,
                )
            )
        finally:
            REQUEST_ID.reset(token)
