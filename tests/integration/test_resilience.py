"""Redis goes away and comes back: every instance keeps serving, and everything reconnects."""

import time
import uuid

import requests
from clients import Listener, wait_until

from kdk_app.embedded import free_port, start_secantusdb


def healthy(server):
    response = requests.get(server.url + "/healthcheck", timeout=5)
    return response.status_code, response.json()


def heard_texts(server):
    return [r["text"] for r in requests.get(server.url + "/heard", timeout=5).json()]


def test_instances_survive_a_redis_outage_and_recover_by_themselves(app_server_factory, redis_server_factory):
    redis_process, redis_url = redis_server_factory()
    env = {"REDIS_URL": redis_url, "KDK_MONGO__DATABASE": f"res_{uuid.uuid4().hex[:10]}"}
    instance_a = app_server_factory(env=env)
    instance_b = app_server_factory(env=env)
    on_a, on_b = Listener(instance_a.url), Listener(instance_b.url)
    try:
        requests.post(instance_a.url + "/messages", json={"text": "before"}, timeout=5)
        assert wait_until(lambda: len(on_b.named("messages created")) == 1)
        assert wait_until(lambda: heard_texts(instance_b) == ["before"])

        redis_process.stop()
        started = time.monotonic()
        response = requests.post(instance_a.url + "/messages", json={"text": "during"}, timeout=5)
        assert response.status_code == 201 and time.monotonic() - started < 2
        assert wait_until(lambda: "during" in [m["text"] for m in on_a.named("messages created")])
        assert (
            requests.get(instance_b.url + "/messages", timeout=5).json()["total"] == 2
        )  # MongoDB is the truth
        status, body = healthy(instance_a)
        assert status == 503 and body["isRedisRunning"] is False and body["isDatabaseRunning"] is True

        redis_process.start()
        assert wait_until(lambda: healthy(instance_a)[0] == 200 and healthy(instance_b)[0] == 200, timeout=15)
        # Server-side listeners on B catch up on what A published while Redis was down.
        assert wait_until(lambda: heard_texts(instance_b) == ["before", "during"], timeout=15)

        # Socket fan-out across instances works again without any restart.
        def delivered_after():
            requests.post(instance_a.url + "/messages", json={"text": f"after-{time.monotonic()}"}, timeout=5)
            return wait_until(
                lambda: any(m["text"].startswith("after") for m in on_b.named("messages created")), timeout=1
            )

        assert wait_until(delivered_after, timeout=15, interval=0.1)
    finally:
        on_a.close()
        on_b.close()


def test_a_mongodb_outage_answers_503_and_recovers_by_itself(app_server_factory, tmp_path):
    port = free_port()
    database, url = start_secantusdb(":memory:", port=port, log_path=tmp_path / "db.log")
    try:
        server = app_server_factory(env={"MONGO_URL": url, "KDK_MONGO__SERVER_SELECTION_TIMEOUT_MS": "1000"})
        assert requests.post(server.url + "/messages", json={"text": "up"}, timeout=5).status_code == 201

        database.stop()
        started = time.monotonic()
        response = requests.get(server.url + "/messages", timeout=10)
        assert response.status_code == 503 and time.monotonic() - started < 3
        assert response.json()["name"] == "Unavailable" and "Traceback" not in response.text
        assert requests.post(server.url + "/messages", json={"text": "x"}, timeout=10).status_code == 503
        status, body = healthy(server)
        assert status == 503 and body["isDatabaseRunning"] is False

        database.start()
        assert wait_until(lambda: healthy(server)[0] == 200, timeout=20)
        assert requests.post(server.url + "/messages", json={"text": "back"}, timeout=5).status_code == 201
    finally:
        database.stop()
