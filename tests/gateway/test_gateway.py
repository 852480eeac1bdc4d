"""The proxy_table gateway: rules in isolation, then a real gateway app in front of a real target."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests
import socketio
from clients import wait_until
from servers import AppServerFactory

from kdk_app.embedded import free_port
from kdk_app.gateway import parse_rule, parse_table
from kdk_app.gateway.headers import request_headers, response_headers
from kdk_app.gateway.table import find_rule


# --- rules -------------------------------------------------------------------------------
def test_the_kdk_seed_example_rewrites_the_context_away():
    rule = parse_rule(
        "/api/service",
        {"target": "http://localhost:8082", "change_origin": True, "path_rewrite": {"^/api/service": "/api"}},
    )
    assert rule.matches("/api/service/1") and rule.rewrite("/api/service/1") == "/api/1"
    assert (rule.host, rule.port, rule.netloc) == ("localhost", 8082, "localhost:8082")


def test_contexts_match_by_prefix_or_whole_segment_first_entry_wins():
    rules = parse_table(
        {
            "/api/special": "http://special:1",
            "/api": "http://api:2",
            "/geo": {"target": "http://geo:3", "match": "segment"},
        }
    )
    assert find_rule(rules, "/api/special/x").host == "special"
    assert find_rule(rules, "/api/other").host == "api"
    assert find_rule(rules, "/apiary").host == "api"  # prefix, as http-proxy-middleware
    assert find_rule(rules, "/geo").host == "geo" and find_rule(rules, "/geo/x").host == "geo"
    assert find_rule(rules, "/geojson") is None  # segment
    assert find_rule(rules, "/other") is None


def test_rewrites_apply_the_first_matching_rule_in_order_and_the_target_path():
    rule = parse_rule(
        "/v",
        {
            "target": "http://up:9/base",
            "pathRewrite": {"^/v/(\\w+)/old": "/$1/new", "^/v": "", "never": "x"},
            "changeOrigin": True,
        },
    )
    assert rule.rewrite("/v/maps/old/1") == "/base/maps/new/1"  # first rule only, $1 works
    assert rule.rewrite("/v/maps") == "/base/maps"
    assert rule.rewrite("/v") == "/base/"
    assert rule.change_origin


def test_bad_entries_are_refused_at_startup():
    with pytest.raises(ValueError, match="target"):
        parse_rule("/x", {"target": "ftp://nope"})
    with pytest.raises(ValueError, match="unknown"):
        parse_rule("/x", {"target": "http://a", "secure": False})


def test_headers_drop_hop_by_hop_set_host_and_forwarded_for():
    environ = {
        "HTTP_HOST": "gateway:80",
        "HTTP_CONNECTION": "keep-alive, X-Private",
        "HTTP_X_PRIVATE": "1",
        "HTTP_AUTHORIZATION": "Bearer t",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": "2",
        "REMOTE_ADDR": "10.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    rule = parse_rule(
        "/a", {"target": "http://up:81", "change_origin": True, "xfwd": True, "headers": {"X-K": "v"}}
    )
    headers = dict(request_headers(environ, rule))
    assert headers["Host"] == "up:81" and headers["Authorization"] == "Bearer t"
    assert "Connection" not in headers and "X-Private" not in headers and "Transfer-Encoding" not in headers
    assert headers["X-Forwarded-For"] == "10.0.0.1" and headers["X-Forwarded-Host"] == "gateway:80"
    assert headers["X-K"] == "v" and headers["Content-Length"] == "2"
    assert dict(request_headers(environ, parse_rule("/a", "http://up:81")))["Host"] == "gateway:80"
    assert response_headers([("Connection", "close"), ("Keep-Alive", "5"), ("X-A", "1")]) == [("X-A", "1")]


# --- a gateway app in front of a target app ----------------------------------------------
class FakeUpstream:
    """A TCP server that answers every connection with ``reply`` (None: never answers)."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.reply is None:
                self.held.append(conn)
                continue
            try:
                conn.recv(65536)
                conn.sendall(self.reply)
            finally:
                conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(scope="module")
def upstreams():
    garbage, silent = FakeUpstream(b"THIS IS NOT HTTP\r\n\r\n"), FakeUpstream(None)
    yield {"garbage": garbage.port, "silent": silent.port, "refused": free_port()}
    garbage.close()
    silent.close()


