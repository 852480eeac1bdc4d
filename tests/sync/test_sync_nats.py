"""The sync bus on NATS JetStream, against real nats-server processes the tests start and stop."""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from clients import wait_until
from node import skip_or_fail

from kdk_app.app import create_app
from kdk_app.core import Application, ServiceEvent
from kdk_app.embedded import ManagedProcess, free_port
from kdk_app.services import MemoryService
from kdk_app.sync import EventSync, SyncedContext
from kdk_app.sync.brokers import open_broker
from kdk_app.sync.brokers.base import BrokerOptions
from kdk_app.sync.brokers.jetstream_api import api, stream_name
from kdk_app.sync.brokers.nats_client import NatsConnection, NatsError, parse_nats_url
from kdk_app.sync.envelope import make_envelope
from kdk_app.sync.signed import StreamSigner

pytestmark = pytest.mark.timeout(60)

FAST = {"block_ms": 100, "socket_timeout": 0.5, "backoff": (0.02, 0.3)}
SECRET = b"test-sync-secret-shared-by-every-nats-node"
NATS_SERVER = shutil.which("nats-server") or next(
    (p for p in ("/usr/sbin/nats-server", "/usr/bin/nats-server") if os.path.exists(p)), None
)


# --- nats-server processes -------------------------------------------------------------------


def jetstream_answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        conn = NatsConnection(url, 0.5).connect()
        try:
            api(conn, "INFO")  # JetStream itself, not just the port: it recovers its store first
            return True
        finally:
            conn.close()

    return check


class NatsServers:
    """nats-server processes with JetStream, each restartable on its port and store directory."""

    def __init__(self, root: Path) -> None:
        if NATS_SERVER is None:
            skip_or_fail("nats-server must be installed to test the sync bus on NATS JetStream")
        self.root = root
        self.processes: list[ManagedProcess] = []

    def start(self, *extra: str, scheme: str = "nats", userinfo: str = "") -> tuple[ManagedProcess, str]:
        port = free_port()
        url = f"{scheme}://{userinfo}127.0.0.1:{port}"
        store = self.root / f"nats-{port}"
        process = ManagedProcess(
            [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store), *extra],
            name=f"nats-server:{port}",
            log_path=self.root / f"nats-{port}.log",
            ready_check=jetstream_answers(url),
        )
        self.processes.append(process)
        return process.start(), url

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    servers = NatsServers(tmp_path_factory.mktemp("nats"))
    try:
        yield servers.start()[1]
    finally:
        servers.stop_all()


@pytest.fixture
def nats_servers(tmp_path: Path) -> Iterator[NatsServers]:
    """Servers this test may stop and restart."""
    servers = NatsServers(tmp_path)
    try:
        yield servers
    finally:
        servers.stop_all()


@pytest.fixture
def stream() -> str:
    return f"test:nats:{uuid.uuid4().hex}"


