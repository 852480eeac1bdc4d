"""A hung or stopped MongoDB costs a call at most `mongo.timeout_ms`, queued calls included.

SecantusDB is paused with SIGSTOP: its listening socket stays open, so connections are
accepted by the kernel and then never answered, as with a MongoDB stuck on a disk or a network
partition. The app runs under gunicorn with 2 gevent workers and a pool of 2 connections per
worker, so that most of the parallel requests queue for a connection behind the hung ones.
"""

import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from clients import wait_until

from kdk_app.core.errors import Unavailable
from kdk_app.database import MongoProvider
from kdk_app.embedded import free_port, start_secantusdb
from kdk_app.services.mongo import MongoService

BOUND_S = 1.0  # mongo.timeout_ms below
SLACK_S = 0.15  # HTTP and gunicorn on a loaded test machine: the deadline itself is hard
PARALLEL = 20


@pytest.fixture
def database(tmp_path):
    process, url = start_secantusdb(":memory:", port=free_port(), log_path=tmp_path / "secantusdb.log")
    # SIGSTOP must reach the server itself, not a launcher whose child keeps serving.
    assert not any(Path(f).read_text().strip() for f in Path(f"/proc/{process.pid}/task").glob("*/children"))
    try:
        yield process, url
    finally:
        if process.is_running():
            os.kill(process.pid, signal.SIGCONT)
        process.stop()


def start_app(app_server_factory, url):
    return app_server_factory(
        env={
            "MONGO_URL": url,
            "KDK_MONGO__DATABASE": f"hung_{uuid.uuid4().hex[:10]}",
            "KDK_MONGO__TIMEOUT_MS": str(int(BOUND_S * 1000)),
            "KDK_MONGO__MAX_POOL_SIZE": "2",
        },
        workers=2,
    )


def timed_call(server, index):
    started = time.monotonic()
    if index % 2:
        response = requests.post(server.url + "/messages", json={"text": f"m{index}"}, timeout=10)
    else:
        response = requests.get(server.url + "/messages", timeout=10)
    return response, time.monotonic() - started


def parallel_calls(server, count=PARALLEL):
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda i: timed_call(server, i), range(count)))


def assert_unavailable(response):
    body = response.json()
    assert response.status_code == 503, response.text
    assert body["name"] == "Unavailable" and body["code"] == 503 and body["className"] == "unavailable"
    assert "Traceback" not in response.text


def serves(server):
    return all(r.status_code in (200, 201) for r, _ in parallel_calls(server, 4))


def test_a_hung_mongodb_answers_every_queued_call_503_within_the_bound(app_server_factory, database):
    process, url = database
    server = start_app(app_server_factory, url)
    assert wait_until(lambda: serves(server), timeout=10)  # both workers hold pooled connections

    os.kill(process.pid, signal.SIGSTOP)
    try:
        results = parallel_calls(server)
        for response, elapsed in results:
            assert_unavailable(response)
            assert elapsed < BOUND_S + SLACK_S, f"{elapsed:.2f}s"
        # A second wave, once the pools are broken and the server is known to be unreachable.
        for response, elapsed in parallel_calls(server):
            assert_unavailable(response)
            assert elapsed < BOUND_S + SLACK_S, f"{elapsed:.2f}s"
        # /healthcheck (healthcheck.timeout_ms, 1 s by default) is bounded the same way.
        started = time.monotonic()
        health = requests.get(server.url + "/healthcheck", timeout=10)
        assert health.status_code == 503 and health.json()["isDatabaseRunning"] is False
        assert time.monotonic() - started < BOUND_S + SLACK_S
    finally:
        os.kill(process.pid, signal.SIGCONT)

    started = time.monotonic()
    assert wait_until(lambda: serves(server), timeout=10)
    assert time.monotonic() - started < 5
    assert requests.get(server.url + "/healthcheck", timeout=5).status_code == 200


def test_a_stopped_mongodb_answers_503_within_the_bound_and_recovers(app_server_factory, database):
    process, url = database
    server = start_app(app_server_factory, url)
    assert wait_until(lambda: serves(server), timeout=10)

    process.stop()
    started = time.monotonic()
    response = requests.get(server.url + "/messages", timeout=10)
    assert_unavailable(response)
    assert time.monotonic() - started < BOUND_S + 0.2
    for response, elapsed in parallel_calls(server):
        assert_unavailable(response)
        assert elapsed < BOUND_S + SLACK_S, f"{elapsed:.2f}s"

    process.start()  # same port, an empty store
    started = time.monotonic()
    assert wait_until(lambda: serves(server), timeout=10)
    assert time.monotonic() - started < 5


@pytest.fixture(scope="module")
def fail_point_service(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("fail-points") / "secantusdb.log"
    process, url = start_secantusdb(":memory:", log_path=log_path, extra_args=["--enable-test-commands"])
    provider = MongoProvider(url + "hung_fail_points", timeout_ms=int(BOUND_S * 1000))
    try:
        yield MongoService("things", database=provider.database), provider.client.admin
    finally:
        provider.close()
        process.stop()


@pytest.mark.parametrize(
    "fail_point",
    [
        {"failCommands": ["find"], "errorCode": 50},  # MaxTimeMSExpired: ExecutionTimeout
        {
            "failCommands": ["insert"],
            "writeConcernError": {
                "code": 64,
                "errmsg": "waiting for replication",
                "errInfo": {"wtimeout": True},
            },
        },  # WTimeoutError
        {"failCommands": ["find", "insert"], "blockConnection": True, "blockTimeMS": 3000},  # NetworkTimeout
    ],
    ids=["execution-timeout", "write-concern-timeout", "slow-command"],
)
def test_every_kind_of_database_timeout_is_a_503_within_the_bound(fail_point_service, fail_point):
    service, admin = fail_point_service
    call = service.find if "find" in fail_point["failCommands"] else lambda: service.create({"text": "x"})
    admin.command("configureFailPoint", "failCommand", mode={"times": 1}, data=fail_point)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        call()
    assert time.monotonic() - started < BOUND_S + 0.2