@pytest.fixture(scope="module")
def app_servers(mongo_url, tmp_path_factory):
    """Servers shared by this module's tests (each test leaves them as it found them)."""
    factory = AppServerFactory(mongo_url, tmp_path_factory.mktemp("gateway"))
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def gateway_pair(app_servers, upstreams):
    target = app_servers(
        env={
            "KDK_MAX_BODY_SIZE": str(20 * 1024 * 1024),
            "KDK_API_PATH": "/api",
            "KDK_SERVICES__BLOBS": json.dumps({"adapter": "memory"}),
        }
    )
    table = {
        "/api/service": {
            "target": target.url,
            "change_origin": True,
            "path_rewrite": {"^/api/service": "/api"},
        },
        "/t": {"target": target.url, "match": "segment", "ws": True, "path_rewrite": {"^/t": ""}},
        "/refused": f"http://127.0.0.1:{upstreams['refused']}",
        "/silent": {"target": f"http://127.0.0.1:{upstreams['silent']}", "timeout": 0.5},
        "/garbage": f"http://127.0.0.1:{upstreams['garbage']}",
    }
    gateway = app_servers(env={"KDK_PROXY_TABLE": json.dumps(table)})
    return gateway, target


def test_rest_calls_and_large_bodies_stream_through_with_rewritten_paths(gateway_pair):
    gateway, target = gateway_pair
    big = {"payload": "x" * (5 * 1024 * 1024)}
    response = requests.post(gateway.url + "/api/service/blobs", json=big, timeout=30)
    assert response.status_code == 201, response.text[:200]
    assert response.json()["payload"] == big["payload"]
    record_id = response.json()["id"]

    def chunks():  # no Content-Length: requests sends it chunked
        body = json.dumps({"payload": "y" * (3 * 1024 * 1024)}).encode()
        for start in range(0, len(body), 100_000):
            yield body[start : start + 100_000]

    chunked = requests.put(f"{gateway.url}/api/service/blobs/{record_id}", data=chunks(), timeout=30)
    assert chunked.status_code == 200, chunked.text[:200]
    assert len(chunked.json()["payload"]) == 3 * 1024 * 1024
    got = requests.get(f"{gateway.url}/api/service/blobs/{record_id}", timeout=10)
    assert (
        got.status_code == 200
        and got.json() == requests.get(f"{target.url}/api/blobs/{record_id}", timeout=10).json()
    )
    missing = requests.get(gateway.url + "/api/service/nothing", timeout=10)
    assert missing.status_code == 404 and missing.json()["name"] == "NotFound"  # the target's own error
    # The gateway's own routes still answer.
    assert requests.get(gateway.url + "/healthcheck", timeout=10).status_code in (200, 503)


@pytest.mark.parametrize(
    "path, status, name, class_name",
    [
        ("/refused/x", 504, "GatewayTimeout", "gateway-timeout"),
        ("/silent/x", 504, "GatewayTimeout", "gateway-timeout"),
        ("/garbage/x", 502, "BadGateway", "bad-gateway"),
    ],
)
def test_upstream_failures_become_feathers_errors(gateway_pair, path, status, name, class_name):
    gateway, _ = gateway_pair
    started = time.monotonic()
    response = requests.post(gateway.url + path, json={"a": 1}, timeout=10)
    assert response.status_code == status
    body = response.json()
    assert (body["name"], body["code"], body["className"]) == (name, status, class_name)
    assert time.monotonic() - started < 3


def test_socketio_websocket_clients_are_tunnelled_to_the_target(gateway_pair):
    gateway, _ = gateway_pair
    events = []
    client = socketio.Client(reconnection=False)
    client.on("messages created", lambda data: events.append(data))
    client.connect(gateway.url, socketio_path="t/socket.io", transports=["websocket"], wait_timeout=10)
    try:
        assert client.transport() == "websocket"
        error, created = client.call("create", ("messages", {"text": "through the gateway"}, {}), timeout=10)
        assert error is None and created["text"] == "through the gateway"
        assert wait_until(lambda: any(e["_id"] == created["_id"] for e in events), timeout=10)
        error, found = client.call("get", ("messages", created["_id"], {}), timeout=10)
        assert error is None and found == created
    finally:
        client.disconnect()
