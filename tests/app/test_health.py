"""``/livez``, ``/readyz`` and ``/healthcheck`` in process, on real SecantusDB and Redis: ready when
every server is usable, 503 within ``healthcheck.timeout_ms`` when Redis is stopped or paused
(SIGSTOP), and liveness untouched by either."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from clients import wait_until
from flask import Flask

from kdk_app import create_app
from kdk_app.embedded import free_port

BOUND_MS = 500
MARGIN_S = 0.4  # thread start, JSON, Flask's test client; far under a second probe bound


def build(mongo_url: str, redis_url: str | None, **settings: Any) -> Flask:
    return create_app(
        mongo={"url": mongo_url, "database": f"health_{uuid.uuid4().hex[:10]}"},
        redis={"url": redis_url},
        healthcheck={"timeout_ms": BOUND_MS},
        **settings,
    )


@pytest.fixture
def apps() -> Iterator[list[Flask]]:
    made: list[Flask] = []
    yield made
    for app in made:
        app.extensions["kdk"].teardown()


def readyz(app: Flask) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    response = app.test_client().get("/readyz")
    return response.status_code, response.get_json(), time.monotonic() - started


def becomes_ready(app: Flask) -> bool:
    return wait_until(lambda: readyz(app)[0] == 200, timeout=15)


def test_readyz_is_ready_when_mongodb_redis_and_the_sync_bus_are_usable(mongo_url, redis_url, apps):
    app = build(mongo_url, redis_url)
    apps.append(app)
    assert becomes_ready(app)  # the first request starts the bus; ready once it is connected
    status, body, _ = readyz(app)
    assert status == 200 and body["status"] == "ready"
    assert set(body["checks"]) == {"mongodb", "redis", "sync"}
    for check in body["checks"].values():
        assert check["ok"] is True and isinstance(check["ms"], int) and 0 <= check["ms"] <= BOUND_MS
    mongodb = body["checks"]["mongodb"]
    if "replicaSet" in mongodb:  # SecantusDB is a one-member replica set: KDK's report, as /healthcheck
        assert (
            mongodb["primary"]
            and mongodb["secondaries"] == []
            and mongodb["members"][0]["state"] == "PRIMARY"
        )
    sync = body["checks"]["sync"]
    assert sync["running"] and sync["connected"] and sync["outbox"] == 0 and sync["outbox_size"] == 10_000


def test_readyz_without_redis_checks_mongodb_only(mongo_url, apps):
    app = build(mongo_url, None)
    apps.append(app)
    status, body, _ = readyz(app)
    assert status == 200
    assert body["checks"]["redis"] == {"ok": True, "configured": False, "ms": body["checks"]["redis"]["ms"]}
    assert body["checks"]["sync"]["enabled"] is False


def test_readyz_answers_503_quickly_when_redis_is_stopped_and_livez_stays_200(
    mongo_url, redis_server_factory, apps
):
    process, url = redis_server_factory()
    app = build(mongo_url, url)
    apps.append(app)
    assert becomes_ready(app)
    process.stop()
    status, body, elapsed = readyz(app)
    assert status == 503 and body["status"] == "unready"
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["mongodb"]["ok"] is True
    assert elapsed < BOUND_MS / 1000 + MARGIN_S
    live = app.test_client().get("/livez")
    assert live.status_code == 200 and live.get_json() == {"status": "ok"}
    # The bus notices too, once its own commands fail: then the sync check says so.
    assert wait_until(lambda: readyz(app)[1]["checks"]["sync"]["ok"] is False, timeout=15)


def test_readyz_answers_within_its_bound_when_redis_is_paused(mongo_url, redis_server_factory, apps):
    process, url = redis_server_factory()
    app = build(mongo_url, url)
    apps.append(app)
    assert becomes_ready(app)
    # SIGSTOP: connections are still accepted, nothing is ever answered.
    os.kill(process.pid, signal.SIGSTOP)
    try:
        for _ in range(3):  # each answer within the bound, not only the first
            status, body, elapsed = readyz(app)
            assert status == 503 and body["checks"]["redis"]["ok"] is False
            assert elapsed < BOUND_MS / 1000 + MARGIN_S, elapsed
        assert app.test_client().get("/livez").status_code == 200
    finally:
        os.kill(process.pid, signal.SIGCONT)
    assert becomes_ready(app)


def test_readyz_reports_mongodb_unready_within_its_bound_when_nothing_listens(redis_url, apps):
    app = build(f"mongodb://127.0.0.1:{free_port()}/", redis_url)
    apps.append(app)
    status, body, elapsed = readyz(app)
    assert status == 503 and body["checks"]["mongodb"]["ok"] is False
    assert body["checks"]["redis"]["ok"] is True
    assert elapsed < BOUND_MS / 1000 + MARGIN_S
    assert app.test_client().get("/livez").status_code == 200


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthcheck"])
def test_health_routes_answer_other_methods_with_a_feathers_405(mongo_url, apps, path):
    app = build(mongo_url, None)
    apps.append(app)
    response = app.test_client().post(path, json={})
    assert response.status_code == 405
    assert response.get_json()["name"] == "MethodNotAllowed"


def test_healthcheck_keeps_kdks_shape(mongo_url, redis_url, apps):
    app = build(mongo_url, redis_url)
    apps.append(app)
    body = app.test_client().get("/healthcheck").get_json()
    flags = {k: v for k, v in body.items() if k != "mongo"}
    assert flags == {"isRunning": True, "isDatabaseRunning": True, "isRedisRunning": True}
