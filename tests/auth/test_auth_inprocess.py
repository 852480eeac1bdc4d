"""Authentication pieces that need no server process: secret policy, permissions algebra,
durations, the throttle with Redis down, and the app in-process (Flask test client, real
MongoDB) for registration switched off and flask-jwt-extended views using our tokens."""

from __future__ import annotations

import logging
import uuid

import pytest
from flask_jwt_extended import current_user, get_jwt_identity, jwt_required

from kdk_app.app import create_app
from kdk_app.auth import LoginThrottle, Passwords, Permissions, parse_duration, resolve_secret
from kdk_app.auth.permissions import matches, merge_query, resolve
from kdk_app.config import load_config
from kdk_app.core.errors import Forbidden, TooManyRequests
from kdk_app.embedded import free_port

SECRET = "in-process-secret-" + "k" * 50


# --- secret policy ---------------------------------------------------------------------------
def test_production_refuses_to_start_without_a_secret():
    with pytest.raises(RuntimeError, match="JWT_SECRET"):
        resolve_secret({"env": "production", "authentication": {"secret": None}})
    assert resolve_secret({"env": "production", "authentication": {"secret": SECRET}}) == SECRET


def test_development_generates_a_secret_and_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="kdk_app.auth.configure"):
        first = resolve_secret({"env": "development", "authentication": {}})
        second = resolve_secret({"env": "development", "authentication": {}})
    assert len(first) >= 48 and first != second
    assert "No JWT secret configured" in caplog.text


def test_a_generated_secret_is_shared_through_redis(redis_url):
    settings = {"env": "development", "authentication": {}, "redis": {"url": redis_url}}
    assert resolve_secret(settings) == resolve_secret(settings)


# --- permissions -----------------------------------------------------------------------------
def test_permission_lookup_prefers_the_most_specific_entry():
    permissions = Permissions(
        {
            "anonymous": {"users": {"create": True}},
            "user": {"notes": {"*": {"owner": "$user._id"}, "remove": False}, "*": {"find": True}},
            "admin": "*",
        }
    )
    assert permissions.rule("user", "notes", "get").condition == {"owner": "$user._id"}
    assert permissions.rule("user", "notes", "remove") is None
    assert permissions.rule("user", "other", "find").condition is None
    assert permissions.rule("user", "other", "get") is None
    assert permissions.rule("admin", "anything", "remove").condition is None
    assert permissions.rule("anonymous", "users", "find") is None
    assert permissions.role_of(None) == "anonymous"
    assert permissions.role_of({"_id": "1"}) == "user"
    assert permissions.roles == ["user", "admin"]
    with pytest.raises(ValueError):
        Permissions({"user": {"notes": {"find": "yes"}}})
    with pytest.raises(ValueError):
        Permissions({"user": ["notes"]})


def test_conditions_resolve_merge_and_match():
    user = {"_id": "u1", "team": "t"}
    condition = resolve({"owner": "$user._id", "team": {"$in": ["$user.team", "public"]}}, user)
    assert condition == {"owner": "u1", "team": {"$in": ["t", "public"]}}
    with pytest.raises(Forbidden):  # a missing value never becomes "matches records without one"
        resolve({"owner": "$user.missing"}, user)
    merged = merge_query(
        {"owner": "u1"},
        {"$limit": 5, "$sort": {"n": 1}, "text": "x", "$or": [{"a": 1}], "$and": [{"b": 2}]},
    )
    assert merged == {
        "$limit": 5,
        "$sort": {"n": 1},
        "$and": [{"owner": "u1"}, {"b": 2}, {"text": "x", "$or": [{"a": 1}]}],
    }
    assert merge_query({"owner": "u1"}, {}) == {"$and": [{"owner": "u1"}]}
    assert matches({"owner": "u1", "team": "t"}, condition)
    assert not matches({"owner": "u2", "team": "t"}, condition)
    assert not matches({"team": "t"}, condition)
    assert matches({"n": 3}, {"$or": [{"n": {"$gt": 5}}, {"n": {"$lte": 3}}]})
    assert not matches({"n": "x"}, {"n": {"$gt": 5}})
    assert not matches({"n": 1}, {"n": {"$regex": "."}})  # unknown operators never grant


