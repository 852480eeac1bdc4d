"""Distributed services across real app processes sharing one real Redis (loopback only).

A serves ``messages`` (MongoDB), B serves ``catalog`` (memory), C serves neither and consumes
both. Heartbeat 1 s and TTL 3 s keep the timings of these tests short.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from clients import Listener, wait_until
from distribution_envs import (
    HEARTBEAT,
    SECRET,
    TTL,
    a_env,
    b_env,
    c_env,
    mounted,
    stats,
)

from kdk_app.distributed import Signer
from kdk_app.distributed.names import Names


@pytest.fixture
def names():
    return {"key": f"k{uuid.uuid4().hex[:8]}", "db": f"dist_{uuid.uuid4().hex[:10]}"}


@pytest.mark.parametrize(
    "order, own_channel",
    [(("A", "B", "C"), True), (("C", "B", "A"), False)],
    ids=["providers-first-own-channel", "consumer-first-shared-channel"],
)
def test_consumer_serves_both_remote_services_whatever_the_start_order(
    app_server_factory, redis_url, names, order, own_channel
):
    key, db = names["key"], names["db"]
    envs = {"A": a_env(redis_url, key, db), "B": b_env(redis_url, key, db)}
    envs["C"] = c_env(redis_url, key, db, own_channel=own_channel)
    servers = {}
    for name in order:
        servers[name] = app_server_factory(env=envs[name])
    last_started = time.monotonic()
    a, c = servers["A"], servers["C"]
    # Within two heartbeats of the last start, whoever started first.
    assert wait_until(lambda: mounted(c) == {"messages", "catalog"}, timeout=2 * HEARTBEAT + 1)
    assert time.monotonic() - last_started <= 2 * HEARTBEAT + 1
    assert mounted(a) == {"catalog"}  # A consumes B, never what it serves itself

    # REST through C, with the provider's status codes and errors.
    created = requests.post(c.url + "/messages", json={"text": "via C", "n": 1}, timeout=10)
    assert created.status_code == 201, created.text
    message = created.json()
    assert requests.get(f"{c.url}/messages/{message['_id']}", timeout=10).json() == message
    page = requests.get(c.url + "/messages", params={"n": 1}, timeout=10).json()
    assert page["total"] == 1 and page["data"] == [message]
    missing = requests.get(f"{c.url}/messages/{'0' * 24}", timeout=10)
    assert missing.status_code == 404 and missing.json()["name"] == "NotFound"
    invalid = requests.post(c.url + "/messages", json={"n": "x"}, timeout=10)
    assert invalid.status_code == 400 and invalid.json()["name"] == "BadRequest"
    item = requests.post(c.url + "/catalog", json={"title": "map"}, timeout=10).json()
    assert requests.get(f"{c.url}/catalog/{item['id']}", timeout=10).json() == item

    # Socket.IO through C, and the events of A's service reach C's socket clients once.
    client = Listener(c.url)
    try:
        error, found = client.call("find", "catalog", {})
        assert error is None and found["data"] == [item]
        error, via_socket = client.call("create", "messages", {"text": "socket via C"}, {})
        assert error is None
        direct = requests.post(a.url + "/messages", json={"text": "on A"}, timeout=10).json()
        sentinel = requests.post(a.url + "/messages", json={"text": "sentinel"}, timeout=10).json()

        def texts():
            return [m["text"] for m in client.named("messages created")]

        assert wait_until(lambda: "sentinel" in texts(), timeout=10), texts()
        # Every event was dispatched at C (4 with "via C"), and any copy emitted to this client
        # precedes the ack of a later call on the same socket.
        assert wait_until(lambda: stats(c)["stats"]["events_received"] >= 4, timeout=10)
        assert client.call("find", "catalog", {})[0] is None
        # Exactly once per origin event, payload unchanged, whatever path the event took.
        assert sorted(texts()) == sorted(["socket via C", "on A", "sentinel"])
        received = {m["_id"]: m for m in client.named("messages created")}
        assert received[direct["_id"]] == direct and received[sentinel["_id"]] == sentinel
        assert received[via_socket["_id"]] == via_socket
    finally:
        client.close()

    health = requests.get(f"{c.url}/distribution/healthcheck/{key}", timeout=10)
    assert health.status_code == 200, health.text
    assert set(health.json()["services"]) == {"messages", "catalog"}
    assert requests.get(f"{c.url}/distribution/healthcheck/nope", timeout=10).status_code == 404


def _call(session, url):
    started = time.monotonic()
    response = session.get(url, timeout=15)
    return response.status_code, time.monotonic() - started


def test_replicas_share_calls_survive_a_kill_and_fail_fast_when_all_are_gone(
    app_server_factory, redis_url, names
):
    key, db = names["key"], names["db"]
    a1 = app_server_factory(env=a_env(redis_url, key, db))
    a2 = app_server_factory(env=a_env(redis_url, key, db))
    c = app_server_factory(env=c_env(redis_url, key, db, remote=["messages"]))
    assert wait_until(lambda: mounted(c) == {"messages"}, timeout=2 * HEARTBEAT + 1)
    ids = [
        requests.post(c.url + "/messages", json={"text": f"m{i}", "n": i}, timeout=10).json()["_id"]
        for i in range(10)
    ]
    local = threading.local()

    def session():
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session

    # 200 calls through C, 8 at a time: both replicas serve, none fails.
    urls = [
        f"{c.url}/messages/{ids[i % 10]}" if i % 2 else f"{c.url}/messages?n={i % 10}" for i in range(200)
    ]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda url: _call(session(), url), urls))
    assert [status for status, _ in results] == [200] * 200
    served = [stats(a)["stats"]["calls_served"] for a in (a1, a2)]
    assert all(count > 0 for count in served), served

    # SIGKILL one replica mid-run: no idempotent call fails (bounded in count and time).
    calls = 0
    failures = []
    killed = threading.Event()
    lock = threading.Lock()
    deadline = time.monotonic() + 20

    def worker():
        nonlocal calls
        while time.monotonic() < deadline:
            with lock:
                if calls >= 400:
                    return
                calls += 1
                number = calls
            if number == 80:
                os.kill(a1.process.pid, signal.SIGKILL)
                killed.set()
            url = (
                f"{c.url}/messages/{ids[number % 10]}" if number % 2 else f"{c.url}/messages?n={number % 10}"
            )
            status, _ = _call(session(), url)
            if status != 200:
                failures.append((number, status))

    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(worker) for _ in range(8)]:
            future.result()
    assert killed.is_set() and calls >= 200
    assert failures == []

    # Kill the last one: 503 at once, then the proxy goes, and comes back with A.
    os.kill(a2.process.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    assert wait_until(lambda: not a2.process.is_running(), timeout=5)
    with requests.Session() as http:
        for _ in range(5):
            status, elapsed = _call(http, c.url + "/messages")
            assert status == 503 and elapsed < 0.2, (status, elapsed)
    started = time.monotonic()
    health = requests.get(f"{c.url}/distribution/healthcheck/{key}", timeout=10)
    assert health.status_code == 503 and health.json()["failing"] == ["messages"]
    assert time.monotonic() - started < 2.0 + 1.0  # the probe bound (healthcheck_timeout) holds
    assert wait_until(
        lambda: requests.get(c.url + "/messages", timeout=5).status_code == 404, timeout=TTL + 5
    )
    assert time.monotonic() - killed_at <= TTL + 5
    assert "messages" not in mounted(c)

    a3 = app_server_factory(env=a_env(redis_url, key, db))
    assert wait_until(
        lambda: requests.get(c.url + "/messages", timeout=5).status_code == 200, timeout=2 * HEARTBEAT + 1
    )
    assert requests.get(f"{c.url}/distribution/healthcheck/{key}", timeout=10).status_code == 200
    assert stats(a3)["stats"]["calls_served"] >= 1


def test_forged_unsigned_stale_and_replayed_calls_are_refused_and_counted(
    app_server_factory, redis_url, names
):
    key, db = names["key"], names["db"]
    a = app_server_factory(env=a_env(redis_url, key, db))
    partition = Names("kdk:dist", key)
    queue = partition.calls("messages")
    client = redis.Redis.from_url(redis_url)
    signer = Signer(SECRET.encode(), key, max_skew=60)
    forger = Signer(b"not-the-secret", key, max_skew=60)

    def call(text):
        return {
            "call": uuid.uuid4().hex,
            "path": "messages",
            "method": "create",
            "id": None,
            "data": {"text": text},
            "query": {},
            "route": {},
            "user": None,
            "from": "intruder",
            "ping": False,
            "deadline": int(time.time() * 1000) + 60_000,
        }

    try:
        genuine = signer.seal("call", call("replayed"))
        payload = json.loads(signer.seal("call", call("stale")).split(b".", 2)[2])
        payload["ts"] -= 3_600_000
        stale = _resign(SECRET.encode(), payload)
        client.rpush(queue, json.dumps(call("unsigned")))  # plain JSON, no signature
        client.rpush(queue, forger.seal("call", call("forged")))  # signed with another secret
        client.rpush(queue, stale)  # a valid signature, an hour old
        client.rpush(queue, genuine, genuine)  # the second copy is a replay
        client.publish(partition.events, forger.seal("event", {"origin": "x"}))

        def counters():
            return stats(a)["stats"]

        assert wait_until(lambda: counters()["refused_replayed"] == 1, timeout=10), counters()
        assert wait_until(lambda: counters()["refused_forged"] == 2, timeout=10), counters()
        counted = counters()
        assert (counted["refused_unsigned"], counted["refused_stale"]) == (1, 1)
        texts = [m["text"] for m in requests.get(a.url + "/messages", timeout=5).json()["data"]]
        assert texts == ["replayed"]  # executed exactly once; nothing else ran
    finally:
        client.close()


def _resign(secret, payload):
    import hashlib
    import hmac

    from kdk_app.distributed.envelope import PREFIX, canonical

    raw = canonical(payload)
    return PREFIX + hmac.new(secret, raw, hashlib.sha256).hexdigest().encode() + b"." + raw


def test_events_of_a_remote_service_never_echo_back_to_the_provider_through_sync(
    app_server_factory, redis_url, names
):
    key, db = names["key"], names["db"]
    provider_env = a_env(redis_url, key, db)
    del provider_env["KDK_CONFIGURE"]  # keep the test config's recorder of synced events
    a = app_server_factory(env=provider_env)
    c = app_server_factory(env=c_env(redis_url, key, db))
    assert wait_until(lambda: "messages" in mounted(c), timeout=2 * HEARTBEAT + 1)
    client = Listener(c.url)
    try:
        requests.post(a.url + "/messages", json={"text": "once"}, timeout=10)
        assert wait_until(lambda: len(client.named("messages created")) == 1, timeout=10)
        # A marker through A's own sync bus, to know that anything C re-published has arrived.
        requests.post(a.url + "/messages", json={"text": "marker"}, timeout=10)
        assert wait_until(lambda: len(client.named("messages created")) == 2, timeout=10)
        time.sleep(0.5)  # give an echo, if any, the time to come back
        assert requests.get(a.url + "/heard", timeout=5).json() == []
    finally:
        client.close()
