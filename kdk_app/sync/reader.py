"""The reading half of the bus: XREAD BLOCK from the last id it handled, in its own thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import redis

from ..background import BackgroundThread, Backoff
from .link import LinkState
from .position import NEW_ONLY, as_text, resume_position
from .stats import SyncStats

logger = logging.getLogger(__name__)

EntryHandler = Callable[[str, dict[bytes, bytes]], None]


class StreamReader:
    """Hands every new stream entry to ``handle``, in order, across Redis outages.

    ``last_id`` is the id of the last entry handled (or the pinned start position); a
    reconnection, or a later ``start()``, reads on from there.
    """

    def __init__(
        self,
        client_factory: Callable[[], redis.Redis],
        stream: str,
        handle: EntryHandler,
        stats: SyncStats,
        *,
        block_ms: int = 1000,
        batch_size: int = 100,
        backoff: tuple[float, float] = (0.1, 2.0),
    ) -> None:
        self.stream = stream
        self.stats = stats
        self.block_ms = block_ms
        self.batch_size = batch_size
        self.state = LinkState("reader")
        self.last_id: str | None = None
        self._client_factory = client_factory
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
        client = self._client_factory()
        backoff = Backoff(*self._backoff)
        positioned = False
        try:
            while not stop.is_set():
                try:
                    if not positioned:
                        self.last_id = resume_position(client, self.stream, self.last_id or NEW_ONLY)
                        positioned = True
                        # Up as soon as Redis answers, not after a whole BLOCK period.
                        if self.state.ok():
                            self.stats.bump("reconnects")
                    response = client.xread(
                        {self.stream: self.last_id},
                        count=self.batch_size,
                        block=self.block_ms,
                    )
                except Exception as exc:  # noqa: BLE001 - any failure: reconnect, resume
                    positioned = False
                    self.state.failed(exc)
                    stop.wait(backoff.next())
                    continue
                backoff.reset()
                self._handle_all(response, stop)
        finally:
            client.close()

    def _handle_all(self, response: Any, stop: threading.Event) -> None:
        # RESP2 answers [[stream, entries]], RESP3 {stream: entries}.
        streams = response.items() if isinstance(response, dict) else response or []
        for _name, entries in streams:
            for entry_id, fields in entries:
                if stop.is_set():
                    return
                try:
                    self._handle(as_text(entry_id), fields or {})
                except Exception:  # the reader must outlive any bad entry or listener
                    logger.exception("sync reader: entry %s failed", as_text(entry_id))
                self.last_id = as_text(entry_id)
