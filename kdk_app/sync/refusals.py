"""Reporting refused stream entries without letting a flood of them flood the log."""

from __future__ import annotations

import logging
import time

from ..signing import Refused

logger = logging.getLogger(__name__)


class RefusalLog:
    """Logs a refused entry at most once per ``interval`` seconds, with how many were refused."""

    def __init__(self, stream: str, interval: float = 60.0) -> None:
        self.stream = stream
        self.interval = interval
        self._unreported = 0
        self._next_report = 0.0  # monotonic time

    def refused(self, entry_id: str, refused: Refused) -> None:
        self._unreported += 1
        now = time.monotonic()
        if now < self._next_report:
            return
        count, self._unreported = self._unreported, 0
        self._next_report = now + self.interval
        logger.warning(
            "sync: refused %d stream entr%s of %r since the last report (not signed with this "
            "bus's secret?); latest %s: %s",
            count,
            "y" if count == 1 else "ies",
            self.stream,
            entry_id,
            refused,
        )
