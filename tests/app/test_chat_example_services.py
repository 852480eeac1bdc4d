"""The chat example's server (examples/chat/config/default.py, the Feathers chat guide's) in
process, on MongoService (SecantusDB) and on MemoryService: users and messages as the guide's
client reads them, over REST and Flask-SocketIO's test client (no Redis)."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kdk_app import create_app
from kdk_app.config import load_config

CHAT_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "chat" / "config"
PASSWORD = "correct horse battery"


def chat_settings(mongo_url: str, adapter: str) -> dict[str, Any]:
    settings = load_config(env="test", config_dir=CHAT_CONFIG, environ={})
    settings["mongo"] = {**settings["mongo"], "url": mongo_url, "database": f"chat_{uuid.uuid4().hex[:10]}"}
    settings["redis"] = {**settings["redis"], "url": None}
    if adapter == "memory":  # the same services, hooks and schemas, on MemoryService
        settings["services"] = {
            path: {k: v for k, v in spec.items() if k not in ("collection", "indexes")}
            | {"adapter": "memory", "id": "_id"}
            for path, spec in settings["services"].items()
        }
    return settings


@pytest.fixture(params=["mongodb", "memory"])
def flask_app(request: pytest.FixtureRequest, mongo_url: str) -> Iterator[Flask]:
    app = create_app(chat_settings(mongo_url, request.param))
    yield app
    app.extensions["kdk"].teardown()


def unique_email(label: str = "user") -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}@example.com"


def register(client: FlaskClient, email: str | None = None, **extra: Any) -> dict[str, Any]:
    answer = client.post("/users", json={"email": email or unique_email(), "password": PASSWORD, **extra})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def token(client: FlaskClient, email: str) -> dict[str, str]:
    answer = client.post("/authentication", json={"strategy": "local", "email": email, "password": PASSWORD})
    assert answer.status_code == 201, answer.get_json()
    return {"Authorization": f"Bearer {answer.get_json()['accessToken']}"}


def socket_login(flask_app: Flask, email: str) -> Any:
    socket = flask_app.extensions["socketio"].test_client(flask_app)
    error, _ = socket.emit(
        "create", "authentication", {"strategy": "local", "email": email, "password": PASSWORD}, callback=True
    )
    assert error is None
    return socket


def received(socket: Any, name: str) -> list[Any]:
    return [r["args"][0] for r in socket.get_received() if r["name"] == name]


def gravatar(email: str) -> str:
    return f"https://s.gravatar.com/avatar/{hashlib.md5(email.encode()).hexdigest()}?s=60"


def test_a_new_user_gets_a_lower_cased_email_and_a_gravatar_and_never_its_password(flask_app: Flask) -> None:
    client = flask_app.test_client()
    user = register(client, "Mixed.Case-" + uuid.uuid4().hex[:6] + "@Example.COM")
    email = user["email"]
    assert email == email.lower() and user["avatar"] == gravatar(email)
    assert "password" not in user
    assert "password" not in client.get(f"/users/{user['_id']}", headers=token(client, email)).get_json()
    given = register(client, avatar="https://example.com/me.png", githubId=42)
    assert (given["avatar"], given["githubId"]) == ("https://example.com/me.png", 42)


def test_users_events_reach_logged_in_sockets_without_the_password(flask_app: Flask) -> None:
    client = flask_app.test_client()
    watcher = register(client)
    socket = socket_login(flask_app, watcher["email"])
    anonymous = flask_app.extensions["socketio"].test_client(flask_app)
    socket.get_received(), anonymous.get_received()
    newcomer = register(client)
    (event,) = received(socket, "users created")
    assert event["email"] == newcomer["email"] and event["avatar"] == gravatar(newcomer["email"])
    assert "password" not in event
    assert received(anonymous, "users created") == []  # every event goes to `authenticated` only
    socket.disconnect(), anonymous.disconnect()


def test_an_email_is_registered_once_whatever_its_case(mongo_url: str) -> None:
    app = create_app(chat_settings(mongo_url, "mongodb"))  # MemoryService has no unique index
    try:
        client = app.test_client()
        email = unique_email()
        register(client, email)
        again = client.post("/users", json={"email": email.upper(), "password": PASSWORD})
        assert again.status_code == 409 and again.get_json()["name"] == "Conflict"
    finally:
        app.extensions["kdk"].teardown()


def test_every_messages_method_needs_a_token(flask_app: Flask) -> None:
    client = flask_app.test_client()
    for answer in (
        client.get("/messages"),
        client.get("/messages/1"),
        client.post("/messages", json={"text": "hi"}),
        client.patch("/messages/1", json={"text": "hi"}),
        client.delete("/messages/1"),
    ):
        assert answer.status_code == 401 and answer.get_json()["name"] == "NotAuthenticated"


def test_text_is_required_and_at_most_400_characters(flask_app: Flask) -> None:
    client = flask_app.test_client()
    headers = token(client, register(client)["email"])
    assert client.post("/messages", json={"text": "x" * 400}, headers=headers).status_code == 201
    for data in ({"text": "x" * 401}, {}):
        answer = client.post("/messages", json=data, headers=headers)
        body = answer.get_json()
        assert answer.status_code == 400 and body["name"] == "BadRequest" and "text" in body["errors"]


def test_created_at_and_user_id_are_the_servers_and_the_user_is_populated(flask_app: Flask) -> None:
    client = flask_app.test_client()
    author = register(client)
    before = int(time.time() * 1000)
    data = {"text": "hello", "createdAt": 1, "userId": "someone else", "user": {"email": "forged"}}
    message = client.post("/messages", json=data, headers=token(client, author["email"])).get_json()
    assert before <= message["createdAt"] <= int(time.time() * 1000)
    assert str(message["userId"]) == str(author["_id"])
    assert message["user"]["email"] == author["email"] and "password" not in message["user"]


def test_messages_events_carry_their_user_to_logged_in_sockets_only(flask_app: Flask) -> None:
    client = flask_app.test_client()
    author, reader = register(client), register(client)
    socket = socket_login(flask_app, reader["email"])
    anonymous = flask_app.extensions["socketio"].test_client(flask_app)
    client.post("/messages", json={"text": "to everyone"}, headers=token(client, author["email"]))
    (event,) = received(socket, "messages created")
    assert event["text"] == "to everyone" and event["user"]["email"] == author["email"]
    assert "password" not in event["user"]
    assert received(anonymous, "messages created") == []
    socket.disconnect(), anonymous.disconnect()


def test_a_page_of_25_messages_gets_its_users_with_one_find(flask_app: Flask) -> None:
    kdk = flask_app.extensions["kdk"]
    client = flask_app.test_client()
    authors = [register(client) for _ in range(5)]
    for n in range(30):
        kdk.service("messages").create({"text": f"message {n}"}, {"user": authors[n % 5]})
    calls: list[tuple[str, str]] = []
    kdk.call_observers.append(lambda path, method, *rest: calls.append((path, method)))
    answer = client.get(
        "/messages",
        query_string={"$sort[createdAt]": -1, "$limit": 25},
        headers=token(client, authors[0]["email"]),
    )
    page = answer.get_json()["data"]
    assert len(page) == 25 and calls.count(("users", "find")) == 1
    created = [message["createdAt"] for message in page]
    assert created == sorted(created, reverse=True)
    emails = {str(a["_id"]): a["email"] for a in authors}
    assert all(m["user"]["email"] == emails[str(m["userId"])] for m in page)
    assert all("password" not in m["user"] for m in page)


def test_only_the_author_may_change_or_remove_a_message(flask_app: Flask) -> None:
    client = flask_app.test_client()
    author, other = register(client), register(client)
    mine, theirs = token(client, author["email"]), token(client, other["email"])
    message = client.post("/messages", json={"text": "mine"}, headers=mine).get_json()
    path = f"/messages/{message['_id']}"
    assert client.get(path, headers=theirs).status_code == 404
    assert client.patch(path, json={"text": "theirs"}, headers=theirs).status_code == 404
    assert client.delete(path, headers=theirs).status_code == 404
    assert any(m["_id"] == message["_id"] for m in client.get("/messages", headers=theirs).get_json()["data"])
    edited = client.patch(path, json={"text": "edited", "userId": other["_id"], "createdAt": 1}, headers=mine)
    assert edited.get_json()["text"] == "edited"
    assert (edited.get_json()["userId"], edited.get_json()["createdAt"]) == (
        message["userId"],
        message["createdAt"],
    )
    assert client.put(path, json={"text": "replaced"}, headers=mine).status_code == 405  # no update