def jetstream(url: str, call: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    conn = NatsConnection(url, 2.0).connect()
    try:
        return api(conn, call, body)
    finally:
        conn.close()


def stream_info(url: str, stream: str) -> dict[str, Any]:
    return jetstream(url, f"STREAM.INFO.{stream_name(stream)}")


def publish_raw(url: str, stream: str, *payloads: bytes) -> None:
    """Publish straight to the bus's subject, as anyone with access to NATS could."""
    conn = NatsConnection(url, 2.0).connect()
    try:
        for payload in payloads:
            reply = conn.request(f"kdk.sync.{stream_name(stream)}", payload)
            assert b'"seq"' in reply.data, reply
    finally:
        conn.close()


# --- the bus on two instances ----------------------------------------------------------------


class Node:
    """One application instance with a ``messages`` service, its bus and what it heard."""

    def __init__(self, url: str, stream: str, **options: Any) -> None:
        self.app = Application()
        self.service = self.app.use("messages", MemoryService())
        self.sync = EventSync(self.app, url, stream=stream, secret=SECRET, **{**FAST, **options})
        self.heard: list[tuple[Any, Any]] = []
        self.sunk: list[ServiceEvent] = []
        self.service.on("created", lambda data, context: self.heard.append((data, context)))
        self.app.event_sinks.append(self.sunk.append)

    def texts(self) -> list[str]:
        return [data["text"] for data, _ in self.heard]

    def start(self, **kwargs: Any) -> Node:
        self.sync.start(**kwargs)
        assert wait_until(self.sync.is_connected), "bus connected"
        return self


@pytest.fixture
def nodes(nats_url: str, stream: str) -> Iterator[tuple[Node, Node]]:
    a, b = Node(nats_url, stream).start(), Node(nats_url, stream).start()
    try:
        yield a, b
    finally:
        a.sync.stop()
        b.sync.stop()


def envelope_bytes(text: str, origin: str = "attacker") -> bytes:
    return make_envelope("messages", "created", {"text": text}, None, origin).encode().encode()


def test_positions_are_stream_sequences_and_names_are_made_valid():
    broker = open_broker("nats://127.0.0.1:1", BrokerOptions("kdk:events.v2 *>", 1.0, 100, None, None))
    assert broker.kind == "nats" and broker.name == "kdk_events_v2___"
    assert broker.subject == "kdk.sync.kdk_events_v2___"
    for position in ("$", "0", "42"):
        broker.check_position(position)
    for position in ("1-0", "-1", "", " 5", "abc", "١"):
        with pytest.raises(ValueError, match="JetStream stream sequence"):
            broker.check_position(position)
    with pytest.raises(ValueError):
        EventSync(Application(), "nats://127.0.0.1:1", secret=SECRET, start_id="1700000000000-0")
    for bad in ("nats://", "nats://host:0", "nats://host:port", "tls://:4222"):
        with pytest.raises(ValueError):
            EventSync(Application(), bad, secret=SECRET)
    target = parse_nats_url("tls://me:p%40ss@a:4223,b")
    assert target.tls and (target.user, target.password) == ("me", "p@ss")
    assert target.servers == (("a", 4223), ("b", 4222))
    assert parse_nats_url("nats://s3cret@h").token == "s3cret"


def test_the_stream_is_created_with_the_retention_limits_and_follows_them(nats_url, stream):
    node = Node(nats_url, stream, retention_ms=600_000, maxlen=5_000).start()
    try:
        config = stream_info(nats_url, stream)["config"]
        assert config["subjects"] == [f"kdk.sync.{stream_name(stream)}"]
        assert (config["storage"], config["discard"]) == ("file", "old")
        assert (config["max_age"], config["max_msgs"]) == (600_000 * 1_000_000, 5_000)
    finally:
        node.sync.stop()
    Node(nats_url, stream, retention_ms=60_000, maxlen=10).start().sync.stop()
    config = stream_info(nats_url, stream)["config"]
    assert (config["max_age"], config["max_msgs"]) == (60_000 * 1_000_000, 10)


def test_event_on_a_is_heard_once_on_b_and_never_republished(nodes, nats_url, stream):
    a, b = nodes
    created = a.service.create({"text": "hello"}, {"provider": "rest", "query": {"room": "1"}})

    assert a.texts() == ["hello"]
    assert wait_until(lambda: b.heard), "B hears A's event"
    data, context = b.heard[0]
    assert data == created
    assert isinstance(context, SyncedContext) and context.remote and context.origin == a.sync.instance_id
    assert [(e.event, e.remote) for e in b.sunk] == [("created", True)]

    # Barrier: B's own event goes through B's FIFO outbox, after any (wrong) re-publication.
    b.service.create({"text": "marker"})
    assert wait_until(lambda: len(a.heard) == 2 and a.sync.stats.dropped_own == 1)
    assert a.texts() == b.texts() == ["hello", "marker"]
    assert stream_info(nats_url, stream)["state"]["messages"] == 2
    assert b.sync.stats.received == 1 and b.sync.stats.published == 1
    assert a.sync.last_id == b.sync.last_id == "2"


def test_two_hundred_events_arrive_in_order(nodes):
    a, b = nodes
    texts = [f"event {n}" for n in range(200)]
    for text in texts:
        a.service.create({"text": text})
    assert wait_until(lambda: len(b.heard) >= 200)
    assert b.texts() == texts
    assert b.sync.stats.received == 200 and b.sync.stats.dropped_duplicate == 0


def test_stopped_instance_catches_up_from_its_last_sequence(nodes, nats_url, stream):
    a, b = nodes
    a.service.create({"text": "one"})
    assert wait_until(lambda: b.texts() == ["one"])
    last_id = b.sync.last_id
    b.sync.stop()
    assert not b.sync.is_connected()

    a.service.create({"text": "two"})
    a.service.create({"text": "three"})
    assert wait_until(lambda: stream_info(nats_url, stream)["state"]["messages"] == 3)

    late = Node(nats_url, stream).start(from_id=last_id)  # a fresh object told where to resume
    b.start()  # the same object keeps its position across stop/start
    try:
        assert wait_until(lambda: late.texts() == ["two", "three"])
        assert wait_until(lambda: b.texts() == ["one", "two", "three"])
    finally:
        late.sync.stop()


def test_resuming_after_trimmed_events_warns_of_the_loss(nats_url, stream, caplog):
    a, b = Node(nats_url, stream, maxlen=2).start(), Node(nats_url, stream, maxlen=2).start()
    try:
        a.service.create({"text": "one"})
        assert wait_until(lambda: b.texts() == ["one"])
        b.sync.stop()
        for text in ("two", "three", "four"):
            a.service.create({"text": text})
        assert wait_until(lambda: stream_info(nats_url, stream)["state"]["last_seq"] == 4)

        with caplog.at_level(logging.WARNING, logger="kdk_app.sync"):
            b.start()
            assert wait_until(lambda: b.texts() == ["one", "three", "four"])  # what max_msgs kept
        assert any("trimmed past our position 1" in r.getMessage() for r in caplog.records)
    finally:
        a.sync.stop()
        b.sync.stop()


def test_a_deleted_stream_is_recreated_and_readers_warn_of_the_loss(nodes, nats_url, stream, caplog):
    a, b = nodes
    a.service.create({"text": "one"})
    assert wait_until(lambda: b.texts() == ["one"])
    with caplog.at_level(logging.WARNING, logger="kdk_app.sync"):
        jetstream(nats_url, f"STREAM.DELETE.{stream_name(stream)}")
        a.service.create({"text": "two"})  # 503 (no stream): the writer reopens and creates it
        assert wait_until(lambda: b.texts() == ["one", "two"])
    messages = [r.getMessage() for r in caplog.records]
    assert any("is gone" in m or "created again" in m for m in messages), messages
    assert a.sync.is_connected() and b.sync.is_connected()


def test_forged_messages_published_to_the_subject_are_refused(nodes, nats_url, stream, monkeypatch):
    a, b = nodes
    a.service.create({"text": "genuine"})
    assert wait_until(lambda: b.texts() == ["genuine"])
    stored = jetstream(nats_url, f"STREAM.MSG.GET.{stream_name(stream)}", {"seq": 1})
    genuine = base64.b64decode(stored["message"]["data"])
    monkeypatch.setattr("kdk_app.signing.now_ms", lambda: 1_000_000)  # sealed long ago...
    stale = StreamSigner(SECRET, stream).seal(envelope_bytes("from 1970"))
    monkeypatch.undo()
    publish_raw(
        nats_url,
        stream,
        envelope_bytes("unsigned"),
        StreamSigner(b"not-the-secret", stream).seal(envelope_bytes("wrong key")),
        genuine,  # replayed verbatim: its nonce was seen
        stale,  # ...and written now: its JetStream time says so
        b"",
    )
    forged = 5

    a.service.create({"text": "after"})
    assert wait_until(lambda: b.texts() == ["genuine", "after"])
    assert wait_until(lambda: a.sync.stats.forged == forged and b.sync.stats.forged == forged)
    assert a.texts() == ["genuine", "after"]
    assert b.sync.stats.received == 2 and b.sync.is_connected()


# --- outages -------------------------------------------------------------------------------


class Creator:
    """Creates numbered events on ``node`` from a thread until stopped (like a busy instance)."""

    def __init__(self, node: Node, prefix: str) -> None:
        self.node = node
        self.prefix = prefix
        self.texts: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            text = f"{self.prefix} {len(self.texts)}"
            self.node.service.create({"text": text})
            self.texts.append(text)

    def __enter__(self) -> Creator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_nats_restart_keeps_local_events_and_delivers_them_in_order_once(nats_servers, stream):
    process, url = nats_servers.start()
    a, b = Node(url, stream).start(), Node(url, stream).start()
    try:
        a.service.create({"text": "before"})
        assert wait_until(lambda: b.texts() == ["before"])

        with Creator(a, "busy") as creator:
            assert wait_until(lambda: len(creator.texts) >= 20)
            process.stop()  # SIGTERM by PID: the test owns this server
            assert wait_until(lambda: not a.sync.is_connected() and not b.sync.is_connected())
            assert wait_until(lambda: a.sync.pending > 20)  # waiting in the outbox
            outage_pending = a.sync.pending
            process.start()  # the same port and store directory
            assert wait_until(lambda: a.sync.is_connected() and b.sync.is_connected())
            assert wait_until(lambda: len(creator.texts) >= 50 + outage_pending)

        expected = ["before", *creator.texts]
        assert wait_until(lambda: len(b.heard) >= len(expected))
        assert b.texts() == expected  # every event, once, in order
        assert a.sync.pending == 0 and a.sync.stats.publish_failures > 0
        assert b.sync.stats.reconnects >= 1 and a.texts() == expected
    finally:
        a.sync.stop()
        b.sync.stop()


def test_healthcheck_flags_the_nats_sync_bus_down_and_up_again(nats_servers, mongo_url, stream):
    process, url = nats_servers.start()
    app = create_app(
        mongo={"url": mongo_url, "database": f"nats_health_{uuid.uuid4().hex[:10]}"},
        redis={"url": None},
        sync={"url": url, "stream": stream, "secret": SECRET.decode(), "block_ms": 100, "socket_timeout": 1},
        healthcheck={"timeout_ms": 500},
    )
    kdk = app.extensions["kdk"]
    client = app.test_client()

    def sync_flag() -> tuple[int, Any]:
        response = client.get("/healthcheck")
        return response.status_code, response.get_json().get("isSyncRunning")

    try:
        kdk.start()
        assert wait_until(lambda: sync_flag() == (200, True), timeout=10)
        process.stop()
        assert wait_until(lambda: sync_flag() == (503, False), timeout=10)
        process.start()
        assert wait_until(lambda: sync_flag() == (200, True), timeout=15)
    finally:
        kdk.teardown()


def test_a_hung_nats_server_costs_bounded_waits(nats_servers, stream):
    process, url = nats_servers.start()
    a, b = Node(url, stream).start(), Node(url, stream).start()
    try:
        os.kill(process.pid, signal.SIGSTOP)  # accepts connections, answers nothing
        started = time.monotonic()
        a.service.create({"text": "while hung"})  # the caller never waits for the broker
        assert time.monotonic() - started < 0.1
        assert wait_until(lambda: not a.sync.is_connected() and not b.sync.is_connected(), timeout=5)
        assert time.monotonic() - started < 3 * FAST["socket_timeout"] + FAST["block_ms"] / 1000 + 1
        stopping = time.monotonic()
        b.sync.stop()  # bounded too, with its threads waiting on a silent socket
        assert time.monotonic() - stopping < 3
        os.kill(process.pid, signal.SIGCONT)
        b.start()
        assert wait_until(lambda: b.texts() == ["while hung"] and a.sync.is_connected())
    finally:
        os.kill(process.pid, signal.SIGCONT)
        a.sync.stop()
        b.sync.stop()


def test_an_idle_writer_closed_by_the_server_reconnects_without_a_failure(nats_servers, stream, tmp_path):
    config = tmp_path / "pings.conf"
    config.write_text('ping_interval: "100ms"\nping_max: 1\n')  # idle clients go stale at once
    monitor = free_port()
    _process, url = nats_servers.start("-c", str(config), "-m", str(monitor))

    def connections() -> int:
        return requests.get(f"http://127.0.0.1:{monitor}/connz", timeout=2).json()["num_connections"]

    a, b = Node(url, stream).start(), Node(url, stream).start()
    try:
        a.service.create({"text": "one"})
        assert wait_until(lambda: b.texts() == ["one"])
        # A's writer and both readers, then the readers only: an idle writer answers no PINGs.
        assert wait_until(lambda: connections() == 2)
        a.service.create({"text": "two"})
        assert wait_until(lambda: b.texts() == ["one", "two"])
        assert a.sync.stats.publish_failures == 0 and a.sync.is_connected()
        assert a.sync.stats.reconnects == b.sync.stats.reconnects == 0  # the readers stayed
    finally:
        a.sync.stop()
        b.sync.stop()


def test_events_over_the_server_max_payload_are_dropped_without_holding_up_the_others(
    nats_servers, stream, tmp_path, caplog
):
    config = tmp_path / "small.conf"
    config.write_text("max_payload: 8192\n")
    _process, url = nats_servers.start("-c", str(config))
    a, b = Node(url, stream).start(), Node(url, stream).start()
    try:
        with caplog.at_level(logging.ERROR, logger="kdk_app.sync"):
            a.service.create({"text": "big", "padding": "x" * 10_000})
            a.service.create({"text": "small"})
            assert wait_until(lambda: b.texts() == ["small"])
        assert any("over the NATS server's max_payload (8192)" in r.getMessage() for r in caplog.records)
        assert a.sync.pending == 0 and a.sync.is_connected()
    finally:
        a.sync.stop()
        b.sync.stop()


def test_tls_and_credentials_come_from_the_url(nats_servers, stream, tmp_path, monkeypatch):
    if shutil.which("openssl") is None:
        skip_or_fail("openssl must be installed to make the test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the system's CAs, here this one
    tls = ["--tls", "--tlscert", str(cert), "--tlskey", str(key)]
    _process, url = nats_servers.start(
        *tls, "--user", "kdk", "--pass", "p@ss", scheme="tls", userinfo="kdk:p%40ss@"
    )
    a, b = Node(url, stream).start(), Node(url, stream).start()
    try:
        a.service.create({"text": "over TLS"})
        assert wait_until(lambda: b.texts() == ["over TLS"])
    finally:
        a.sync.stop()
        b.sync.stop()
    wrong = open_broker(url.replace("p%40ss", "guess"), BrokerOptions(stream, 1.0, 100, None, None))
    with pytest.raises(NatsError, match="Authorization Violation"):
        wrong.writer()
    monkeypatch.delenv("SSL_CERT_FILE")
    untrusted = open_broker(url, BrokerOptions(stream, 1.0, 100, None, None))
    with pytest.raises(NatsError, match="CERTIFICATE_VERIFY_FAILED"):
        untrusted.writer()


# --- the app, under gunicorn's gevent workers ------------------------------------------------


def test_running_servers_on_nats_hear_each_others_events_across_a_restart_and_a_hang(
    app_server_factory, nats_servers, stream
):
    process, url = nats_servers.start()
    env = {
        "KDK_SYNC__URL": url,
        "KDK_SYNC__SECRET": "e2e-nats-secret-" + uuid.uuid4().hex,
        "KDK_SYNC__STREAM": stream,
        "KDK_MONGO__DATABASE": f"nats_{uuid.uuid4().hex[:10]}",
    }
    origin = app_server_factory(env=env, workers=2)
    other = app_server_factory(env=env)  # one process: its listeners are one `heard` service
    session = requests.Session()  # keep-alive: every create goes to one worker, in order

    def heard() -> list[str]:
        return [r["text"] for r in requests.get(other.url + "/heard", timeout=5).json()]

    def create(text: str) -> None:
        assert session.post(origin.url + "/messages", json={"text": text}, timeout=5).status_code == 201

    def other_is_listening() -> bool:
        create("probe")  # the reader starts at the stream's end: probe until one gets through
        return "probe" in heard()

    def create_quickly(texts: list[str]) -> None:
        started = time.monotonic()
        for text in texts:
            create(text)
        assert time.monotonic() - started < 5  # calls never wait for the broker

    assert wait_until(other_is_listening, timeout=15, interval=0.2)
    create("before")
    assert wait_until(lambda: heard()[-1:] == ["before"], timeout=10)

    process.stop()  # SIGTERM: the bus threads (greenlets) reconnect after the restart
    stopped = [f"stopped {n}" for n in range(10)]
    create_quickly(stopped)
    process.start()
    assert wait_until(lambda: heard()[-1:] == [stopped[-1]], timeout=20, interval=0.2)

    os.kill(process.pid, signal.SIGSTOP)  # hung: only the bounded timeouts free the greenlets
    try:
        hung = [f"hung {n}" for n in range(10)]
        create_quickly(hung)
        # Held until both sides timed out: the publisher waiting for PubAcks, the reader for a pull.
        assert wait_until(lambda: "no PubAck from JetStream" in origin.log_text(), timeout=10)
        assert wait_until(lambda: "no answer from JetStream" in other.log_text(), timeout=10)
        assert requests.get(other.url + "/heard", timeout=2).ok  # its worker was never stuck
    finally:
        os.kill(process.pid, signal.SIGCONT)
    assert wait_until(lambda: heard()[-1:] == [hung[-1]], timeout=20, interval=0.2)
    received = [text for text in heard() if text != "probe"]
    assert received == ["before", *stopped, *hung]  # in order, once
    session.close()
