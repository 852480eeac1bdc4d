"""``GET /readyz``: can this instance serve its traffic now (MongoDB, Redis, the sync bus)?

Each probe runs in its own thread (a greenlet under gevent), all at once, and the answer waits
for them at most ``healthcheck.timeout_ms`` in all: a probe still running then (a hung server
whose client ignores its own timeout) counts as failed, and its thread ends on its own bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response

from .database import MongoProvider
from .health import add_get_route
from .redis_client import redis_answers
from .transports.rest import json_response

logger = logging.getLogger(__name__)

DEFAULT_OUTBOX_SIZE = 10_000  # EventSync's own default for sync.outbox_size
# A probe: its flag and the keys it adds to its check in the answer.
Probe = Callable[[], tuple[bool, Mapping[str, Any]]]


def run_probes(probes: Mapping[str, Probe], bound_s: float) -> dict[str, dict[str, Any]]:
    """Every probe's ``{"ok": bool, "ms": int, ...}``, within ``bound_s`` for all of them together."""
    results: dict[str, dict[str, Any]] = {}
    started = time.monotonic()

    def run(name: str, probe: Probe) -> None:
        try:
            ok, extra = probe()
            check = {"ok": bool(ok), **extra}
        except Exception as exc:  # noqa: BLE001 - a failing probe is an unready check, not a 500
            logger.info("readiness probe %s failed: %s", name, exc)
            check = {"ok": False, "error": str(exc) or type(exc).__name__}
        check["ms"] = round((time.monotonic() - started) * 1000)
        results[name] = check

    threads = [
        threading.Thread(target=run, args=(name, probe), name=f"kdk-readyz-{name}", daemon=True)
        for name, probe in probes.items()
    ]
    for thread in threads:
        thread.start()
    deadline = started + bound_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    answered = dict(results)  # a late probe must not change the answer while it is encoded
    for name in probes:
        if name not in answered:
            answered[name] = {
                "ok": False,
                "ms": round((time.monotonic() - started) * 1000),
                "error": f"no answer within {round(bound_s * 1000)} ms",
            }
    return {name: answered[name] for name in probes}


def mongo_probe(mongo: MongoProvider, timeout_ms: int) -> Probe:
    """A primary answers; on a replica set the check carries its primary and secondaries."""

    def probe() -> tuple[bool, Mapping[str, Any]]:
        ok, report = mongo.health_check(timeout_ms)
        return ok, dict(report.get("mongo") or {})

    return probe


def redis_probe(url: str | None, timeout_ms: int) -> Probe:
    """Redis answers PING (a Cluster: says ``cluster_state:ok``); ok when no Redis is configured."""

    def probe() -> tuple[bool, Mapping[str, Any]]:
        if not url:
            return True, {"configured": False}
        return redis_answers(url, timeout_ms), {}

    return probe


def sync_probe(flask_app: Flask, outbox_size: int) -> Probe:
    """The sync bus is usable: started, its reader's and publisher's last broker commands worked,
    and its in-memory outbox is not full (a full one drops the oldest event at each new one).
    Ok when there is no bus (no broker URL, or ``sync.enabled`` false). Read from the bus's own
    state: no round trip, so a broker that just died shows here once a command of the bus fails."""

    def probe() -> tuple[bool, Mapping[str, Any]]:
        bus = flask_app.extensions.get("kdk_sync")  # looked up now: the sync part may come later
        if bus is None:
            return True, {"enabled": False}
        running, connected, pending = bus.running, bus.is_connected(), bus.pending
        details = {"running": running, "connected": connected, "outbox": pending, "outbox_size": outbox_size}
        return running and connected and pending < outbox_size, details

    return probe


def readiness_probes(flask_app: Flask, settings: Mapping[str, Any], timeout_ms: int) -> dict[str, Probe]:
    mongo: MongoProvider = flask_app.extensions["kdk_mongo"]
    redis_url = (settings.get("redis") or {}).get("url")
    outbox_size = int((settings.get("sync") or {}).get("outbox_size") or DEFAULT_OUTBOX_SIZE)
    return {
        "mongodb": mongo_probe(mongo, timeout_ms),
        "redis": redis_probe(redis_url, timeout_ms),
        "sync": sync_probe(flask_app, outbox_size),
    }


def register_readyz(flask_app: Flask, probes: Mapping[str, Probe], timeout_ms: int) -> None:
    def readyz() -> Response:
        checks = run_probes(probes, timeout_ms / 1000)
        ready = all(check["ok"] for check in checks.values())
        body = {"status": "ready" if ready else "unready", "checks": checks}
        return json_response(body, 200 if ready else 503)

    # "kdk_": in a host app, kdk answers this route's errors as Feathers JSON too.
    add_get_route(flask_app, "/readyz", "kdk_readyz", readyz)
