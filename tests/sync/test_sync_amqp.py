"""The sync bus and the Socket.IO message queue on RabbitMQ.

Against the machine's RabbitMQ (``KDK_TEST_AMQP_URL``, default ``amqp://guest:guest@127.0.0.1:5672//``),
which the tests cannot stop: every test has an exchange of its own, deletes what it declared,
and cuts a node off the broker through a TCP proxy of its own instead.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import amqp
import pytest
import requests
from clients import Listener
from clients import wait_until as poll
from node import skip_or_fail

from kdk_app.core import Application, ServiceEvent
from kdk_app.services import MemoryService
from kdk_app.sync import EventSync, SyncedContext
from kdk_app.sync.brokers.amqp import AmqpAddress
from kdk_app.sync.envelope import make_envelope
from kdk_app.sync.signed import StreamSigner

pytestmark = pytest.mark.timeout(60)

AMQP_URL = os.environ.get("KDK_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
FAST = {"block_ms": 100, "socket_timeout": 0.5, "backoff": (0.02, 0.3)}
SECRET = b"test-sync-secret-shared-by-every-node"


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def connect(url: str = AMQP_URL) -> amqp.Connection:
    return AmqpAddress.from_url(url).connect("kdk-tests", timeout=2.0)


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
        wait_until(self.sync.is_connected, what="bus connected")
        return self


class Broker:
    """The test's exchange on RabbitMQ: builds nodes on it, deletes their queues and it at the end."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.nodes: list[Node] = []
        self.queues: list[str] = []

    def node(self, url: str = AMQP_URL, **options: Any) -> Node:
        node = Node(url, self.stream, **options)
        self.nodes.append(node)
        return node

    def publish(self, *bodies: bytes) -> None:
        """Straight to the exchange, as anyone with access to RabbitMQ could."""
        connection = connect()
        try:
            channel = connection.channel()
            for body in bodies:
                channel.basic_publish(amqp.Message(body), exchange=self.stream, routing_key="")
        finally:
            connection.close()

    def queue_exists(self, name: str) -> bool:
        connection = connect()
        try:
            connection.channel().queue_declare(name, passive=True)
            return True
        except amqp.exceptions.NotFound:
            return False
        finally:
            connection.collect()

    def clean(self) -> None:
        for node in self.nodes:
            node.sync.stop()
        connection = connect()
        try:
            channel = connection.channel()
            for queue in self.queues + [n.sync.broker.queue for n in self.nodes]:
                channel.queue_delete(queue)
            channel.exchange_delete(self.stream)
        finally:
            connection.close()


