"""The writing half of the bus: drains the outbox into the stream from its own thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from ..background import BackgroundThread, Backoff
from .envelope import FIELD
from .link import LinkState
from .outbox import Outbox
from .stats import SyncStats

logger = logging.getLogger(__name__)

TRIM_INTERVAL = 1.0  # seconds between two trims of the stream

_IDLE_WAIT = 1.0  # s; a safety net, stop() wakes the thread at once


class Publisher:
    """XADDs queued messages in batches, trimming the stream by age and by length."""

    def __init__(
        self,
        client_factory: Callable[[], redis.Redis],
        stream: str,
        stats: SyncStats,
        *,
        maxlen: int | None,
        retention_ms: int | None,
        outbox_size: int,
        batch_size: int = 100,
        backoff: tuple[float, float] = (0.1, 2.0),
        seal: Callable[[bytes], bytes],
    ) -> None:
        self.stream = stream
        self._seal = seal
        self.stats = stats
        self.maxlen = maxlen
        self.retention_ms = retention_ms
        self.batch_size = batch_size
        self.state = LinkState("publisher")
        self._client_factory = client_factory
        self._backoff = backoff
        self._outbox = Outbox(outbox_size)
        self._thread = BackgroundThread("kdk-sync-publisher", self._run, wake=self._outbox.wake)
        self._overflow_logged = False
        self._trim_error_logged = False
        self._next_trim = 0.0  # monotonic time of the next trim

    @property
    def pending(self) -> int:
        return len(self._outbox)

    def submit(self, message: bytes) -> None:
        """Queue one encoded envelope; never touches the network."""
        dropped = self._outbox.put(message)
        if dropped:
            self._count_overflow(dropped)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop after one last attempt to send what is queued (kept for a later start)."""
        if not self._thread.stop(timeout):
            logger.warning("sync publisher did not stop within %gs", timeout)
        self.state.reset()

    def _run(self, stop: threading.Event) -> None:
        client = self._client_factory()
        backoff = Backoff(*self._backoff)
        try:
            while not stop.is_set():
                batch = self._outbox.take(self.batch_size, _IDLE_WAIT)
                if batch and self._send(client, batch):
                    backoff.reset()
                elif batch:
                    stop.wait(backoff.next())
            self._flush(client)
        finally:
            client.close()

    def _flush(self, client: redis.Redis) -> None:
        while len(self._outbox):
            if not self._send(client, self._outbox.take(self.batch_size, 0)):
                break
        if len(self._outbox):
            logger.warning("sync publisher stopped with %d event(s) unsent", len(self._outbox))

    def _send(self, client: redis.Redis, batch: list[bytes]) -> bool:
        pipe = client.pipeline(transaction=False)
        for message in batch:
            # Sealed now, at every attempt: the signed time is the write time (see signed.py).
            pipe.xadd(self.stream, {FIELD: self._seal(message)})
        # Trimming is housekeeping: once a second is plenty, not with every batch.
        if time.monotonic() >= self._next_trim:
            self._next_trim = time.monotonic() + TRIM_INTERVAL
            if self.retention_ms:
                cutoff = int(time.time() * 1000) - self.retention_ms
                pipe.xtrim(self.stream, minid=f"{max(cutoff, 0)}-0", approximate=True)
            if self.maxlen:
                pipe.xtrim(self.stream, maxlen=self.maxlen, approximate=True)
        try:
            results = pipe.execute(raise_on_error=False)
        except Exception as exc:  # noqa: BLE001 - whatever it is, keep the batch and retry
            # Mostly connection-level failures: some entries may have been written anyway;
            # they are sent again, and receivers drop the copies by envelope id.
            return self._failed(batch, exc)
        failed = [m for m, r in zip(batch, results, strict=False) if isinstance(r, Exception)]
        self._check_trims(results[len(batch) :])
        self.stats.bump("published", len(batch) - len(failed))
        if failed:
            error = next(r for r in results if isinstance(r, Exception))
            return self._failed(failed, error)
        self.state.ok()
        self._overflow_logged = False
        return True

    def _failed(self, batch: list[bytes], error: BaseException) -> bool:
        self.state.failed(error)
        self.stats.bump("publish_failures")
        dropped = self._outbox.restore(batch)
        if dropped:
            self._count_overflow(dropped)
        return False

    def _check_trims(self, results: list[object]) -> None:
        # Trimming is housekeeping: a failure (e.g. MINID before Redis 6.2) must not make us
        # re-send entries that were written.
        errors = [r for r in results if isinstance(r, Exception)]
        if errors and not self._trim_error_logged:
            self._trim_error_logged = True
            logger.warning("sync stream %r could not be trimmed: %s", self.stream, errors[0])

    def _count_overflow(self, dropped: int) -> None:
        self.stats.bump("dropped_overflow", dropped)
        if not self._overflow_logged:
            self._overflow_logged = True
            logger.warning(
                "sync outbox full (%d): dropping the oldest unsent events",
                self._outbox.maxsize,
            )
