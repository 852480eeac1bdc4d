"""A replica-set election costs a call a retry or a 503, never a 500; health names the members.

SecantusDB is a single-node replica set. Started with ``--enable-test-commands`` it takes
``configureFailPoint`` ``failCommand``, so the errors a client sees during an election (and
dropped connections) are injected on exactly the commands a REST call runs. One app server and
one SecantusDB serve the whole module; every test turns the fail point off behind it.
"""

import time
import uuid

import pymongo
import pytest
import requests
from clients import wait_until
from servers import start_app_server

from kdk_app.embedded import start_secantusdb

BOUND_S = 1.0  # mongo.timeout_ms (the default)
SHORT_BOUND_S = 0.5  # mongo.timeout_ms of the server that sweeps every code, to keep it short
SLACK_S = 0.5  # HTTP and a loaded test machine
# pymongo waits for a server in steps of this much without looking at the deadline, so a call
# whose retries find no server may end up to one step after it (see the README).
SELECTION_STEP_S = 0.5
# NotWritablePrimary, NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary, InterruptedAtShutdown,
# InterruptedDueToReplStateChange, PrimarySteppedDown, ShutdownInProgress, HostUnreachable,
# HostNotFound, NetworkTimeout, SocketException.
ELECTION_CODES = [10107, 13435, 13436, 11600, 11602, 189, 91, 6, 7, 89, 9001]
# (command the fail point hits, HTTP method, path suffix, body, status of a success)
CALLS = {
    "insert": ("post", "", {"text": "x"}, 201),
    "find": ("get", "", None, 200),
}


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("elections")
    process, url = start_secantusdb(
        ":memory:", log_path=log_dir / "secantusdb.log", extra_args=["--enable-test-commands"]
    )
    try:
        yield url
    finally:
        process.stop()


@pytest.fixture(scope="module")
def admin(database):
    client = pymongo.MongoClient(database, directConnection=True, serverSelectionTimeoutMS=5000)
    try:
        yield client.admin
    finally:
        client.close()


@pytest.fixture(scope="module")
def server(database, tmp_path_factory):
    env = {"KDK_MONGO__DATABASE": f"elections_{uuid.uuid4().hex[:10]}"}
    app = start_app_server(database, tmp_path_factory.mktemp("elections-app"), env)
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture(scope="module")
def short_server(database, tmp_path_factory):
    env = {
        "KDK_MONGO__DATABASE": f"elections_{uuid.uuid4().hex[:10]}",
        "KDK_MONGO__TIMEOUT_MS": str(int(SHORT_BOUND_S * 1000)),
    }
    app = start_app_server(database, tmp_path_factory.mktemp("elections-short"), env)
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture(autouse=True)
def fail_point_off(admin, server):
    yield
    admin.command("configureFailPoint", "failCommand", mode="off")
    # The app's client may still have the server marked Unknown: wait for its next heartbeat.
    assert wait_until(lambda: call(server, "find").status_code == 200, timeout=5), server.log_text()


def fail(admin, command, times=None, *, code=None, **data):
    """Arm ``failCommand``: the next ``times`` runs of ``command`` (all runs when ``None``, an
    election longer than the call's bound) fail with ``code`` or as ``data`` says."""
    data = {"failCommands": [command], **data}
    if code is not None:
        data["errorCode"] = code
    mode = "alwaysOn" if times is None else {"times": times}
    admin.command("configureFailPoint", "failCommand", mode=mode, data=data)


def call(server, command, text=None):
    method, suffix, body, _ = CALLS[command]
    if body is not None:
        body = {**body, "text": text or body["text"]}
    return requests.request(method, server.url + "/messages" + suffix, json=body, timeout=10)


def timed_call(server, command, text=None):
    started = time.monotonic()
    response = call(server, command, text)
    return response, time.monotonic() - started


def assert_unavailable(response):
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["name"] == "Unavailable" and body["code"] == 503 and body["className"] == "unavailable"
    assert "Traceback" not in response.text


def stored(server, text):
    return requests.get(server.url + "/messages", params={"text": text}, timeout=10).json()["total"]


@pytest.mark.parametrize("command", CALLS)
@pytest.mark.parametrize("fault", [{"code": 10107}, {"code": 11600}, {"closeConnection": True}])
def test_one_election_error_is_retried_by_pymongo_and_the_call_succeeds(server, admin, command, fault):
    fail(admin, command, 1, **fault)
    text = f"retried-{uuid.uuid4().hex}"
    response, elapsed = timed_call(server, command, text)
    assert response.status_code == CALLS[command][3], response.text
    assert elapsed < BOUND_S + SLACK_S  # the retry fits the call's own bound
    if command == "insert":
        assert stored(server, text) == 1  # retried, and written once


