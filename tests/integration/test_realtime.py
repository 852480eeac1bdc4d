"""Socket.IO in the Feathers protocol, with Python clients (python-socketio) against real servers."""

import time
import uuid

import pytest
import requests
from clients import Listener, wait_until


@pytest.fixture
def listeners():
    opened = []

    def open_listener(url, **kwargs):
        listener = Listener(url, **kwargs)
        opened.append(listener)
        return listener

    yield open_listener
    for listener in opened:
        listener.close()


def isolated_db():
    return {"KDK_MONGO__DATABASE": f"rt_{uuid.uuid4().hex[:10]}"}


def test_socket_calls_answer_with_error_first_acks(app_server, listeners):
    client = listeners(app_server.url)
    error, created = client.call("create", "messages", {"text": "from python", "n": 1}, {})
    assert error is None and len(created["_id"]) == 24
    error, page = client.call("find", "messages", {"_id": created["_id"]})
    assert page["total"] == 1 and page["data"][0]["text"] == "from python"
    error, patched = client.call("patch", "messages", created["_id"], {"n": 2}, {})
    assert patched["n"] == 2
    error, removed = client.call("remove", "messages", created["_id"], {})
    assert removed["_id"] == created["_id"]


@pytest.mark.parametrize(
    "args, code, name",
    [
        (("find", "nope", {}), 404, "NotFound"),
        (("frobnicate", "messages", {}, {}), 405, "MethodNotAllowed"),
        (("get", "messages", "x", {}, "extra", "more"), 400, "BadRequest"),
        (("find", 42, {}), 400, "BadRequest"),
        (("find", "messages", "not a query"), 400, "BadRequest"),
        (("find", "messages", {"n": {"$where": "1"}}), 400, "BadRequest"),
        (("get", "messages", "568225fbfe21222432e836ff", {}), 404, "NotFound"),
        (("create", "messages", {"n": "x"}, {}), 400, "BadRequest"),
    ],
)
def test_bad_socket_messages_get_an_error_ack_and_the_connection_survives(
    app_server, listeners, args, code, name
):
    client = listeners(app_server.url)
    answer = client.client.call(args[0], args[1:], timeout=10)
    error = answer if isinstance(answer, dict) else answer[0]
    assert (error["name"], error["code"]) == (name, code)
    assert "stack" not in error
    assert client.call("find", "messages", {"$limit": 0})[0] is None


def test_rest_and_socket_changes_reach_socket_clients_as_events(app_server, listeners):
    watcher = listeners(app_server.url)
    actor = listeners(app_server.url)
    created = requests.post(app_server.url + "/messages", json={"text": "rest"}, timeout=10).json()
    _, via_socket = actor.call("create", "messages", {"text": "socket"}, {})
    requests.patch(f"{app_server.url}/messages/{created['_id']}", json={"n": 5}, timeout=10)
    requests.delete(f"{app_server.url}/messages/{created['_id']}", timeout=10)
    assert wait_until(lambda: len(watcher.named("messages removed")) == 1)
    assert [m["text"] for m in watcher.named("messages created")] == ["rest", "socket"]
    assert watcher.named("messages patched")[0]["n"] == 5
    assert watcher.named("messages removed")[0]["_id"] == created["_id"]
    assert via_socket["_id"] in [m["_id"] for m in actor.named("messages created")]


def test_long_polling_clients_work_against_a_single_worker(app_server, listeners):
    client = listeners(app_server.url, transports=("polling",))
    assert client.client.transport() == "polling"
    _, created = client.call("create", "messages", {"text": "polled"}, {})
    assert wait_until(lambda: created["_id"] in [m["_id"] for m in client.named("messages created")])


def test_events_fan_out_across_gunicorn_workers_and_instances_exactly_once_in_order(
    app_server_factory, redis_url, listeners
):
    env = {"REDIS_URL": redis_url, **isolated_db()}
    instance_a = app_server_factory(env=env, workers=2)
    instance_b = app_server_factory(env=env, workers=2)
    clients = [listeners(instance_b.url) for _ in range(6)]  # spread over B's two workers
    session = requests.Session()
    ids = []
    for i in range(20):
        record = session.post(instance_a.url + "/messages", json={"text": f"m{i}", "n": i}, timeout=10).json()
        ids.append(record["_id"])
        session.patch(f"{instance_a.url}/messages/{record['_id']}", json={"n": i + 100}, timeout=10)

    def complete():
        return all(len(c.named("messages patched")) >= 20 for c in clients)

    assert wait_until(complete, timeout=20)
    time.sleep(0.3)  # a grace period to catch duplicates that would arrive late
    for client in clients:
        created = client.named("messages created")
        patched = client.named("messages patched")
        assert [m["_id"] for m in created] == ids  # each once, in order
        assert [m["_id"] for m in patched] == ids
        names = [event for event, data in client.events if event.startswith("messages ")]
        for record_id in ids:
            per_record = [e for e, d in client.events if d and d.get("_id") == record_id]
            assert per_record == ["messages created", "messages patched"]
        assert len(names) == 40


def test_health_reports_redis(app_server_factory, redis_url):
    server = app_server_factory(env={"REDIS_URL": redis_url, **isolated_db()})
    body = requests.get(server.url + "/healthcheck", timeout=10).json()
    flags = {k: v for k, v in body.items() if k != "mongo"}  # "mongo": the replica set's members
    assert flags == {"isRunning": True, "isDatabaseRunning": True, "isRedisRunning": True}
