"""Bad input gets a 400 in the Feathers shape on every transport, never a 500 or a lost answer.

Each test replays a finding of the hardening review against the real server (SecantusDB, the
app as a subprocess): deep nesting, numbers beyond 64 bits, lone surrogates, ``$`` and dotted
keys, broken chunked bodies, and hostile Socket.IO frames.
"""

from __future__ import annotations

import json
import socket
import uuid

import pytest
import requests
from bson import ObjectId
from clients import Listener, wait_until

from kdk_app.core import Application, errors
from kdk_app.core.limits import InputLimits
from kdk_app.fuzz.rawsocket import RawSocket
from kdk_app.services import MemoryService
from kdk_app.transports.packets import FeathersPacket


def nested(depth: int, leaf: object = "x") -> object:
    value: object = leaf
    for _ in range(depth):
        value = [value]
    return value


def raw_post(url: str, path: str, body: str) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    return requests.post(url + path, data=body.encode(), headers=headers, timeout=10)


@pytest.fixture
def socket_client(app_server):
    client = Listener(app_server.url)
    yield client
    client.close()


@pytest.fixture
def raw_socket(app_server):
    client = RawSocket(app_server.url)
    yield client
    client.close()


def assert_bad_request(body: object) -> None:
    assert isinstance(body, dict), body
    assert body["name"] == "BadRequest" and body["code"] == 400, body


# --- nesting ------------------------------------------------------------------------------
def test_data_nested_deeper_than_the_limit_is_refused_over_rest_and_sockets(app_server, raw_socket):
    deep = {"text": "x", "d": nested(600)}
    response = requests.post(app_server.url + "/messages", json=deep, timeout=10)
    assert response.status_code == 400
    assert "nested deeper than 32 levels" in response.json()["message"]
    # python-socketio's own client cannot even encode this; a raw frame can.
    raw_socket.send("42900" + json.dumps(["create", "messages", deep]))
    assert_bad_request(raw_socket.wait_ack(900)[0])
    # Within the limit is fine.
    assert requests.post(app_server.url + "/messages", json={"text": "x", "d": nested(20)}, timeout=10).ok


def test_json_nested_beyond_the_parser_stack_answers_400(app_server):
    response = raw_post(app_server.url, "/messages", "[" * 5000 + "]" * 5000)
    assert response.status_code == 400
    assert response.json()["message"] == "Invalid JSON in request body"


def test_a_stored_record_nested_deeply_still_gets_its_socket_ack_and_events_still_flow(
    app_server, socket_client, mongo_client
):
    # Written behind the API's back (MongoDB itself allows 100 levels): the live page must
    # still get its answers and events.
    tag = uuid.uuid4().hex
    record = {"_id": ObjectId(), "text": "deep", "tag": tag, "d": nested(95)}
    mongo_client["kdk"]["messages"].insert_one(record)
    answer = socket_client.call("find", "messages", {"tag": tag})
    assert answer[0] is None and answer[1]["total"] == 1
    after = {"text": "after", "tag": tag}
    created = requests.post(app_server.url + "/messages", json=after, timeout=10).json()
    heard = lambda: [m.get("_id") for m in socket_client.named("messages created")]  # noqa: E731
    assert wait_until(lambda: created["_id"] in heard())


def test_an_answer_that_cannot_be_encoded_is_acked_with_an_error():
    ack = FeathersPacket(packet_type=3, id=7, data=[None, {"x": object()}])
    encoded = ack.encode()
    assert encoded.startswith("37")
    assert json.loads(encoded[2:])[0]["name"] == "GeneralError"


# --- numbers and text ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    ["$skip=9223372036854775808", "$limit=99999999999999999999", "n=9223372036854775808", "n[$gt]=1e999"],
)
def test_numbers_beyond_64_bits_in_a_query_answer_400(app_server, query):
    response = requests.get(f"{app_server.url}/messages?{query}", timeout=10)
    assert response.status_code == 400, response.text
    assert response.json()["className"] == "bad-request"


@pytest.mark.parametrize("number", ["9223372036854775808", "-9223372036854775809", "1e999", "NaN"])
def test_numbers_beyond_64_bits_in_data_answer_400_over_rest_and_sockets(app_server, raw_socket, number):
    response = raw_post(app_server.url, "/messages", f'{{"text": "x", "extra": {number}}}')
    assert response.status_code == 400, response.text
    raw_socket.send(f'42901["create","messages",{{"text":"x","extra":{number}}}]')
    assert_bad_request(raw_socket.wait_ack(901)[0])
    raw_socket.send(f'42902["find","messages",{{"extra":{number}}}]')
    assert_bad_request(raw_socket.wait_ack(902)[0])


