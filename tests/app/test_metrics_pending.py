"""The request path's pending counts (kdk_app/metrics/pending.py): once flushed, prometheus-client
reports exactly what direct updates would have; a scrape flushes first; under several workers a
background flush runs every second and once more on stop. Real prometheus-client registries."""

from __future__ import annotations

from typing import Any

from clients import wait_until
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from kdk_app.metrics.pending import FLUSH_INTERVAL_S, FlushBeforeCollect, FlushEverySecond, PendingCounts

# On bounds, between them, below the first and above the last finite one.
VALUES = [0.0, 0.005, 0.0051, 0.1, 0.3, 2.5, 7.0, 10.0, 11.0, 1e9]


def metrics(registry: CollectorRegistry) -> tuple[Any, Any]:
    counter = Counter("calls", "c", ["route"], registry=registry)
    histogram = Histogram("seconds", "h", ["route"], registry=registry)
    return counter.labels("/a"), histogram.labels("/a")


def scrape_without_created(registry: CollectorRegistry) -> list[str]:
    # The _created samples hold each registry's creation time: the only lines that differ.
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_flushed_counts_scrape_exactly_as_direct_updates_do() -> None:
    direct, buffered = CollectorRegistry(), CollectorRegistry()
    direct_counter, direct_histogram = metrics(direct)
    counter, histogram = metrics(buffered)
    pending = PendingCounts()
    for value in VALUES:
        direct_counter.inc()
        direct_histogram.observe(value)
        pending.inc(counter)
        pending.observe(histogram, value)
    direct_counter.inc(2.5)
    pending.inc(counter, 2.5)

    assert scrape_without_created(buffered) != scrape_without_created(direct)  # nothing applied yet
    pending.flush()
    assert pending.empty
    assert scrape_without_created(buffered) == scrape_without_created(direct)


def test_a_scrape_of_the_registry_flushes_the_pending_counts_first() -> None:
    registry = CollectorRegistry()
    pending = PendingCounts()
    registry.register(FlushBeforeCollect(pending))
    counter, histogram = metrics(registry)
    pending.inc(counter)
    pending.observe(histogram, 0.2)

    text = generate_latest(registry).decode()
    assert 'calls_total{route="/a"} 1.0' in text
    assert 'seconds_count{route="/a"} 1.0' in text
    assert pending.empty


def test_a_histogram_without_bucket_values_is_observed_at_once() -> None:
    observed: list[float] = []

    class PlainHistogram:  # a prometheus-client that keeps its buckets some other way
        def observe(self, value: float) -> None:
            observed.append(value)

    pending = PendingCounts()
    pending.observe(PlainHistogram(), 0.5)
    assert observed == [0.5]
    assert pending.empty


def test_the_background_flush_runs_every_second_and_once_more_on_stop() -> None:
    registry = CollectorRegistry()
    counter, _histogram = metrics(registry)
    pending = PendingCounts()
    flusher = FlushEverySecond(pending)
    flusher.start()
    try:
        pending.inc(counter)
        assert wait_until(lambda: counter._value.get() == 1.0, timeout=FLUSH_INTERVAL_S * 3)
        pending.inc(counter, 4)
    finally:
        flusher.stop()
    assert counter._value.get() == 5.0
