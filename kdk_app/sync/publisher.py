"""The writing half of the bus: drains the outbox into the broker from its own thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..background import BackgroundThread, Backoff
from .brokers import Writer
from .link import LinkState, close_quietly
from .outbox import Outbox, Pending
from .stats import SyncStats

logger = logging.getLogger(__name__)

_IDLE_WAIT = 1.0  # s; a safety net, stop() wakes the thread at once


class Publisher:
    """Sends queued messages in batches, in order, sealing each at every attempt."""

    def __init__(
        self,
        open_writer: Callable[[], Writer],
        stats: SyncStats,
        *,
        outbox_size: int,
        batch_size: int = 100,
        backoff: tuple[float, float] = (0.1, 2.0),
        seal: Callable[[bytes], bytes],
        # Gets back the tokens given to submit(), whatever type the caller uses for them.
        on_sent: Callable[[list[Any]], None] | None = None,
    ) -> None:
        self._seal = seal
        self._on_sent = on_sent
        self.stats = stats
        self.batch_size = batch_size
        self.state = LinkState("publisher")
        self._open_writer = open_writer
        self._backoff = backoff
        self._outbox = Outbox(outbox_size)
        self._thread = BackgroundThread("kdk-sync-publisher", self._run, wake=self._outbox.wake)
        self._overflow_logged = False
        self._trim_error_logged = False

    @property
    def pending(self) -> int:
        return len(self._outbox)

    def submit(self, message: bytes, token: object = None) -> None:
        """Queue one encoded envelope; never touches the network. ``token`` (not None) goes to
        ``on_sent`` once the broker has the message."""
        dropped = self._outbox.put((message, token))
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
        backoff = Backoff(*self._backoff)
        writer: Writer | None = None
        try:
            while not stop.is_set():
                batch = self._outbox.take(self.batch_size, _IDLE_WAIT)
                if not batch:
                    continue
                if writer is None:
                    writer = self._open(batch)
                if writer is not None and self._send(writer, batch):
                    backoff.reset()
                    continue
                if writer is not None and self.state.up is False:
                    close_quietly(writer, "sync writer")  # reopened (reconnected) at the next attempt
                    writer = None
                stop.wait(backoff.next())
            if writer is not None or len(self._outbox):
                writer = writer or self._open([])
                if writer is not None:
                    self._flush(writer)
        finally:
            if writer is not None:
                close_quietly(writer, "sync writer")

    def _open(self, batch: list[Pending]) -> Writer | None:
        try:
            return self._open_writer()
        except Exception as exc:  # noqa: BLE001 - whatever it is, keep the batch and retry
            self._failed(batch, exc)
            return None

    def _flush(self, writer: Writer) -> None:
        while len(self._outbox):
            if not self._send(writer, self._outbox.take(self.batch_size, 0)):
                break
        if len(self._outbox):
            logger.warning("sync publisher stopped with %d event(s) unsent", len(self._outbox))

    def _send(self, writer: Writer, batch: list[Pending]) -> bool:
        # Sealed now, at every attempt: the signed time is the write time (see signed.py).
        try:
            results = writer.send([self._seal(message) for message, _token in batch])
        except Exception as exc:  # noqa: BLE001 - whatever it is, keep the batch and retry
            # Mostly connection-level failures: some entries may have been written anyway;
            # they are sent again, and receivers drop the copies by envelope id.
            return self._failed(batch, exc)
        self._warn_trim_once(writer)
        failed = [item for item, error in zip(batch, results, strict=True) if error is not None]
        self.stats.bump("published", len(batch) - len(failed))
        self._sent([item for item, error in zip(batch, results, strict=True) if error is None])
        if failed:
            return self._failed(failed, next(e for e in results if e is not None))
        self.state.ok()
        self._overflow_logged = False
        return True

    def _sent(self, items: list[Pending]) -> None:
        tokens = [token for _message, token in items if token is not None]
        if tokens and self._on_sent is not None:
            try:
                self._on_sent(tokens)
            except Exception:  # the publisher must outlive its callback
                logger.exception("sync publisher: on_sent failed")

    def _failed(self, batch: list[Pending], error: BaseException) -> bool:
        self.state.failed(error)
        self.stats.bump("publish_failures")
        dropped = self._outbox.restore(batch)
        if dropped:
            self._count_overflow(dropped)
        return False

    def _warn_trim_once(self, writer: Writer) -> None:
        error = getattr(writer, "trim_error", None)
        if error is not None and not self._trim_error_logged:
            self._trim_error_logged = True
            logger.warning("sync stream could not be trimmed: %s", error)

    def _count_overflow(self, dropped: int) -> None:
        self.stats.bump("dropped_overflow", dropped)
        if not self._overflow_logged:
            self._overflow_logged = True
            logger.warning(
                "sync outbox full (%d): dropping the oldest unsent events",
                self._outbox.maxsize,
            )
