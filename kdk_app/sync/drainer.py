"""The durable outbox's background thread: beats for this bus, and sends what dead owners left."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..background import BackgroundThread, Backoff
from .brokers import Writer
from .durable import DurableStore
from .link import close_quietly
from .stats import SyncStats

logger = logging.getLogger(__name__)


class Drainer:
    """Every ``interval`` s: beat, then claim each orphaned owner and send its envelopes in order."""

    def __init__(
        self,
        store: DurableStore,
        open_writer: Callable[[], Writer],
        seal: Callable[[bytes], bytes],
        stats: SyncStats,
        *,
        interval: float = 1.0,
        batch_size: int = 100,
    ) -> None:
        self.store = store
        self.stats = stats
        self.interval = interval
        self.batch_size = batch_size
        self._open_writer = open_writer
        self._seal = seal
        self._thread = BackgroundThread("kdk-sync-drainer", self._run)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        if not self._thread.stop(timeout):
            logger.warning("sync drainer did not stop within %gs", timeout)

    def _run(self, stop: threading.Event) -> None:
        writer: Writer | None = None
        backoff = Backoff(self.interval, 8 * self.interval)
        delay = 0.0  # the first round at once: a restarted instance drains without waiting
        try:
            while not stop.wait(delay):
                try:
                    self.store.beat()
                    for origin in self.store.orphans():
                        if stop.is_set():
                            break
                        writer = self._drain(origin, writer)
                    self._recovered()
                    delay = self.interval
                    backoff.reset()
                except Exception as exc:  # noqa: BLE001 - MongoDB or the broker: try again later
                    self._failed(exc)
                    if writer is not None:
                        close_quietly(writer, "drainer's writer")
                        writer = None
                    delay = backoff.next()
        finally:
            if writer is not None:
                close_quietly(writer, "drainer's writer")

    def _drain(self, origin: str, writer: Writer | None) -> Writer | None:
        if not self.store.claim(origin):
            return writer
        logger.info("sync: sending the events that %s left unsent", origin)
        while True:
            saved = self.store.left_by(origin, self.batch_size)
            if not saved:
                self.store.drained(origin, [])
                return writer
            writer = writer or self._open_writer()
            results = writer.send([self._seal(item.message) for item in saved])
            # Only the unbroken prefix counts as sent, so the order holds at the next attempt.
            sent = []
            for item, error in zip(saved, results, strict=True):
                if error is not None:
                    break
                sent.append(item.id)
            self.store.drained(origin, sent)
            self.stats.bump("recovered", len(sent))
            if len(sent) < len(saved):
                raise next(e for e in results if e is not None)
            self.store.claim(origin)  # keep the claim while a long backlog drains

    def _failed(self, error: BaseException) -> None:
        if not self._failing:
            logger.warning("sync drainer: MongoDB or the broker unavailable, retrying: %s", error)
        self._failing = True

    def _recovered(self) -> None:
        if self._failing:
            logger.info("sync drainer: back to normal")
        self._failing = False
