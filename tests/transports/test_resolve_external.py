"""``resolve_external`` through the transports: a REST or Socket.IO caller never sees the
``password`` a resolver hides, in the answer or in the ``created`` event, while an internal
call gets it. In process: Flask's test client and Flask-SocketIO's (no Redis), SecantusDB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from kdk_app import create_app
from kdk_app.core.populate import populate
from kdk_app.core.resolvers import resolve_external, resolve_result
from kdk_app.services import MemoryService


def _accounts_and_posts(app: Any) -> None:
    app.on("connection", lambda connection: app.channel("anonymous").join(connection))
    accounts = app.use("accounts", MemoryService())
    accounts.hooks({"around": {"all": [resolve_external({"password": lambda *args: None})]}})
    accounts.publish(lambda data, context: app.channel("anonymous"))
    posts = app.use("posts", MemoryService(paginate={"default": 25}))
    posts.hooks({"after": {"all": [resolve_result({"user": populate("accounts", key="user_id")})]}})


@pytest.fixture
def flask_app(mongo_url: str) -> Iterator[Flask]:
    app = create_app(
        mongo={"url": mongo_url, "database": f"resolve_{uuid.uuid4().hex[:10]}"},
        redis={"url": None},
        channels=[],
        configure=[_accounts_and_posts],
    )
    yield app
    app.extensions["kdk"].teardown()


def created_events(client: Any) -> list[Any]:
    return [r["args"][0] for r in client.get_received() if r["name"] == "accounts created"]


def test_external_callers_never_see_the_password_that_internal_calls_get(flask_app: Flask) -> None:
    kdk = flask_app.extensions["kdk"]
    listener = flask_app.extensions["socketio"].test_client(flask_app)
    assert listener.is_connected()

    rest = flask_app.test_client().post("/accounts", json={"name": "rest", "password": "p1"})
    assert rest.status_code == 201 and rest.get_json() == {"id": 0, "name": "rest"}

    ack = listener.emit("create", "accounts", {"name": "socket", "password": "p2"}, callback=True)
    assert ack == [None, {"id": 1, "name": "socket"}]

    internal = kdk.service("accounts").create({"name": "server", "password": "p3"})
    assert internal["password"] == "p3"

    events = created_events(listener)
    assert [e["name"] for e in events] == ["rest", "socket", "server"]
    assert all("password" not in e for e in events)

    # Populated accounts of a REST find come from one accounts find, without the password.
    for n in range(3):
        kdk.service("posts").create({"text": f"m{n}", "user_id": n})
    page = flask_app.test_client().get("/posts").get_json()
    assert [m["user"]["name"] for m in page["data"]] == ["rest", "socket", "server"]
    assert all("password" not in m["user"] for m in page["data"])
    listener.disconnect()
