"""Identity through a gateway: remote services always see the caller as it is now.

A serves ``notes`` (and its own ``users``); G, the gateway, serves ``users`` too (the same
MongoDB database) but consumes ``notes`` from A. G runs gunicorn with two workers, so sockets
land on either one. Each app has its own Socket.IO channel and sync stream, so the only thing
that carries a change of users from A to G is the distribution.
"""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import pytest
import requests
from accounts import Api, CallError, Sock, close_all
from bson import ObjectId
from clients import wait_until

from kdk_app.core import Application, errors
from kdk_app.distributed import Distribution, DistributionSettings

JWT_SECRET = "kdk-dist-auth-secret-" + "j" * 40
DIST_SECRET = "kdk-dist-auth-distribution-secret"


def app_env(redis_url, key, db, name, *, exposes, extra=None):
    env = {
        "REDIS_URL": redis_url,
        "JWT_SECRET": JWT_SECRET,
        "KDK_MONGO__DATABASE": db,
        "KDK_SOCKETIO__CHANNEL": f"{name}-sockets-{key}",
        "KDK_SYNC__STREAM": f"{name}-events-{key}",
        "KDK_DISTRIBUTION__KEY": key,
        "KDK_DISTRIBUTION__SECRET": DIST_SECRET,
        "KDK_DISTRIBUTION__HEARTBEAT_INTERVAL": "1",
        "KDK_DISTRIBUTION__TTL": "3",
        "KDK_DISTRIBUTION__TIMEOUT": "10",
        "KDK_DISTRIBUTION__SERVICES": json.dumps(exposes),
    }
    env.update(extra or {})
    return env


@pytest.fixture
def apps(app_server_factory, redis_url, mongo_client):
    key, db = f"k{uuid.uuid4().hex[:8]}", f"distauth_{uuid.uuid4().hex[:10]}"
    provider = app_server_factory(env=app_env(redis_url, key, db, "a", exposes=["notes"]))
    gateway_env = {"KDK_SERVICES__NOTES": "null", "KDK_DISTRIBUTION__REMOTE_SERVICES": '["notes"]'}
    gateway = app_server_factory(
        env=app_env(redis_url, key, db, "g", exposes=[], extra=gateway_env), workers=2
    )
    api = Api(gateway.url)
    assert wait_until(lambda: api("GET", "/notes").status_code == 401, timeout=15), "notes not mounted at G"
    try:
        yield SimpleNamespace(
            provider=provider, gateway=gateway, db=mongo_client[db], key=key, redis_url=redis_url
        )
    finally:
        mongo_client.drop_database(db)


@pytest.fixture
def sockets():
    opened = []

    def open_socket(url):
        opened.append(Sock(url))
        return opened[-1]

    yield open_socket
    close_all(opened)


def make_admin(db, user):
    db.users.update_one({"_id": ObjectId(user["_id"])}, {"$set": {"role": "admin"}})


def others_note(gateway):
    """A note of another user, created through the gateway."""
    api = Api(gateway.url)
    _alice, token = api.user()
    response = api("POST", "/notes", token=token, json={"text": "alice's"})
    assert response.status_code == 201, response.text
    return response.json()


def ids(page):
    return {note["_id"] for note in page["data"]}


def drain(sock):
    with sock.lock:
        sock.events.clear()


def error_of(sock, method, *args):
    with pytest.raises(CallError) as info:
        sock.call(method, *args)
    return info.value.error


def test_a_gateway_socket_loses_admin_rights_on_remote_services_once_demoted_in_mongodb(apps, sockets):
    gateway, db = apps.gateway, apps.db
    note = others_note(gateway)
    boss = Api(gateway.url).register()
    make_admin(db, boss)
    sock = sockets(gateway.url)
    sock.login(boss["email"])
    assert note["_id"] in ids(sock.call("find", "notes", {}))

    db.users.update_one({"_id": ObjectId(boss["_id"])}, {"$set": {"role": "user"}})  # no event at all
    assert note["_id"] not in ids(sock.call("find", "notes", {}))
    assert error_of(sock, "remove", "notes", note["_id"], {})["code"] == 404
    assert db.notes.count_documents({"_id": ObjectId(note["_id"])}) == 1

    db.users.delete_one({"_id": ObjectId(boss["_id"])})
    error = error_of(sock, "find", "notes", {})
    assert (error["code"], error["name"]) == (401, "NotAuthenticated")


