"""kdk added to an existing Flask app with ``KDK(app)``: its services answer Feathers JSON, and
the host app's own pages, 404 and 500 stay its own. Real SecantusDB; Flask's test client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask

from kdk_app import KDK
from kdk_app.parts import Part, ordered


@pytest.fixture
def host(mongo_url: str) -> Iterator[Flask]:
    app = Flask("host")

    @app.route("/hello")
    def hello() -> str:
        return "<h1>hello from the host</h1>"

    @app.route("/broken")
    def broken() -> str:
        raise RuntimeError("the host's own bug")

    @app.errorhandler(404)
    def not_found(error: Exception) -> tuple[str, int]:
        return "<h1>the host's 404</h1>", 404

    kdk = KDK(
        app,
        mongo={"url": mongo_url, "database": f"ext_{uuid.uuid4().hex[:10]}"},
        api_path="/api",
        redis={"url": None},
    )
    yield app
    assert kdk.application is not None
    kdk.application.teardown()


def test_a_host_app_keeps_its_pages_and_gets_feathers_services(host):
    client = host.test_client()
    assert client.get("/hello").data == b"<h1>hello from the host</h1>"
    created = client.post("/api/messages", json={"text": "hi"})
    assert created.status_code == 201 and created.json["text"] == "hi"
    assert client.get("/api/messages").json["total"] == 1


def test_errors_are_feathers_json_on_kdk_routes_only(host):
    client = host.test_client()
    missing = client.get("/api/messages/000000000000000000000000")
    assert missing.status_code == 404 and missing.json["className"] == "not-found"
    bad = client.get("/api/messages?$limit=x")
    assert bad.status_code == 400 and bad.json["name"] == "BadRequest"
    for url in ("/nowhere", "/api/no-such-service"):
        page = client.get(url)
        assert page.status_code == 404 and page.data == b"<h1>the host's 404</h1>"
    host.testing = False  # the host's own 500 page, not an exception in the test
    crash = client.get("/broken")
    assert crash.status_code == 500 and crash.mimetype == "text/html"


def test_parts_are_wired_in_the_order_their_declarations_give():
    def noop(*_args: object) -> None:
        return None

    parts = [
        Part("cors", noop, after=("gateway",)),
        Part("gateway", noop, after=("rest",)),
        Part("rest", noop),
    ]
    assert [p.name for p in ordered(parts)] == ["rest", "gateway", "cors"]
    assert [p.name for p in ordered([Part("a", noop, after=("optional",))])] == ["a"]
    with pytest.raises(ValueError, match="wait on each other"):
        ordered([Part("a", noop, after=("b",)), Part("b", noop, after=("a",))])


def test_the_public_api_imports_from_the_package_and_loads_nothing_at_import():
    import subprocess
    import sys

    code = (
        "import sys, kdk_app; assert 'flask' not in sys.modules and 'pymongo' not in sys.modules; "
        "from kdk_app import *; import kdk_app as k; "
        "assert all(getattr(k, n) is not None for n in k.__all__); "
        "assert set(k.__all__) == set(k._EXPORTS)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_host_app_gets_kdks_body_limit_unless_it_set_its_own(host):
    assert host.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    too_big = host.test_client().post("/api/messages", json={"text": "x" * (2 * 1024 * 1024)})
    assert too_big.status_code == 413 and too_big.json["name"] == "PayloadTooLarge"


def test_without_a_socket_server_events_still_go_out_on_the_message_queue(mongo_url, redis_url):
    import json

    import redis

    from kdk_app import create_app

    channel = f"ext-{uuid.uuid4().hex[:8]}"
    app = create_app(
        mongo={"url": mongo_url, "database": f"ext_{uuid.uuid4().hex[:10]}"},
        redis={"url": redis_url},
        socketio={"enabled": False, "channel": channel},
        sync={"enabled": False},
    )
    pubsub = redis.Redis.from_url(redis_url).pubsub()
    pubsub.subscribe(channel)
    try:
        assert pubsub.get_message(timeout=2)["type"] == "subscribe"
        assert app.test_client().post("/messages", json={"text": "queued"}).status_code == 201
        message = pubsub.get_message(timeout=5)
        assert message is not None and b"queued" in message["data"]
        assert json.loads(message["data"])["method"] == "emit"
    finally:
        pubsub.close()
        app.extensions["kdk"].teardown()