def test_a_lone_surrogate_answers_400_over_rest_and_sockets(app_server, raw_socket):
    response = raw_post(app_server.url, "/messages", '{"text": "\\ud800"}')
    assert response.status_code == 400
    assert response.json()["message"] == "Invalid data: text is not valid Unicode"
    raw_socket.send('42903["create","messages",{"text":"\\udfff"}]')
    assert_bad_request(raw_socket.wait_ack(903)[0])


def test_a_broken_chunked_body_answers_400(app_server):
    head = (
        "POST /messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", app_server.port), timeout=10) as sock:
        sock.sendall(head.encode() + b"zz\r\nabc\r\n0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b"\r\n", 1)[0].split()[1])
    assert 400 <= status < 500


# --- field names --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data", [{"text.x": 1}, {"": 1}, {"x.": 1}, {"$where": 1}, {"$set": {"a": 1}}, {"meta": {"a.b": 1}}]
)
def test_dotted_dollar_and_empty_field_names_are_refused_on_every_write(app_server, data):
    created = requests.post(app_server.url + "/messages", json={"text": "keys", "n": 1}, timeout=10).json()
    url = f"{app_server.url}/messages/{created['_id']}"
    for method, body in (("post", {"text": "x", **data}), ("put", {"text": "x", **data}), ("patch", data)):
        target = app_server.url + "/messages" if method == "post" else url
        response = requests.request(method, target, json=body, timeout=10)
        assert response.status_code == 400, (method, response.text)
        assert "Invalid field name" in response.json()["message"]


def test_a_patch_never_leaves_a_record_that_the_schema_would_refuse(app_server):
    created = requests.post(app_server.url + "/messages", json={"text": "typed", "n": 1}, timeout=10).json()
    url = f"{app_server.url}/messages/{created['_id']}"
    assert requests.patch(url, json={"n.x": "not-an-int"}, timeout=10).status_code == 400
    assert requests.patch(url, json={"n": {"x": 1}}, timeout=10).status_code == 400
    assert requests.get(url, timeout=10).json()["n"] == 1


def test_a_service_can_opt_in_to_special_field_names():
    app = Application()
    strict = app.use("strict", MemoryService())
    relaxed = app.use("relaxed", MemoryService(special_keys=True))
    with pytest.raises(errors.BadRequest):
        strict.create({"a.b": 1})
    assert relaxed.create({"a.b": 1})["a.b"] == 1


def test_input_limits_walk_iteratively_so_no_depth_exhausts_the_stack():
    limits = InputLimits(max_depth=10_000_000)
    limits.check(nested(200_000), "data")  # would overflow any recursive walk
    with pytest.raises(errors.BadRequest):
        InputLimits(max_depth=32).check(nested(33), "data")


# --- socket frames ------------------------------------------------------------------------
def test_client_sent_reserved_events_never_reach_the_connection_handlers(raw_socket):
    raw_socket.send('42904["connect",{"REMOTE_ADDR":"203.0.113.7"}]')
    answer = raw_socket.wait_ack(904)[0]
    assert_bad_request(answer)
    assert "reserved" in answer["message"]
    raw_socket.send('42["disconnect"]')
    raw_socket.send('42905["*","find","messages"]')
    assert_bad_request(raw_socket.wait_ack(905)[0])
    # The server-side connection state is intact: calls still run as this connection.
    answer = raw_socket.call(906, "find", "messages", {"$limit": 1})
    assert answer[0] is None, answer


@pytest.mark.parametrize(
    "frame",
    ['42910["find"', '42910{"a":1}', "42910[]", "42910[1]", '42910"find"', "42910null", "42910" + "[" * 5000],
)
def test_a_malformed_frame_with_an_ack_id_is_answered_with_bad_request(raw_socket, frame):
    raw_socket.send(frame)
    assert_bad_request(raw_socket.wait_ack(910)[0])
    assert raw_socket.call(911, "find", "messages", {"$limit": 1})[0] is None


@pytest.mark.parametrize("frame", ["4", "49", "4x", "44{}", "46", b"\x00\x01binary", "43999[]"])
def test_frames_a_client_should_never_send_leave_the_connection_working(raw_socket, frame):
    raw_socket.send(frame)
    assert raw_socket.call(912, "find", "messages", {"$limit": 1})[0] is None
    assert raw_socket.connected
