"""``GET /socket.io/socket.io.js`` serves the official Socket.IO client, as Node's server does:
in process with Flask's test client, then over a real ``kdk serve``, where node loads the served
file and makes a Feathers call with it."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import requests
from flask import Flask
from node import NODE, tail

from kdk_app import create_app
from kdk_app.transports.client_script import VENDOR_DIR

MINIFIED = (VENDOR_DIR / "socket.io.min.js").read_bytes()
PINNED = json.loads((VENDOR_DIR / "vendor.json").read_text())["packages"]["socket.io-client"]


def build(mongo_url: str, **socketio: object) -> Flask:
    return create_app(
        mongo={"url": mongo_url, "database": f"client_{uuid.uuid4().hex[:10]}"},
        redis={"url": None},
        socketio=socketio,
    )


@pytest.fixture
def flask_app(mongo_url: str) -> Iterator[Flask]:
    app = build(mongo_url)
    yield app
    app.extensions["kdk"].teardown()


def test_the_pinned_client_speaks_the_protocol_of_this_server() -> None:
    from importlib.metadata import version

    # Socket.IO client 4.x speaks Engine.IO 4 and Socket.IO 5, as python-socketio 5 does.
    assert PINNED.split(".")[0] == "4"
    assert version("python-socketio").split(".")[0] == "5"
    assert version("python-engineio").split(".")[0] == "4"


@pytest.mark.parametrize("name", ["socket.io.js", "socket.io.min.js"])
def test_the_client_script_is_the_vendored_official_build(flask_app: Flask, name: str) -> None:
    answer = flask_app.test_client().get(f"/socket.io/{name}")
    assert answer.status_code == 200
    assert answer.mimetype == "application/javascript"
    assert answer.data == MINIFIED
    assert answer.headers["ETag"] and "max-age=3600" in answer.headers["Cache-Control"]
    again = flask_app.test_client().get(
        f"/socket.io/{name}", headers={"If-None-Match": answer.headers["ETag"]}
    )
    assert again.status_code == 304


@pytest.mark.parametrize("name", ["socket.io.js.map", "socket.io.min.js.map"])
def test_its_source_map_is_served_too(flask_app: Flask, name: str) -> None:
    answer = flask_app.test_client().get(f"/socket.io/{name}")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert json.loads(answer.data)["version"] == 3


def test_other_methods_get_a_feathers_json_error(flask_app: Flask) -> None:
    answer = flask_app.test_client().post("/socket.io/socket.io.js")
    assert answer.status_code == 404  # kdk's catch-all takes every method: no service there
    assert answer.get_json()["name"] == "NotFound"


def test_the_socket_io_path_itself_still_reaches_engine_io(flask_app: Flask) -> None:
    answer = flask_app.test_client().get("/socket.io/?EIO=4&transport=polling")
    assert answer.status_code == 200 and answer.data.startswith(b"0{")  # an Engine.IO open packet
    assert flask_app.test_client().get("/socket.io/other.js").status_code == 400  # engine.io's answer


def test_serving_the_client_can_be_turned_off(mongo_url: str) -> None:
    app = build(mongo_url, serve_client=False)
    try:
        answer = app.test_client().get("/socket.io/socket.io.js")
        assert answer.status_code != 200 and answer.data != MINIFIED
    finally:
        app.extensions["kdk"].teardown()


# The browser build, in node: node 20 has no WebSocket of its own, so the `ws` package of
# tests/js stands in for the browser's.
NODE_CALL = """
globalThis.WebSocket = require("ws");
const io = require(process.argv[2]);
const socket = io(process.argv[3], { transports: ["websocket"] });
const timer = setTimeout(() => { console.error("no answer"); process.exit(3); }, 10000);
socket.emit("find", "messages", {}, (error, page) => {
  clearTimeout(timer);
  console.log(JSON.stringify({ error, total: page && page.total }));
  socket.close();
});
"""


def test_node_loads_the_served_script_and_calls_a_service_with_it(app_server, js_deps, tmp_path) -> None:
    script = tmp_path / "socket.io.js"
    script.write_bytes(requests.get(f"{app_server.url}/socket.io/socket.io.js", timeout=10).content)
    caller = tmp_path / "call.js"
    caller.write_text(NODE_CALL)
    done = subprocess.run(
        [NODE, str(caller), str(script), app_server.url],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "NODE_PATH": str(js_deps / "node_modules")},
    )
    assert done.returncode == 0, tail(done.stdout + done.stderr)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["error"] is None and isinstance(answer["total"], int)
