"""The Feathers channel API: ``app.channel(...)`` with ``join``, ``leave``, ``filter``, ``send`` and
``connections``, and a channels file written as Feathers' generator writes it. In process with
Flask-SocketIO's test client (no Redis), then filtered channels across two gunicorn workers and
a second instance on a real Redis and SecantusDB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from clients import Listener, wait_until
from flask import Flask

from kdk_app import create_app
from kdk_app.services import MemoryService

REPO_ROOT = Path(__file__).resolve().parents[2]


def feathers_channels(app: Any) -> None:
    """The channels file of a Feathers app, line by line."""
    app.on("connection", lambda connection: app.channel("anonymous").join(connection))

    def on_login(auth_result: Any, params: dict[str, Any]) -> None:
        connection = params.get("connection")
        if connection:
            app.channel("anonymous").leave(connection)
            app.channel("authenticated").join(connection)

    app.on("login", on_login)
    app.use("teamwork", MemoryService(multi=True))
    team_of = lambda connection: connection["headers"].get("x-team")  # noqa: E731
    app.service("teamwork").publish(
        "created", lambda data, context: app.channel("anonymous").filter(lambda c: team_of(c) == data["team"])
    )
    app.service("teamwork").publish(
        "patched", lambda data, context: app.channel("anonymous", "authenticated").send({"only": "this"})
    )


@pytest.fixture
def flask_app(mongo_url: str) -> Iterator[Flask]:
    app = create_app(
        mongo={"url": mongo_url, "database": f"chan_{uuid.uuid4().hex[:10]}"},
        redis={"url": None},
        channels=[],
        configure=[feathers_channels],
    )
    yield app
    app.extensions["kdk"].teardown()


def events(client: Any, name: str) -> list[Any]:
    return [received["args"][0] for received in client.get_received() if received["name"] == name]


def test_connections_join_leave_and_are_listed_per_channel(flask_app: Flask) -> None:
    kdk = flask_app.extensions["kdk"]
    socketio = flask_app.extensions["socketio"]
    red, blue = (socketio.test_client(flask_app, headers={"X-Team": team}) for team in ("red", "blue"))
    anonymous = kdk.channel("anonymous")
    assert anonymous.length == 2
    red_connection = next(c for c in anonymous.connections if c["headers"]["x-team"] == "red")
    assert anonymous.filter(lambda c: c["headers"]["x-team"] == "blue").length == 1
    kdk.channel("anonymous").leave(red_connection)
    kdk.channel("reds").join(red_connection)
    assert anonymous.length == 1 and kdk.channel("reds").connections == [red_connection]
    assert kdk.channel("reds", "anonymous").length == 2
    red.disconnect()
    assert kdk.channel("reds").length == 0  # a closed connection is in no channel
    blue.disconnect()
    assert anonymous.length == 0


def test_a_filtered_channel_sends_only_to_the_connections_that_pass(flask_app: Flask) -> None:
    kdk = flask_app.extensions["kdk"]
    socketio = flask_app.extensions["socketio"]
    red, blue = (socketio.test_client(flask_app, headers={"X-Team": team}) for team in ("red", "blue"))
    kdk.service("teamwork").create({"team": "red", "text": "for reds"})
    assert [event["text"] for event in events(red, "teamwork created")] == ["for reds"]
    assert events(blue, "teamwork created") == []


def test_send_replaces_the_payload_for_the_channel(flask_app: Flask) -> None:
    kdk = flask_app.extensions["kdk"]
    client = flask_app.extensions["socketio"].test_client(flask_app, headers={"X-Team": "red"})
    created = kdk.service("teamwork").create({"team": "nobody"})
    kdk.service("teamwork").patch(created["id"], {"text": "changed"})
    assert events(client, "teamwork patched") == [{"only": "this"}]


def test_synced_events_send_filtered_channels_only_and_never_fail_on_local_only_publishers(
    flask_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    from kdk_app.core import ServiceEvent
    from kdk_app.sync.envelope import SyncedContext

    kdk = flask_app.extensions["kdk"]
    client = flask_app.extensions["socketio"].test_client(flask_app, headers={"X-Team": "red"})
    heard = SyncedContext(path="teamwork", event="created", origin="another-instance")
    kdk.dispatch_event(
        ServiceEvent("teamwork", "created", {"team": "red", "text": "synced"}, heard, remote=True)
    )
    assert [event["text"] for event in events(client, "teamwork created")] == ["synced"]
    # A plain channel of a synced event was sent by its origin already: not again here.
    kdk.dispatch_event(ServiceEvent("teamwork", "patched", {"id": 1}, heard, remote=True))
    assert events(client, "teamwork patched") == []
    # A publisher that needs a local call's context (context.app) fails on it, quietly.
    kdk.service("teamwork").publish("removed", lambda data, context: context.app.channel("anonymous"))
    with caplog.at_level("WARNING"):
        kdk.dispatch_event(ServiceEvent("teamwork", "removed", {"id": 1}, heard, remote=True))
    assert not [record for record in caplog.records if record.levelname in ("ERROR", "WARNING")]


def test_a_channel_needs_the_real_time_layer(mongo_url: str) -> None:
    from kdk_app.core import Application

    with pytest.raises(RuntimeError, match="real-time layer"):
        Application().channel("anonymous")


# --- across workers and instances ------------------------------------------------------------

CHANNELS_CONFIG = """

