"""Large socket answers against the real app: 8 MB pages over the websocket transport are
acked every time (``kdk serve`` and gunicorn), and an answer over ``socketio.max_answer_size``
gets a 413 error ack instead of silence."""

from __future__ import annotations

import uuid

import pytest
import requests
from clients import Listener

RECORD_TEXT = 1_000_000  # characters of each record: ~1 MB
LIMIT = 9_500_000  # socketio.max_answer_size of these servers: 8 records fit, 10 do not


@pytest.fixture(params=[0, 2], ids=["kdk-serve", "gunicorn-2-workers"])
def server(request, app_server_factory):
    env = {
        "KDK_MONGO__DATABASE": f"large_{uuid.uuid4().hex[:8]}",  # a fresh messages collection
        "KDK_MAX_BODY_SIZE": "2000000",
        "KDK_SOCKETIO__MAX_ANSWER_SIZE": str(LIMIT),
    }
    server = app_server_factory(env, workers=request.param)
    for n in range(10):
        body = {"text": chr(ord("a") + n) * RECORD_TEXT, "n": n}
        assert requests.post(f"{server.url}/messages", json=body, timeout=30).status_code == 201
    return server


def test_8_mb_pages_are_acked_over_websocket_five_times_in_a_row(server):
    rest = requests.get(f"{server.url}/messages", params={"$limit": 8, "$sort[n]": 1}, timeout=30)
    assert rest.status_code == 200 and len(rest.content) > 8_000_000
    listener = Listener(server.url, transports=["websocket"], reconnection=False)
    try:
        for _ in range(5):
            error, page = listener.call("find", "messages", {"$limit": 8, "$sort": {"n": 1}}, timeout=30)
            assert error is None
            assert [m["n"] for m in page["data"]] == list(range(8))
            assert all(len(m["text"]) == RECORD_TEXT for m in page["data"])
            assert page["data"] == rest.json()["data"]
    finally:
        listener.close()


def test_an_answer_over_the_bound_gets_payload_too_large_and_the_socket_keeps_working(server):
    listener = Listener(server.url, transports=["websocket"], reconnection=False)
    try:
        error = listener.call("find", "messages", {"$limit": 10}, timeout=30)
        assert error["name"] == "PayloadTooLarge" and error["code"] == 413
        assert error["className"] == "payload-too-large"
        assert error["data"]["limit"] == LIMIT and error["data"]["size"] > LIMIT
        error, page = listener.call("find", "messages", {"$limit": 1, "$select": ["n"]}, timeout=10)
        assert error is None and page["total"] == 10
    finally:
        listener.close()
