"""Authentication across two instances sharing Redis (and MongoDB), one of them gunicorn with
two workers: socket rooms fed through the Socket.IO Redis message queue, the login throttle's
shared counters, and the development JWT secret shared through Redis (no JWT_SECRET is set
here on purpose)."""

from __future__ import annotations

import uuid

import pytest
from accounts import PASSWORD, Api, Sock, assert_error, close_all, unique_email
from clients import wait_until
from servers import AppServerFactory


@pytest.fixture(scope="module")
def pair(mongo_url, redis_url, tmp_path_factory):
    # Started one after the other from this thread: the children die with the thread that
    # started them (PR_SET_PDEATHSIG), so no helper threads here.
    factory = AppServerFactory(mongo_url, tmp_path_factory.mktemp("auth-cluster"))
    env = {"REDIS_URL": redis_url, "KDK_MONGO__DATABASE": f"authc_{uuid.uuid4().hex[:10]}"}
    try:
        # B runs gunicorn with two gevent workers: sockets and REST calls land on either one.
        yield factory(env), factory(env, workers=2)
    finally:
        factory.stop_all()


@pytest.fixture
def sockets():
    opened = []

    def open_socket(url, **kwargs):
        opened.append(Sock(url, **kwargs))
        return opened[-1]

    yield open_socket
    close_all(opened)


def test_tokens_from_one_instance_work_on_the_other(pair):
    a, b = (Api(server.url) for server in pair)
    user = a.register()
    token = a.login(user["email"])["accessToken"]
    assert b("GET", "/notes", token=token).status_code == 200
    again = b("POST", "/authentication", json={"strategy": "jwt", "accessToken": token})
    assert again.status_code == 201 and again.json()["user"] == user


def test_owners_receive_their_notes_events_from_the_other_instance_and_nobody_else_does(pair, sockets):
    server_a, server_b = pair
    a, b = Api(server_a.url), Api(server_b.url)
    alice, bob = a.register(), a.register()
    alice_on_a = sockets(server_a.url)
    alice_on_a.login(alice["email"])
    bob_on_a = sockets(server_a.url)
    bob_on_a.login(bob["email"])
    bob_on_b = sockets(server_b.url)
    bob_on_b.login(bob["email"])
    anonymous_on_a = sockets(server_a.url)

    alice_token = b.login(alice["email"])["accessToken"]
    note = b("POST", "/notes", token=alice_token, json={"text": "from B"}).json()
    b("PATCH", f"/notes/{note['_id']}", token=alice_token, json={"text": "patched on B"})
    b("POST", "/messages", json={"text": "barrier"})  # to everyone, after the notes events
    everyone = (alice_on_a, bob_on_a, bob_on_b, anonymous_on_a)
    for sock in everyone:
        assert wait_until(lambda s=sock: s.named("messages created"), timeout=10), "no barrier event"
    assert wait_until(lambda: alice_on_a.named("notes patched"))
    assert [n["_id"] for n in alice_on_a.named("notes created")] == [note["_id"]]
    assert alice_on_a.named("notes patched")[0]["text"] == "patched on B"
    for sock in (bob_on_a, bob_on_b, anonymous_on_a):
        assert sock.named("notes created") == [] and sock.named("notes patched") == []


def test_the_login_throttle_holds_across_instances(pair):
    a, b = (Api(server.url) for server in pair)
    user = a.register(email=unique_email("throttled"))
    bad = {"strategy": "local", "email": user["email"], "password": "not the password"}
    for api in (a, b, a, b, a):
        assert_error(api("POST", "/authentication", json=bad), 401, "NotAuthenticated", "Invalid login")
    for api in (a, b):
        assert_error(api("POST", "/authentication", json=bad), 429, "TooManyRequests")
        good = {**bad, "password": PASSWORD}
        assert_error(api("POST", "/authentication", json=good), 429, "TooManyRequests")
