"""The reading half of the bus: reads the broker from the last entry it handled, in its own thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..background import BackgroundThread, Backoff
from ..turns import take_turns
from .brokers import NEW_ONLY, Entry, Reader
from .link import LinkState, close_quietly
from .stats import SyncStats

logger = logging.getLogger(__name__)

EntryHandler = Callable[[Entry], None]


class StreamReader:
    """Hands every new entry to ``handle``, in order, across broker outages.

    ``last_id`` is the position of the last entry handled (or the pinned start position); a
    reconnection, or a later ``start()``, reads on from there.
    """

    def __init__(
        self,
        open_reader: Callable[[], Reader],
        handle: EntryHandler,
        stats: SyncStats,
        *,
        backoff: tuple[float, float] = (0.1, 2.0),
    ) -> None:
        self.stats = stats
        self.state = LinkState("reader")
        self.last_id: str | None = None
        self._open_reader = open_reader
        self._handle = handle
        self._backoff = backoff
        self._thread = BackgroundThread("kdk-sync-reader", self._run)

    def start(self, position: str = NEW_ONLY) -> None:
        self.last_id = position
        self._thread.start()

    def stop(self, timeout: float) -> None:
        if not self._thread.stop(timeout):
            logger.warning("sync reader did not stop within %gs", timeout)
        self.state.reset()

    def _run(self, stop: threading.Event) -> None:
        backoff = Backoff(*self._backoff)
        reader: Reader | None = None
        try:
            while not stop.is_set():
                try:
                    if reader is None:
                        reader = self._open_reader()
                        self.last_id = reader.resume(self.last_id or NEW_ONLY)
                        # Up as soon as the broker answers, not after a whole block period.
                        if self.state.ok():
                            self.stats.bump("reconnects")
                    entries = reader.read()
                except Exception as exc:  # noqa: BLE001 - any failure: reconnect, resume
                    self.state.failed(exc)
                    if reader is not None:
                        close_quietly(reader, "sync reader")
                        reader = None
                    stop.wait(backoff.next())
                    continue
                backoff.reset()
                handled = self._handle_all(entries, stop)
                try:
                    reader.done(handled)
                except Exception as exc:  # noqa: BLE001 - unacknowledged entries come again
                    self.state.failed(exc)
                    close_quietly(reader, "sync reader")
                    reader = None
        finally:
            if reader is not None:
                close_quietly(reader, "sync reader")

    def _handle_all(self, entries: list[Entry], stop: threading.Event) -> list[Entry]:
        handled = []
        for entry in entries:
            if stop.is_set():
                break
            try:
                self._handle(entry)
            except Exception:  # the reader must outlive any bad entry or listener
                logger.exception("sync reader: entry %s failed", entry.id)
            self.last_id = entry.id
            handled.append(entry)
            # A batch is up to a few hundred entries: let the worker's requests run between two
            # (one greenlet under gevent; measured +10 % creates/s with 2 workers on one stream).
            take_turns()
        return handled