def test_a_gateway_socket_follows_a_demotion_and_a_removal_made_on_another_app(apps, sockets):
    provider, gateway, db = apps.provider, apps.gateway, apps.db
    note = others_note(gateway)
    on_a, on_g = Api(provider.url), Api(gateway.url)
    root, root_token = on_a.user()
    make_admin(db, root)
    boss = on_g.register()
    make_admin(db, boss)
    sock = sockets(gateway.url)
    sock.login(boss["email"])
    newcomer = on_g.register()  # G's users events go to admins: the boss's socket is in that room
    assert wait_until(lambda: newcomer["_id"] in {u["_id"] for u in sock.named("users created")})

    patched = on_a("PATCH", f"/users/{boss['_id']}", token=root_token, json={"role": "user"})
    assert patched.status_code == 200 and patched.json()["role"] == "user", patched.text
    assert note["_id"] not in ids(sock.call("find", "notes", {}))
    assert error_of(sock, "remove", "notes", note["_id"], {})["code"] == 404

    def left_admins():
        latest = on_g.register()
        on_g("POST", "/messages", json={"text": "barrier"})
        assert wait_until(lambda: sock.named("messages created"))
        seen = {u["_id"] for u in sock.named("users created")}
        drain(sock)
        return latest["_id"] not in seen

    assert wait_until(left_admins, timeout=10, interval=0.2), "the socket stayed in the admins room"

    removed = on_a("DELETE", f"/users/{boss['_id']}", token=root_token)
    assert removed.status_code == 200, removed.text

    def logged_out():  # while logged in, A would answer "Could not find entity" to its token
        error = error_of(sock, "find", "notes", {})
        assert (error["code"], error["name"]) == (401, "NotAuthenticated")
        return error["message"] == "Not authenticated"

    assert wait_until(logged_out, timeout=10, interval=0.2), "the socket kept its login"


def test_a_demotion_through_the_gateways_users_service_is_followed_on_every_worker(apps, sockets):
    gateway, db = apps.gateway, apps.db
    on_g = Api(gateway.url)
    root, root_token = on_g.user()
    make_admin(db, root)
    boss = on_g.register()
    make_admin(db, boss)
    boss_sockets = [sockets(gateway.url) for _ in range(4)]  # on either of G's two workers
    for sock in boss_sockets:
        sock.login(boss["email"])
    patched = on_g("PATCH", f"/users/{boss['_id']}", token=root_token, json={"role": "user"})
    assert patched.status_code == 200, patched.text

    def all_left_admins():
        latest = on_g.register()
        on_g("POST", "/messages", json={"text": "barrier"})
        for sock in boss_sockets:
            assert wait_until(lambda s=sock: s.named("messages created"))
        seen = [latest["_id"] in {u["_id"] for u in s.named("users created")} for s in boss_sockets]
        for sock in boss_sockets:
            drain(sock)
        return not any(seen)

    assert wait_until(all_left_admins, timeout=10, interval=0.2), "a socket stayed in the admins room"


def test_a_server_side_call_with_a_user_object_runs_as_that_user_reloaded_on_the_provider(apps):
    """No token, only a user object (claims): the provider reloads that user by id itself, so a
    stale or forged role never counts and a deleted user is refused."""
    settings = {
        "redis": {"url": apps.redis_url},
        "distribution": {"key": apps.key, "secret": DIST_SECRET, "services": [], "heartbeat_interval": 0.5},
    }
    consumer = Application().setup()  # an in-process consumer of the key, no authentication
    distribution = Distribution(consumer, DistributionSettings.from_settings(settings)).start()
    try:
        assert wait_until(lambda: "notes" in consumer.services, timeout=10)
        note = others_note(apps.gateway)
        boss = Api(apps.provider.url).register()
        claims = {**boss, "role": "admin"}
        page = consumer.service("notes").find({"user": claims, "provider": "rest"})
        assert note["_id"] not in ids(page)
        apps.db.users.delete_one({"_id": ObjectId(boss["_id"])})
        with pytest.raises(errors.NotAuthenticated):
            consumer.service("notes").find({"user": claims, "provider": "rest"})
    finally:
        distribution.stop()


def test_unauthenticated_calls_through_the_gateway_stay_refused(apps):
    gateway = apps.gateway
    response = requests.get(gateway.url + "/notes", timeout=10)
    assert response.status_code == 401 and response.json()["name"] == "NotAuthenticated"
