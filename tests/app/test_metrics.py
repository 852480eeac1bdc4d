"""``/metrics`` in process: the counts that known traffic causes, the route label, the token, and
production's refusal to serve it in public. Real SecantusDB and Redis; Flask's test client and the
Socket.IO server's test client. Several gunicorn workers: tests/integration/test_metrics_workers.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from kdk_app import create_app
from kdk_app.embedded import free_port

TOKEN = "metrics-test-token-" + "t" * 20


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(app: Flask, **headers: str) -> str:
    response = app.test_client().get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.get_data(as_text=True)


def build(mongo_url: str, redis_url: str | None = None, **settings: Any) -> Flask:
    return create_app(
        mongo={"url": mongo_url, "database": f"metrics_{uuid.uuid4().hex[:10]}"},
        redis={"url": redis_url},
        **settings,
    )


@pytest.fixture
def flask_app(mongo_url: str, redis_url: str) -> Iterator[Flask]:
    app = build(mongo_url, redis_url)
    yield app
    app.extensions["kdk"].teardown()


def test_requests_calls_and_events_are_counted_by_route_service_and_outcome(flask_app: Flask) -> None:
    client = flask_app.test_client()
    for index in range(3):
        assert client.post("/messages", json={"text": f"hi {index}"}).status_code == 201
    created = client.post("/messages", json={"text": "to get"}).get_json()
    assert client.get(f"/messages/{created['_id']}").status_code == 200
    assert client.get("/messages/568225fbfe21222432e836ff").status_code == 404
    assert client.get("/no/such/route").status_code == 404

    text = scrape(flask_app)
    requests = "kdk_http_requests_total"
    assert value(text, requests, route="/messages", method="POST", status="201") == 4
    assert value(text, requests, route="/messages/:id", method="GET", status="200") == 1
    assert value(text, requests, route="/messages/:id", method="GET", status="404") == 1
    assert value(text, requests, route="<unmatched>", method="GET", status="404") == 1
    assert not [key for key in samples(text) if key[0] == requests and ("route", "/metrics") in key[1]]
    assert value(text, "kdk_http_request_duration_seconds_count", route="/messages", method="POST") == 4

    calls = "kdk_service_calls_total"
    assert value(text, calls, service="messages", method="create", provider="rest", outcome="ok") == 4
    assert value(text, calls, service="messages", method="get", provider="rest", outcome="NotFound") == 1
    duration = "kdk_service_call_duration_seconds_count"
    assert value(text, duration, service="messages", method="create", provider="rest") == 4
    assert value(text, "kdk_events_total", service="messages", event="created") == 4
    assert value(text, "kdk_socket_deliveries_total", mode="queue") == 4


def test_servers_are_probed_when_scraped(flask_app: Flask) -> None:
    text = scrape(flask_app)
    assert value(text, "kdk_dependency_up", dependency="mongodb") == 1
    assert value(text, "kdk_dependency_up", dependency="redis") == 1


def test_open_socket_connections_are_a_gauge(mongo_url: str) -> None:
    app = build(mongo_url)  # Flask-SocketIO's test client takes no message queue: no Redis
    try:
        socketio = app.extensions["socketio"]
        first, second = socketio.test_client(app), socketio.test_client(app)
        assert value(scrape(app), "kdk_socket_connections") == 2
        first.disconnect()
        second.disconnect()
        assert value(scrape(app), "kdk_socket_connections") == 0
    finally:
        app.extensions["kdk"].teardown()


def test_sync_bus_counters_and_outbox_become_metrics(flask_app: Flask) -> None:
    bus = flask_app.extensions["kdk_sync"]
    bus.stats.bump("forged", 2)
    bus.stats.observe_lag(0.03)
    text = scrape(flask_app)
    assert value(text, "kdk_sync_envelopes_total", kind="forged") == 2
    assert value(text, "kdk_sync_lag_seconds_count") == 1
    assert value(text, "kdk_sync_lag_seconds_bucket", le="0.05") == 1
    assert ("kdk_sync_outbox_size", ()) in samples(text)
    assert bus.stats.as_dict()["forged"] == 2  # the JSON counters stay as they were


def test_a_metrics_token_is_required_when_set(mongo_url: str) -> None:
    app = build(mongo_url, metrics={"token": TOKEN})
    try:
        client = app.test_client()
        refused = client.get("/metrics")
        assert refused.status_code == 401
        assert refused.get_json()["name"] == "NotAuthenticated"
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert "kdk_http_requests_total" in scrape(app, Authorization=f"Bearer {TOKEN}")
    finally:
        app.extensions["kdk"].teardown()


def test_metrics_that_are_not_public_are_not_served_without_a_token_or_an_address(mongo_url: str) -> None:
    app = build(mongo_url, metrics={"public": False})
    try:
        answer = app.test_client().get("/metrics")
        assert answer.status_code == 404
        assert answer.get_json()["name"] == "NotFound"
    finally:
        app.extensions["kdk"].teardown()


def test_metrics_can_be_turned_off(mongo_url: str) -> None:
    app = build(mongo_url, metrics={"enabled": False})
    try:
        assert app.test_client().get("/metrics").status_code == 404
        assert "kdk_metrics" not in app.extensions
    finally:
        app.extensions["kdk"].teardown()


def test_metrics_bind_serves_them_on_an_address_of_their_own_once_serving(mongo_url: str) -> None:
    port = free_port()
    app = build(mongo_url, metrics={"bind": f"127.0.0.1:{port}", "public": False})
    try:
        with pytest.raises(requests.ConnectionError):  # built, not serving: nothing started
            requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
        app.extensions["kdk"].start()
        assert app.test_client().get("/metrics").status_code == 404  # not on the app's address
        assert app.test_client().post("/messages", json={"text": "counted"}).status_code == 201
        answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert (
            value(
                answer.text,
                "kdk_service_calls_total",
                service="messages",
                method="create",
                provider="rest",
                outcome="ok",
            )
            == 1
        )
    finally:
        app.extensions["kdk"].teardown()


def test_the_production_config_does_not_make_metrics_public() -> None:
    from kdk_app.config import load_config

    assert load_config(env="production", environ={})["metrics"]["public"] is False