@pytest.mark.parametrize("command", CALLS)
def test_errors_that_need_no_new_primary_are_retried_as_often_as_the_bound_allows(server, admin, command):
    # Under timeoutMS pymongo retries until the deadline, not once; HostUnreachable does not
    # mark the server Unknown, so five failures in a row cost a few milliseconds.
    fail(admin, command, 5, code=6)
    response, elapsed = timed_call(server, command)
    assert response.status_code == CALLS[command][3], response.text
    assert elapsed < BOUND_S + SLACK_S


@pytest.mark.parametrize("command", CALLS)
def test_an_election_longer_than_the_bound_is_a_503_for_every_election_code(short_server, admin, command):
    for code in ELECTION_CODES:
        fail(admin, command, code=code)
        response, elapsed = timed_call(short_server, command)
        assert_unavailable(response)
        # The last retry may wait for a server one selection step past the bound.
        assert elapsed < SHORT_BOUND_S + SELECTION_STEP_S + SLACK_S, code
        admin.command("configureFailPoint", "failCommand", mode="off")
        # Back to normal before the next code, so each 503 comes from that code alone.
        assert wait_until(lambda: call(short_server, "find").status_code == 200, timeout=5), code


@pytest.mark.parametrize("command", CALLS)
def test_connections_dropped_for_longer_than_the_bound_are_a_503(server, admin, command):
    fail(admin, command, closeConnection=True)
    response, elapsed = timed_call(server, command)
    assert_unavailable(response)
    # A dropped connection marks the server Unknown with no immediate re-check, so the last
    # retry waits in selection and may overshoot the bound by one step.
    assert elapsed < BOUND_S + SELECTION_STEP_S + SLACK_S


def test_a_write_pymongo_cannot_retry_answers_503_for_an_election_code(server, admin):
    # update_many (a multi patch) is not a retryable write, so the server's error itself comes
    # back; these codes are not turned into NotPrimaryError by pymongo.
    tag = f"multi-{uuid.uuid4().hex}"
    assert (
        requests.post(server.url + "/messages", json={"text": "m", "tag": tag}, timeout=10).status_code == 201
    )
    for code in (6, 7, 89, 9001):
        fail(admin, "update", 1, code=code)
        response = requests.patch(
            server.url + "/messages", params={"tag": tag}, json={"text": "n"}, timeout=10
        )
        assert_unavailable(response)


def test_an_error_labelled_transient_is_a_503_whatever_its_code(server, admin):
    # WriteConflict (112) alone would be a 500; the label says another attempt may succeed.
    fail(admin, "insert", code=112, errorLabels=["TransientTransactionError"])
    assert_unavailable(call(server, "insert"))


def test_service_is_normal_once_the_election_is_over(server, admin):
    fail(admin, "insert", code=189)
    assert_unavailable(call(server, "insert"))
    admin.command("configureFailPoint", "failCommand", mode="off")
    text = f"after-{uuid.uuid4().hex}"
    assert wait_until(lambda: call(server, "insert", text).status_code == 201, timeout=5)
    assert call(server, "find").status_code == 200
    assert stored(server, text) == 1


def test_healthcheck_reports_the_primary_and_no_secondaries_on_a_single_node(server, admin):
    hello = admin.command("hello")
    response = requests.get(server.url + "/healthcheck", timeout=5)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["isRunning"] is True and body["isDatabaseRunning"] is True
    mongo = body["mongo"]
    assert mongo["replicaSet"] == hello["setName"]
    assert mongo["primary"] == hello["primary"]
    assert mongo["secondaries"] == []
    assert mongo["members"] == [{"name": hello["primary"], "state": "PRIMARY", "health": 1.0}]
    assert mongo["source"] == "replSetGetStatus"


def test_healthcheck_falls_back_to_hello_when_replsetgetstatus_is_refused(server, admin):
    hello = admin.command("hello")
    fail(admin, "replSetGetStatus", 1, code=13)  # Unauthorized, as for a restricted user
    body = requests.get(server.url + "/healthcheck", timeout=5).json()
    assert body["isDatabaseRunning"] is True
    assert body["mongo"] == {
        "replicaSet": hello["setName"],
        "primary": hello["primary"],
        "secondaries": [],
        "arbiters": [],
        "source": "hello",
    }
