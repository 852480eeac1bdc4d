"""The metrics part: feeds :class:`Metrics` from every layer and serves ``/metrics``.

It is installed after the layers it counts (REST, real time, sync, distribution, health). In
production ``/metrics`` is not public (``metrics.public`` is false there): it needs
``metrics.token`` as a bearer token, or is served on an address of its own (``metrics.bind``).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, request

from ..channels import ChannelEmitter
from ..core import Application
from ..core.application import ServiceEvent
from ..core.errors import NotAuthenticated
from ..redis_client import redis_answers
from ..transports.rest import json_response
from .pending import FlushEverySecond
from .registry import Metrics, multiprocess_dir

logger = logging.getLogger(__name__)

PLACEHOLDER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")  # a Flask rule's <converter:name>
UNMATCHED = "<unmatched>"  # the route label of every path no rule matched: bounded cardinality
ROUTE = "/metrics"
# The classic text format, which every Prometheus reads (prometheus-client 0.22+ names 1.0.0 its
# latest; our names need none of its escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    raw = settings.get("metrics") or {}
    return {
        "enabled": bool(raw.get("enabled", True)),
        "token": raw.get("token") or None,
        "bind": raw.get("bind") or None,
        "public": bool(raw.get("public", True)),
    }


def install_metrics(flask_app: Flask, kdk: Application, settings: Mapping[str, Any]) -> None:
    options = metrics_settings(settings)
    if not options["enabled"]:
        return
    metrics = Metrics()
    flask_app.extensions["kdk_metrics"] = metrics
    _count_calls_and_events(kdk, metrics)
    _count_deliveries(kdk, metrics)
    _watch_sync(flask_app, metrics)
    _watch_distribution(kdk, metrics)
    _probe_servers(flask_app, metrics, settings)
    _count_requests(flask_app, kdk, metrics)
    _flush_for_other_processes(kdk, metrics)
    if options["bind"]:
        _serve_on_own_address(kdk, metrics, options["bind"])
    elif options["token"] or options["public"]:
        _serve_route(flask_app, metrics, options["token"])
    else:
        logger.warning("/metrics not served: set metrics.token or metrics.bind (it is not public here)")


def _flush_for_other_processes(kdk: Application, metrics: Metrics) -> None:
    """Under several workers another process may answer the scrape: each serving worker folds
    its pending counts into its metrics file every second, and once more when it stops."""
    if not multiprocess_dir():
        return  # every scrape is this process's own, and flushes first
    flusher = FlushEverySecond(metrics.pending)
    kdk.on_start(flusher.start)
    kdk.on("teardown", lambda _app: flusher.stop())


def _count_calls_and_events(kdk: Application, metrics: Metrics) -> None:
    def observe_call(path: str, method: str, provider: str, outcome: str, seconds: float) -> None:
        service = path or "/"
        metrics.count_call(service, method, provider, outcome, seconds)
        called = kdk.services.get(path)
        if called is not None and called.is_remote:
            metrics.distribution_seconds.labels(service, method, outcome).observe(seconds)

    def observe_event(event: ServiceEvent) -> None:
        if not event.remote:  # counted where it happened, once
            metrics.count_event(event.path or "/", event.event)

    kdk.call_observers.append(observe_call)
    kdk.event_sinks.append(observe_event)
    kdk.on("connection", lambda connection: metrics.connections.inc())
    kdk.on("disconnect", lambda connection: metrics.connections.dec())


def _count_deliveries(kdk: Application, metrics: Metrics) -> None:
    channels = kdk.channels
    if channels is None or not channels.emitters:
        return  # nothing is emitted: publishing stays skipped
    queued, local = metrics.deliveries.labels("queue"), metrics.deliveries.labels("local")
    pending = metrics.pending
    channels.emitters.append(
        ChannelEmitter(
            lambda name, payload, rooms: pending.inc(queued), lambda name, payload, rooms: pending.inc(local)
        )
    )


def _watch_sync(flask_app: Flask, metrics: Metrics) -> None:
    bus = flask_app.extensions.get("kdk_sync")
    if bus is None:
        return

    def bumped(name: str, amount: int) -> None:
        metrics.sync.labels(name).inc(amount)
        metrics.sync_outbox.set(bus.pending)  # each worker's own, refreshed as its bus works

    bus.stats.observers.append(bumped)
    bus.stats.lag_observers.append(metrics.sync_lag.observe)


def _watch_distribution(kdk: Application, metrics: Metrics) -> None:
    if kdk.distribution is not None:
        kdk.distribution.stats.observers.append(
            lambda name, amount: metrics.distribution.labels(name).inc(amount)
        )


def _probe_servers(flask_app: Flask, metrics: Metrics, settings: Mapping[str, Any]) -> None:
    timeout_ms = int((settings.get("healthcheck") or {}).get("timeout_ms", 1000))
    mongo = flask_app.extensions.get("kdk_mongo")
    if mongo is not None:
        metrics.probes["mongodb"] = lambda: bool(mongo.health_check(timeout_ms)[0])
    redis_url = (settings.get("redis") or {}).get("url")
    if redis_url:
        metrics.probes["redis"] = lambda: redis_answers(redis_url, timeout_ms)


def _count_requests(flask_app: Flask, kdk: Application, metrics: Metrics) -> None:
    templates: dict[str, str] = {}  # each rule's label, by rule

    @flask_app.before_request
    def _started() -> None:
        g.kdk_metrics_started = time.perf_counter()

    @flask_app.after_request
    def _count(response: Response) -> Response:
        started = g.pop("kdk_metrics_started", None)
        route = route_label(kdk, templates)
        if route != ROUTE:
            seconds = time.perf_counter() - started if started is not None else None
            metrics.count_request(route, request.method, str(response.status_code), seconds)
        return response


def route_label(kdk: Application, templates: dict[str, str]) -> str:
    """The request's route in Feathers' notation (``/messages/:id``): one label per route, never
    per path. Services mounted after start (remote ones) answer through the catch-all route, and
    are named by the service they resolve to."""
    rule = request.url_rule
    if rule is None:
        return UNMATCHED
    if rule.endpoint == "rest_dynamic":
        rest = str((request.view_args or {}).get("rest", ""))
        prefix = rule.rule[: -len("<path:rest>")].rstrip("/")
        found = kdk.lookup(rest)
        if found is not None:
            return f"{prefix}/{found[0].path}"
        parent = kdk.lookup(rest.rstrip("/").rpartition("/")[0])
        return f"{prefix}/{parent[0].path}/:id" if parent is not None else UNMATCHED
    label = templates.get(rule.rule)
    if label is None:
        template = PLACEHOLDER.sub(lambda match: ":" + match.group(1).lstrip("_"), rule.rule)
        label = templates[rule.rule] = template.rstrip("/") or "/"
    return label


def _serve_route(flask_app: Flask, metrics: Metrics, token: str | None) -> None:
    def serve_metrics() -> Response:
        if token and not _bearer_matches(token):
            response = json_response(NotAuthenticated("A valid metrics token is required").to_json(), 401)
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return Response(metrics.scrape(), content_type=CONTENT_TYPE)

    flask_app.add_url_rule(ROUTE, "kdk_metrics", serve_metrics, methods=["GET"])


def _bearer_matches(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _serve_on_own_address(kdk: Application, metrics: Metrics, address: str) -> None:
    if multiprocess_dir():
        return  # under gunicorn the master serves every worker's metrics there (gunicorn.conf.py)

    def start() -> None:  # a serving process only (kdk serve), never a CLI command
        from prometheus_client import start_http_server

        host, _, port = str(address).rpartition(":")
        server, _thread = start_http_server(int(port), addr=host or "0.0.0.0", registry=metrics.registry)
        kdk.on("teardown", lambda _app: server.shutdown())
        logger.info("metrics served on %s", address)

    kdk.on_start(start)