def _feathers_channels(app, channels):
    from kdk_app.services import MemoryService

    app.on("connection", lambda connection: app.channel("anonymous").join(connection))
    app.use("teamwork", MemoryService(multi=True))
    team_of = lambda connection: connection["headers"].get("x-team")
    app.service("teamwork").publish(
        "created", lambda data, context: app.channel("anonymous").filter(lambda c: team_of(c) == data["team"])
    )


channels = [_feathers_channels]
"""


def config_dir(tmp_path: Path) -> Path:
    """The shipped configuration, plus the channels file above in the test environment's."""
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "default.py").write_text((REPO_ROOT / "config" / "default.py").read_text())
    (folder / "test.py").write_text((REPO_ROOT / "config" / "test.py").read_text() + CHANNELS_CONFIG)
    return folder


def test_filtered_channels_reach_matching_sockets_on_every_worker_and_instance(
    app_server_factory, redis_url, tmp_path
) -> None:
    env = {
        "REDIS_URL": redis_url,
        "KDK_CONFIG_DIR": str(config_dir(tmp_path)),
        "KDK_MONGO__DATABASE": f"chan_{uuid.uuid4().hex[:10]}",
        "KDK_SYNC__STREAM": f"chan-{uuid.uuid4().hex[:8]}",
        "KDK_SOCKETIO__CHANNEL": f"chan-{uuid.uuid4().hex[:8]}",
        "KDK_SYNC__SECRET": "channel-test-secret-" + "c" * 30,
    }
    first = app_server_factory(env, workers=2)
    second = app_server_factory(env)
    sockets = {
        (server.url, team, index): Listener(server.url, headers={"X-Team": team})
        for server in (first, second)
        for team in ("red", "blue")
        for index in range(3)  # several sockets a team on the 2-worker instance: both workers
    }
    try:
        session = requests.Session()  # one connection, so one worker: one origin, whose order holds
        for text in ("one", "two"):
            answer = session.post(f"{first.url}/teamwork", json={"team": "red", "text": text}, timeout=10)
            assert answer.status_code == 201, answer.text
        reds = [sock for (url, team, index), sock in sockets.items() if team == "red"]
        blues = [sock for (url, team, index), sock in sockets.items() if team == "blue"]
        assert wait_until(lambda: all(len(sock.named("teamwork created")) == 2 for sock in reds), timeout=10)
        for sock in reds:
            assert [event["text"] for event in sock.named("teamwork created")] == ["one", "two"]
        assert all(sock.named("teamwork created") == [] for sock in blues)
    finally:
        for sock in sockets.values():
            sock.close()
