"""Counts of the request path, held in plain dicts until a flush folds them into the metrics.

Each prometheus-client increment takes a lock, and under gunicorn (multiprocess mode) also
writes to the worker's memory-mapped file: about 20 µs of every request went to the four
updates a request makes (two counters, two histograms). Here a request adds to a dict entry
(well under a microsecond) and :meth:`PendingCounts.flush` applies the sums: before every scrape
of this process, and every :data:`FLUSH_INTERVAL_S` under several workers, where another
process may answer the scrape (see :class:`FlushEverySecond`).

The workers serve on gevent (greenlets in one OS thread): nothing here yields, so an update
and a flush never interleave. Under OS threads a count may be lost in a race, never an error.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from ..background import BackgroundThread

logger = logging.getLogger(__name__)

# How stale another worker's counts may be in a scrape under gunicorn.
FLUSH_INTERVAL_S = 1.0


def _sums_buckets(child: Any) -> bool:
    # prometheus-client's histogram child keeps one value per bucket and one for the sum; those
    # are what a flush adds to. A version without them is observed directly (slower, still right).
    return all(hasattr(child, name) for name in ("_upper_bounds", "_buckets", "_sum"))


class PendingCounts:
    """Counter increments and histogram observations not yet applied to their metric children."""

    def __init__(self) -> None:
        self._increments: dict[Any, float] = {}  # counter child -> amount
        # histogram child -> (its buckets' upper bounds, observations per bucket then their sum)
        self._observations: dict[Any, tuple[list[float], list[float]]] = {}

    def inc(self, child: Any, amount: float = 1.0) -> None:
        increments = self._increments
        increments[child] = increments.get(child, 0.0) + amount

    def observe(self, child: Any, value: float) -> None:
        entry = self._observations.get(child)
        if entry is None:
            if not _sums_buckets(child):
                child.observe(value)
                return
            bounds = child._upper_bounds
            entry = self._observations[child] = (bounds, [0.0] * (len(bounds) + 1))
        bounds, pending = entry
        # The first bucket whose bound is at least the value, as Histogram.observe picks it.
        pending[bisect_left(bounds, value)] += 1
        pending[-1] += value

    @property
    def empty(self) -> bool:
        return not self._increments and not self._observations

    def flush(self) -> None:
        """Apply everything pending to the metric children."""
        increments, self._increments = self._increments, {}
        observations, self._observations = self._observations, {}
        for child, amount in list(increments.items()):
            child.inc(amount)
        for child, (_bounds, pending) in list(observations.items()):
            for bucket, count in zip(child._buckets, pending[:-1], strict=True):
                if count:
                    bucket.inc(count)
            child._sum.inc(pending[-1])


class FlushBeforeCollect(Collector):
    """Registered first in a registry: any scrape of it (``/metrics``, ``start_http_server``)
    flushes the pending counts before the metrics are read."""

    def __init__(self, pending: PendingCounts) -> None:
        self.pending = pending

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        self.pending.flush()
        return iter(())


class FlushEverySecond:
    """Flushes on a background thread every :data:`FLUSH_INTERVAL_S`, and once more on stop:
    under gunicorn another worker, or the master, may answer the scrape."""

    def __init__(self, pending: PendingCounts) -> None:
        self.pending = pending
        self._thread = BackgroundThread("kdk-metrics-flush", self._run)

    def start(self) -> None:
        if not self._thread.running:
            self._thread.start()

    def stop(self) -> None:
        self._thread.stop(timeout=2.0)
        self.pending.flush()

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(FLUSH_INTERVAL_S):
            if not self.pending.empty:
                try:
                    self.pending.flush()
                except Exception:  # a full disk under the metrics directory: log, keep counting
                    logger.exception("flushing metrics failed")