class TcpProxy:
    """Forwards 127.0.0.1:<port> to RabbitMQ until cut: then it drops every connection and
    closes new ones at once, as a broker that went away, until restored."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()

    def url(self, base: str = AMQP_URL) -> str:
        return re.sub(r"@[^/]+", f"@127.0.0.1:{self.port}", base, count=1)

    def cut(self) -> None:
        self._open.clear()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _close(sock)

    def restore(self) -> None:
        self._open.set()

    def stop(self) -> None:
        self._stopped.set()
        self.cut()
        self._thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            if not self._open.is_set():
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                _close(client)
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture(scope="module")
def rabbitmq() -> str:
    try:
        connect().close()
    except OSError as exc:
        skip_or_fail(f"no RabbitMQ at {AMQP_URL} (set KDK_TEST_AMQP_URL): {exc}")
    return AMQP_URL


@pytest.fixture
def broker(rabbitmq: str) -> Iterator[Broker]:
    broker = Broker(f"test.sync.{uuid.uuid4().hex}")
    try:
        yield broker
    finally:
        broker.clean()


@pytest.fixture
def nodes(broker: Broker) -> tuple[Node, Node]:
    return broker.node().start(), broker.node().start()


@pytest.fixture
def proxy() -> Iterator[Callable[[], TcpProxy]]:
    address = AmqpAddress.from_url(AMQP_URL)
    started: list[TcpProxy] = []

    def start() -> TcpProxy:
        started.append(TcpProxy((address.host, address.port)))
        return started[-1]

    try:
        yield start
    finally:
        for proxy in started:
            proxy.stop()


def sealed(text: str, secret: bytes = SECRET, *, stream: str, origin: str = "elsewhere") -> bytes:
    envelope = make_envelope("messages", "created", {"text": text}, None, origin)
    return StreamSigner(secret, stream).seal(envelope.encode().encode())


# --- delivery --------------------------------------------------------------------------------


def test_an_event_on_a_is_heard_once_on_b_and_never_republished(nodes):
    a, b = nodes
    params = {"provider": "rest", "user": {"id": 7}, "query": {"room": "1"}}
    created = a.service.create({"text": "hello"}, params)

    assert a.texts() == ["hello"]
    wait_until(lambda: b.heard, what="B to hear A's event")
    data, context = b.heard[0]
    assert data == created
    assert isinstance(context, SyncedContext) and context.remote
    assert (context.path, context.event, context.method, context.provider) == (
        "messages",
        "created",
        "create",
        "rest",
    )
    assert (context.user_id, context.query, context.origin) == (7, {"room": "1"}, a.sync.instance_id)
    assert [(e.event, e.remote) for e in b.sunk] == [("created", True)]

    # Barrier: B's own event goes through B's FIFO outbox, after any (wrong) re-publication.
    b.service.create({"text": "marker"})
    wait_until(lambda: len(a.heard) == 2, what="A to hear B's marker")
    wait_until(lambda: a.sync.stats.dropped_own == 1, what="A to read its own event back")
    assert a.texts() == ["hello", "marker"]
    assert b.texts() == ["hello", "marker"]
    assert b.sync.stats.received == 1 and b.sync.stats.published == 1
    assert a.sync.stats.published == 1 and a.sync.stats.received == 1


def test_two_hundred_events_arrive_in_order(nodes):
    a, b = nodes
    texts = [str(n) for n in range(200)]
    for text in texts:
        a.service.create({"text": text})
    wait_until(lambda: len(b.heard) >= 200, timeout=20, what="B to hear 200 events")
    assert b.texts() == texts
    assert b.sync.stats.dropped_duplicate == 0


def test_a_stopped_bus_catches_up_from_its_queue_when_started_again(nodes, broker):
    a, b = nodes
    a.service.create({"text": "one"})
    wait_until(lambda: b.texts() == ["one"], what="B to hear 'one'")
    b.sync.stop()
    assert not b.sync.is_connected()

    a.service.create({"text": "two"})
    a.service.create({"text": "three"})
    wait_until(lambda: a.sync.stats.published == 3, what="A to publish")
    assert broker.queue_exists(b.sync.broker.queue)  # it outlives B's connection

    b.start()
    wait_until(lambda: b.texts() == ["one", "two", "three"], what="B to catch up")


def test_closing_a_bus_deletes_its_queue_and_leaves_the_others(nodes, broker):
    a, b = nodes
    b.sync.close()  # what the app's teardown does (a stopping worker)
    assert not broker.queue_exists(b.sync.broker.queue)
    assert broker.queue_exists(a.sync.broker.queue)
    a.service.create({"text": "after B left"})
    wait_until(lambda: a.sync.stats.published == 1, what="A to publish")
    assert not broker.queue_exists(b.sync.broker.queue)  # nothing fills it again


def test_only_new_events_are_a_valid_start_position(rabbitmq, broker):
    with pytest.raises(ValueError, match="RabbitMQ keeps no stream positions"):
        EventSync(Application(), rabbitmq, stream=broker.stream, secret=SECRET, start_id="0-0")
    node = broker.node()
    with pytest.raises(ValueError, match="new events only"):
        node.sync.start(from_id="1700000000000-0")
    node.start(from_id="$")


def test_a_queue_keeps_at_most_maxlen_events_the_oldest_go_first(broker):
    a, b = broker.node().start(), broker.node(maxlen=2).start()
    b.sync.stop()
    for text in ("one", "two", "three", "four"):
        a.service.create({"text": text})
    wait_until(lambda: a.sync.stats.published == 4, what="A to publish")
    b.start()
    wait_until(lambda: b.texts() == ["three", "four"], what="B to read what its queue kept")


def test_an_abandoned_queue_expires_and_a_late_restart_warns_of_the_loss(broker, caplog):
    a, b = broker.node().start(), broker.node(retention_ms=1000).start()
    b.sync.stop()
    stopped = time.monotonic()
    a.service.create({"text": "while B was away too long"})

    def expired() -> bool:
        # Looking renews the queue's lease: look once the retention has passed, then less
        # often than it.
        return time.monotonic() - stopped > 1.2 and not broker.queue_exists(b.sync.broker.queue)

    assert poll(expired, timeout=10, interval=1.2), "B's queue never expired"

    with caplog.at_level(logging.WARNING, logger="kdk_app.sync"):
        b.start()
        a.service.create({"text": "after"})
        wait_until(lambda: b.texts() == ["after"], what="B to read on from a new queue")
    assert any("events published to stream" in r.getMessage() for r in caplog.records)


# --- refusals --------------------------------------------------------------------------------


def test_forged_and_replayed_messages_are_refused_and_counted(nodes, broker):
    a, b = nodes
    once = make_envelope("messages", "created", {"text": "once"}, None, "elsewhere").encode().encode()
    seal = StreamSigner(SECRET, broker.stream).seal
    replayed = sealed("replayed", stream=broker.stream)
    broker.publish(
        b"garbage",
        once,  # unsigned
        sealed("guessed", b"not-the-secret", stream=broker.stream),
        sealed("meant elsewhere", stream="another.stream"),
        seal(once),
        seal(once),  # sealed again (a retried write): a new nonce, the same envelope id
        replayed,
        replayed,  # a verbatim copy: its nonce was seen
    )
    a.service.create({"text": "after"})

    wait_until(lambda: b.texts() == ["once", "replayed", "after"], what="B to survive the forgeries")
    stats = b.sync.stats.as_dict()
    assert stats["forged"] == 5
    assert stats["dropped_duplicate"] == 1
    assert stats["received"] == 3
    assert b.sync.is_connected()


# --- outages ---------------------------------------------------------------------------------


def test_a_broker_outage_keeps_events_in_the_outbox_and_delivers_them_after_reconnection(broker, proxy):
    to_a, to_b = proxy(), proxy()
    a, b = broker.node(to_a.url()).start(), broker.node(to_b.url()).start()
    a.service.create({"text": "before"})
    wait_until(lambda: b.texts() == ["before"], what="B to hear 'before'")

    # A loses RabbitMQ: its event waits in its outbox.
    to_a.cut()
    wait_until(lambda: not a.sync.is_connected(), what="A to see the outage")
    a.service.create({"text": "during"})  # succeeds, and A's listener runs at once
    assert a.texts() == ["before", "during"]
    wait_until(lambda: a.sync.stats.publish_failures > 0, what="a failed publish attempt")
    assert b.texts() == ["before"]
    to_a.restore()
    wait_until(a.sync.is_connected, what="A reconnected")
    wait_until(lambda: b.texts() == ["before", "during"], what="B to hear 'during'")
    assert a.sync.pending == 0

    # B loses RabbitMQ: its queue keeps what A publishes meanwhile.
    to_b.cut()
    wait_until(lambda: not b.sync.is_connected(), what="B to see the outage")
    a.service.create({"text": "while B is cut off"})
    wait_until(lambda: a.sync.stats.published == 3, what="A to publish")
    to_b.restore()
    wait_until(b.sync.is_connected, what="B reconnected")
    wait_until(lambda: b.texts() == ["before", "during", "while B is cut off"], what="B to catch up")
    assert b.sync.stats.reconnects >= 1


def test_an_event_handled_but_not_acknowledged_when_the_link_broke_is_not_handled_again(broker, proxy):
    to_b = proxy()
    a, b = broker.node().start(), broker.node(to_b.url()).start()
    # B loses RabbitMQ while its listener runs: the acknowledgement never leaves.
    b.service.on("created", lambda data, context: data["text"] == "cut" and to_b.cut())
    a.service.create({"text": "cut"})
    wait_until(lambda: b.texts() == ["cut"], what="B to hear 'cut'")
    wait_until(lambda: not b.sync.is_connected(), what="B to see the outage")
    to_b.restore()
    wait_until(b.sync.is_connected, what="B reconnected")
    a.service.create({"text": "after"})
    wait_until(lambda: b.texts() == ["cut", "after"], what="B to hear 'after'")
    # RabbitMQ delivered 'cut' again; B knew it (not a replayed forgery).
    assert b.sync.stats.forged == 0 and b.sync.stats.dropped_duplicate == 0


# --- two app servers -------------------------------------------------------------------------


def test_two_servers_on_rabbitmq_share_listener_and_socket_events_across_an_outage(
    rabbitmq, app_server_factory, proxy
):
    stream, channel = f"test.sync.{uuid.uuid4().hex}", f"test.socketio.{uuid.uuid4().hex}"
    env = {
        # No REDIS_URL: the sync bus and the Socket.IO queue both on RabbitMQ.
        "KDK_SYNC__URL": rabbitmq,
        "KDK_SYNC__STREAM": stream,
        "KDK_SYNC__SECRET": "e2e-sync-secret-" + uuid.uuid4().hex,
        "KDK_SOCKETIO__QUEUE_URL": rabbitmq,
        "KDK_SOCKETIO__CHANNEL": channel,
        "KDK_MONGO__DATABASE": f"amqp_{uuid.uuid4().hex[:10]}",
    }
    to_a = proxy()  # A reaches RabbitMQ through it, for both the bus and the queue
    a = app_server_factory(env={**env, "KDK_SYNC__URL": to_a.url(), "KDK_SOCKETIO__QUEUE_URL": to_a.url()})
    b = app_server_factory(env=env)
    listener = Listener(b.url)
    try:

        def heard() -> list[str]:
            return [r["text"] for r in requests.get(b.url + "/heard", timeout=5).json()]

        def socket_texts() -> list[str]:
            return [event["text"] for event in listener.named("messages created")]

        def create(text: str) -> float:
            started = time.monotonic()
            requests.post(a.url + "/messages", json={"text": text}, timeout=5).raise_for_status()
            return time.monotonic() - started

        def both_paths_carry(text: str) -> Callable[[], bool]:
            def probe() -> bool:
                # Each path reads once its queue exists: probe until a create gets through both.
                create(text)
                return text in heard() and text in socket_texts()

            return probe

        assert poll(both_paths_carry("probe"), timeout=20, interval=0.3), "B never got A's events"
        create("real")
        create("marker")
        wait_until(lambda: heard()[-1:] == ["marker"], what="B's listener to hear A's events")
        wait_until(lambda: socket_texts()[-1:] == ["marker"], what="B's socket client to get them")
        assert heard().count("real") == 1
        assert socket_texts().count("real") == 1  # through the queue, not again through the bus

        # A loses RabbitMQ: its calls stay fast; its listener event waits in its outbox.
        to_a.cut()
        slowest = max(create("during") for _ in range(3))
        assert slowest < 1.0
        to_a.restore()
        wait_until(lambda: heard().count("during") == 3, timeout=10, what="A's outbox to reach B")
        assert poll(both_paths_carry("back"), timeout=10, interval=0.3), "A's queue never reconnected"
        assert "Socket.IO message queue could not publish to RabbitMQ" in a.log_text()
    finally:
        listener.close()
        logs = [a.log_text(), b.log_text()]
        a.stop()
        b.stop()
        delete_declared(stream, channel, logs)


def delete_declared(stream: str, channel: str, logs: list[str]) -> None:
    """The servers' sync queues (named in their logs) and both exchanges."""
    queues = {q for log in logs for q in re.findall(r"reads RabbitMQ queue '([^']+)'", log)}
    assert queues, "the servers did not log their sync queues"
    connection = connect()
    try:
        ch = connection.channel()
        for queue in queues:
            ch.queue_delete(queue)
        ch.exchange_delete(stream)
        ch.exchange_delete(channel)
    finally:
        connection.close()
