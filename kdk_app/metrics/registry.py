"""The metrics of one app (README "Metrics") and what a scrape of them returns.

Every metric lives on one :class:`Metrics` per app, in its own registry: no module-level state.
Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` (set up by gunicorn.conf.py before the workers fork)
makes prometheus-client write each worker's values to files there, and a scrape adds up every
worker's; without it (``kdk serve``) this process's registry answers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .pending import FlushBeforeCollect, PendingCounts

logger = logging.getLogger(__name__)

# A bounded probe of a server this app uses: True when it answers in time.
HealthProbe = Callable[[], bool]
# Buckets of the sync bus's lag: from a few milliseconds on loopback to a minute of catch-up.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def multiprocess_dir() -> str | None:
    """Where the workers' values are written, when this process runs under several workers."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


class Metrics:
    """The metrics of one app, fed by the parts (see :mod:`kdk_app.metrics.part`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # The request path's counts wait here; registered first, so a scrape flushes them first.
        self.pending = PendingCounts()
        self.registry.register(FlushBeforeCollect(self.pending))
        # Servers probed when scraped, by the process that answers the scrape.
        self.probes: dict[str, HealthProbe] = {}
        r = self.registry
        self.http_requests = Counter(
            "kdk_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=r
        )
        self.http_seconds = Histogram(
            "kdk_http_request_duration_seconds", "HTTP request latency", ["route", "method"], registry=r
        )
        self.service_calls = Counter(
            "kdk_service_calls",
            "Service calls, by outcome (ok or the error's class name)",
            ["service", "method", "provider", "outcome"],
            registry=r,
        )
        self.service_seconds = Histogram(
            "kdk_service_call_duration_seconds",
            "Service call latency, hooks included",
            ["service", "method", "provider"],
            registry=r,
        )
        self.events = Counter("kdk_events", "Service events emitted here", ["service", "event"], registry=r)
        self.deliveries = Counter(
            "kdk_socket_deliveries",
            "Events handed to Socket.IO rooms: through the message queue, or to this process's sockets",
            ["mode"],
            registry=r,
        )
        self.connections = Gauge(
            "kdk_socket_connections", "Open Socket.IO connections", registry=r, multiprocess_mode="livesum"
        )
        self.sync = Counter(
            "kdk_sync_envelopes", "Sync bus envelopes, by what happened", ["kind"], registry=r
        )
        self.sync_lag = Histogram(
            "kdk_sync_lag_seconds",
            "From an event's creation on another instance to its dispatch here",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.sync_outbox = Gauge(
            "kdk_sync_outbox_size",
            "Events waiting to be sent to the sync broker",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.distribution = Counter(
            "kdk_distribution", "Distribution counters (calls, retries, refusals...)", ["kind"], registry=r
        )
        self.distribution_seconds = Histogram(
            "kdk_distribution_call_duration_seconds",
            "Latency of calls to services of other apps",
            ["service", "method", "outcome"],
            registry=r,
        )
        self.registry.register(DependencyGauges(self.probes))
        # The children of each label set, found once: labels() takes a lock and builds a key at
        # every call, a few µs each on the hot path. Bounded as the labels are.
        self._request_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._call_children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
        self._event_children: dict[tuple[str, str], Any] = {}

    def count_request(self, route: str, method: str, status: str, seconds: float | None) -> None:
        children = self._request_children.get((route, method, status))
        if children is None:
            children = (
                self.http_requests.labels(route, method, status),
                self.http_seconds.labels(route, method),
            )
            self._request_children[(route, method, status)] = children
        self.pending.inc(children[0])
        if seconds is not None:
            self.pending.observe(children[1], seconds)

    def count_call(self, service: str, method: str, provider: str, outcome: str, seconds: float) -> None:
        children = self._call_children.get((service, method, provider, outcome))
        if children is None:
            children = (
                self.service_calls.labels(service, method, provider, outcome),
                self.service_seconds.labels(service, method, provider),
            )
            self._call_children[(service, method, provider, outcome)] = children
        self.pending.inc(children[0])
        self.pending.observe(children[1], seconds)

    def count_event(self, service: str, event: str) -> None:
        child = self._event_children.get((service, event))
        if child is None:
            child = self._event_children[(service, event)] = self.events.labels(service, event)
        self.pending.inc(child)

    def scrape(self) -> bytes:
        """The text format of every metric: of every worker under gunicorn, else of this process."""
        directory = multiprocess_dir()
        if not directory:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        self.pending.flush()  # this worker's own; the others flush every second

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        registry.register(DependencyGauges(self.probes))
        return generate_latest(registry)


class DependencyGauges(Collector):
    """``kdk_dependency_up``: each server probed when scraped, within the probe's own bound."""

    def __init__(self, probes: dict[str, HealthProbe]) -> None:
        self.probes = probes

    def describe(self) -> list[Metric]:
        return []  # registering must not probe anything

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "kdk_dependency_up", "1 when the server answered a bounded probe", labels=["dependency"]
        )
        for name, probe in self.probes.items():
            try:
                value = 1.0 if probe() else 0.0
            except Exception:
                logger.debug("probe of %s failed", name, exc_info=True)
                value = 0.0
            up.add_metric([name], value)
        yield up