def test_durations():
    assert parse_duration("1d") == 86400
    assert parse_duration("15m") == 900
    assert parse_duration("2 hours") == 7200
    assert parse_duration(30) == 30
    assert parse_duration("45") == 45
    for bad in ("soon", "-1s", 0, True, "1 fortnight"):
        with pytest.raises(ValueError):
            parse_duration(bad)


# --- throttle without Redis ------------------------------------------------------------------
def test_the_throttle_fails_open_to_local_counters_when_redis_is_down(caplog):
    throttle = LoginThrottle(
        max_attempts=3, window_seconds=60, redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    with caplog.at_level(logging.WARNING, logger="kdk_app.auth.throttle"):
        for _ in range(3):
            throttle.attempt("a@b.c", "10.0.0.1")
    assert caplog.text.count("Redis unavailable") == 1  # one warning, not one per attempt
    with pytest.raises(TooManyRequests):
        throttle.attempt("a@b.c", None)
    throttle.attempt("other@b.c", "10.0.0.2")
    throttle.success("a@b.c")
    throttle.attempt("a@b.c", None)


def test_passwords_hash_and_verify():
    passwords = Passwords()
    stored = passwords.hash("correct horse")
    assert stored.startswith("$argon2id$") and passwords.verify(stored, "correct horse")
    assert not passwords.verify(stored, "wrong horse")
    assert not passwords.verify("plain text", "plain text") and not passwords.verify(None, "x")


# --- the app in-process ----------------------------------------------------------------------
@pytest.fixture
def flask_app(mongo_url, mongo_db):
    config = load_config(env="test", environ={})
    app = create_app(
        config,
        mongo={"url": mongo_url, "database": mongo_db.name},
        authentication={"secret": SECRET, "disallow_registration": True},
    )

    @app.get("/whoami")
    @jwt_required()
    def whoami():
        return {"sub": get_jwt_identity(), "user": dict(current_user)}

    yield app
    app.extensions["kdk"].teardown()


def test_registration_can_be_switched_off_and_flask_jwt_views_accept_our_tokens(flask_app, mongo_db):
    client = flask_app.test_client()
    refused = client.post("/users", json={"email": "x@example.com", "password": "long enough"})
    assert refused.status_code == 401 and refused.json["name"] == "NotAuthenticated"

    users = flask_app.extensions["kdk"].service("users")
    admin = users.create({"email": "admin@example.com", "password": "admin password", "role": "admin"})
    assert "password" not in admin  # even internal callers never get the hash back
    credentials = {"strategy": "local", "email": "admin@example.com", "password": "admin password"}
    login = client.post("/authentication", json=credentials)
    assert login.status_code == 201
    token = login.json["accessToken"]
    auth = {"Authorization": f"Bearer {token}"}
    newcomer = {"email": "new@example.com", "password": "long enough"}
    created = client.post("/users", json=newcomer, headers=auth)
    assert created.status_code == 201 and created.json["role"] == "user"

    me = client.get("/whoami", headers=auth)
    assert me.status_code == 200
    assert me.json["sub"] == admin["_id"] and me.json["user"]["email"] == "admin@example.com"
    assert "password" not in me.json["user"]
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert client.get("/whoami", headers={"Authorization": f"Bearer {tampered}"}).status_code == 401
    assert client.get("/whoami").status_code == 401
    assert mongo_db.users.count_documents({}) == 2
    assert mongo_db.users.find_one({"email": "new@example.com"})["password"].startswith("$argon2id$")


def test_authentication_events_are_never_published(flask_app):
    seen = []
    flask_app.extensions["kdk"].event_sinks.append(seen.append)
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    flask_app.extensions["kdk"].service("users").create({"email": email, "password": "long enough"})
    client = flask_app.test_client()
    client.post("/authentication", json={"strategy": "local", "email": "nobody@example.com", "password": "x"})
    assert [(e.path, e.event) for e in seen] == [("users", "created")]
    assert "password" not in seen[0].data
