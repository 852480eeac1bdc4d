"""The cross-instance sync bus, against a real Redis started (and stopped) by the tests."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from bson import ObjectId

from kdk_app.core import Application, ServiceEvent
from kdk_app.embedded import free_port, start_redis
from kdk_app.logs import REQUEST_ID, current_request_id
from kdk_app.services import MemoryService
from kdk_app.sync import EnvelopeError, EventSync, SyncedContext, configure_sync, parse_envelope
from kdk_app.sync.envelope import FIELD, make_envelope, summarize_context
from kdk_app.sync.position import resume_position
from kdk_app.sync.signed import StreamSigner

pytestmark = pytest.mark.timeout(60)

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


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    process, url = start_redis()
    try:
        yield url
    finally:
        process.stop()


@pytest.fixture
def stream() -> str:
    return f"test:events:{uuid.uuid4().hex}"


@pytest.fixture
def nodes(redis_url: str, stream: str) -> Iterator[tuple[Node, Node]]:
    a, b = Node(redis_url, stream), Node(redis_url, stream)
    a.start()
    b.start()
    try:
        yield a, b
    finally:
        a.sync.stop()
        b.sync.stop()


def raw_envelope(**overrides: Any) -> str:
    envelope = make_envelope("messages", "created", {"text": "by hand"}, None, "elsewhere")
    return json.dumps({**json.loads(envelope.encode()), **overrides})


# --- the envelope ----------------------------------------------------------------------------


def test_envelope_round_trip_keeps_routing_payload_and_small_context():
    app = Application()
    service = app.use("messages", MemoryService())
    seen = []
    service.on("created", lambda data, context: seen.append(context))
    user = {"_id": ObjectId(), "email": "x@example.org"}
    service.create({"text": "hi"}, {"provider": "socketio", "user": user, "query": {"a": "1"}})
    token = REQUEST_ID.set(None)  # an earlier in-process test may have left one in this thread
    try:
        envelope = make_envelope("messages", "created", {"oid": ObjectId()}, seen[0], "node-1")
        assert summarize_context(None) == dict.fromkeys(
            ["method", "id", "provider", "query", "user_id", "request_id"]
        )
    finally:
        REQUEST_ID.reset(token)

    parsed = parse_envelope(envelope.encode().encode())

    assert parsed.v == 1 and parsed.origin == "node-1" and len(parsed.id) == 32
    assert parsed.path == "messages" and parsed.event == "created"
    assert isinstance(parsed.ts, int) and abs(parsed.ts - time.time() * 1000) < 60_000
    assert isinstance(parsed.data["oid"], str)
    assert parsed.context == {
        "method": "create",
        "id": None,
        "provider": "socketio",
        "query": {"a": "1"},
        "user_id": str(user["_id"]),
        "request_id": None,
    }


def test_an_envelope_carries_the_request_id_and_drops_one_that_is_not_a_short_string():
    token = REQUEST_ID.set("req-42")
    try:
        envelope = make_envelope("messages", "created", {}, None, "node-1")
    finally:
        REQUEST_ID.reset(token)
    assert parse_envelope(envelope.encode()).context["request_id"] == "req-42"
    for bad in (42, "x" * 201, ["a"]):
        raw = json.loads(envelope.encode())
        raw["context"]["request_id"] = bad
        assert parse_envelope(json.dumps(raw)).context["request_id"] is None


def test_listeners_on_b_run_under_the_request_id_of_the_call_on_a(nodes):
    a, b = nodes
    seen_on_b: list[Any] = []
    b.service.on("created", lambda data, context: seen_on_b.append((current_request_id(), context)))
    token = REQUEST_ID.set("req-from-a")
    try:
        a.service.create({"text": "traced"}, {"provider": "rest"})
    finally:
        REQUEST_ID.reset(token)
    wait_until(lambda: seen_on_b, what="B to hear A's event")
    request_id, context = seen_on_b[0]
    assert request_id == "req-from-a" and context.request_id == "req-from-a"


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"\xff\xfe",
        "not json",
        "[1, 2]",
        '{"v": 2}',
        raw_envelope(v=True),
        raw_envelope(origin=""),
        raw_envelope(ts="yesterday"),
        raw_envelope(context=[]),
        raw_envelope(context={"method": 5}),
    ],
)
def test_garbage_is_rejected_with_a_clear_error(raw):
    with pytest.raises(EnvelopeError):
        parse_envelope(raw)


def test_configure_sync_reads_settings():
    app = Application()
    assert configure_sync(app, {}) is None
    assert (
        configure_sync(app, {"redis": {"url": "redis://127.0.0.1:1/0"}, "sync": {"enabled": False}}) is None
    )
    sync = configure_sync(
        app,
        {"redis": {"url": "redis://127.0.0.1:1/0"}, "sync": {"stream": "s", "maxlen": 5}},
    )
    # Built, not started: background work starts with the app (in serving processes only).
    assert isinstance(sync, EventSync) and sync.stream == "s" and not sync.running
    with pytest.raises(ValueError, match="Unknown sync settings"):
        configure_sync(app, {"redis": {"url": "redis://x"}, "sync": {"maxln": 5}})
    with pytest.raises(ValueError, match="wrong type"):
        configure_sync(app, {"redis": {"url": "redis://x"}, "sync": {"maxlen": "5"}})


def test_configured_bus_starts_and_stops_with_the_app(redis_url, stream):
    app = Application()
    sync = configure_sync(app, {"redis": {"url": redis_url}, "sync": {"stream": stream, "block_ms": 100}})
    assert sync is not None and not sync.running
    app.start()
    assert sync.running and len(app.event_sinks) == 1
    wait_until(sync.is_connected, what="bus connected")
    app.teardown()
    assert not sync.running and not sync.is_connected() and app.event_sinks == []


def test_resume_position_pins_new_only_and_restarts_reset_streams(redis_url, stream, caplog):
    client = redis.Redis.from_url(redis_url)
    assert resume_position(client, stream, "$") == "0-0"  # no stream yet: everything to come
    assert resume_position(client, stream, "0-0") == "0-0"
    first = client.xadd(stream, {FIELD: "x"}).decode()
    assert resume_position(client, stream, "$") == first
    assert resume_position(client, stream, first) == first
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="kdk_app.sync"):
        # Our position is ahead of the stream's end: it is a new stream (Redis restarted).
        assert resume_position(client, stream, "99999999999999-0") == "0-0"
        assert resume_position(client, f"{stream}:gone", "5-0") == "0-0"
    messages = [r.getMessage() for r in caplog.records]
    assert any("was reset" in m for m in messages) and any("is gone" in m for m in messages)


def test_a_stream_made_anew_after_our_position_is_reported_as_new_not_as_trimmed(redis_url, stream, caplog):
    """What a Redis restart without persistence looks like once a publisher has written again."""
    client = redis.Redis.from_url(redis_url)
    position = client.xadd(stream, {FIELD: "old"}, id="1000-0").decode()
    client.delete(stream)
    client.xadd(stream, {FIELD: "new"}, id="2000-0")  # ids are times: the new one is later
    with caplog.at_level(logging.WARNING, logger="kdk_app.sync"):
        # Every entry of the new stream is after our position: reading on from it misses none.
        assert resume_position(client, stream, position) == position
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "new stream" in messages[0] and "trimmed past" not in messages[0]


# --- two instances on one Redis --------------------------------------------------------------


def test_event_on_a_is_heard_once_on_b_and_never_republished(nodes, redis_url, stream):
    a, b = nodes
    params = {"provider": "rest", "user": {"id": 7}, "query": {"room": "1"}}
    created = a.service.create({"text": "hello"}, params)

    # A's listener ran at once, on the caller's thread.
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
    # B's sinks saw it as remote (so the socket publisher and the bus leave it alone).
    assert [(e.event, e.remote) for e in b.sunk] == [("created", True)]

    # Barrier: B's own event goes through B's FIFO outbox, after any (wrong) re-publication.
    b.service.create({"text": "marker"})
    wait_until(lambda: len(a.heard) == 2, what="A to hear B's marker")
    wait_until(lambda: a.sync.stats.dropped_own == 1, what="A to read its own event back")
    assert a.texts() == ["hello", "marker"]
    assert b.texts() == ["hello", "marker"]
    assert redis.Redis.from_url(redis_url).xlen(stream) == 2
    assert b.sync.stats.received == 1 and b.sync.stats.published == 1
    assert a.sync.stats.as_dict()["published"] == 1


def test_duplicates_garbage_and_unknown_paths_are_dropped(nodes, redis_url, stream):
    a, b = nodes
    client = redis.Redis.from_url(redis_url)
    seal = StreamSigner(SECRET, stream).seal
    envelope = make_envelope("messages", "created", {"text": "once"}, None, "elsewhere").encode().encode()
    client.xadd(stream, {FIELD: seal(envelope)})
    client.xadd(stream, {FIELD: seal(envelope)})  # sent again (a retried write): same envelope id
    client.xadd(stream, {FIELD: "garbage"})
    client.xadd(stream, {"other": "field"})
    client.xadd(stream, {FIELD: seal(raw_envelope(v=99).encode())})
    unknown = make_envelope("nowhere", "created", {"text": "lost"}, None, "elsewhere")
    client.xadd(stream, {FIELD: seal(unknown.encode().encode())})
    a.service.create({"text": "after"})

    wait_until(lambda: b.texts() == ["once", "after"], what="B to survive garbage")
    stats = b.sync.stats.as_dict()
    assert stats["dropped_duplicate"] == 1
    assert stats["invalid"] == 1  # signed, but of an unknown version
    assert stats["forged"] == 2  # unsigned garbage, no envelope field
    assert stats["dropped_unknown_path"] == 1
    assert stats["received"] == 2
    assert b.sync.is_connected()


def test_stopped_instance_catches_up_from_its_last_id(nodes, redis_url, stream):
    a, b = nodes
    a.service.create({"text": "one"})
    wait_until(lambda: b.texts() == ["one"], what="B to hear 'one'")
    last_id = b.sync.last_id
    b.sync.stop()
    assert not b.sync.is_connected()

    a.service.create({"text": "two"})
    a.service.create({"text": "three"})
    client = redis.Redis.from_url(redis_url)
    wait_until(lambda: client.xlen(stream) == 3, what="A to publish")

    # A fresh object told where to resume...
    late = Node(redis_url, stream).start(from_id=last_id)
    # ...and the same object, which keeps its position across stop/start.
    b.start()
    try:
        wait_until(lambda: late.texts() == ["two", "three"], what="late node to catch up")
        wait_until(lambda: b.texts() == ["one", "two", "three"], what="B to catch up")
    finally:
        late.sync.stop()


def test_resuming_after_trimmed_events_warns_of_the_loss(nodes, redis_url, stream, caplog):
    a, b = nodes
    a.service.create({"text": "one"})
    wait_until(lambda: b.texts() == ["one"], what="B to hear 'one'")
    b.sync.stop()
    for text in ("two", "three", "four"):
        a.service.create({"text": text})
    client = redis.Redis.from_url(redis_url)
    wait_until(lambda: client.xlen(stream) == 4, what="A to publish")
    client.xtrim(stream, maxlen=1, approximate=False)

    with caplog.at_level(logging.WARNING, logger="kdk_app.sync"):
        b.start()
        wait_until(lambda: b.texts() == ["one", "four"], what="B to read what is left")
    assert any("may have been lost" in r.getMessage() for r in caplog.records)


# --- Redis outages ---------------------------------------------------------------------------


def test_redis_outage_keeps_local_events_and_delivers_them_after_reconnection(stream):
    port = free_port()
    process, url = start_redis(port=port)
    a, b = Node(url, stream), Node(url, stream)
    try:
        a.start()
        b.start()
        a.service.create({"text": "before"})
        wait_until(lambda: b.texts() == ["before"], what="B to hear 'before'")

        process.stop()  # by PID: the test owns this server
        wait_until(lambda: not a.sync.is_connected() and not b.sync.is_connected(), what="outage seen")

        a.service.create({"text": "during"})  # succeeds, and A's listener runs at once
        assert a.texts() == ["before", "during"]
        wait_until(lambda: a.sync.stats.publish_failures > 0, what="a failed publish attempt")

        process.start()  # same port; this Redis kept nothing on disk
        wait_until(a.sync.is_connected, what="A reconnected")
        wait_until(b.sync.is_connected, what="B reconnected")
        wait_until(lambda: b.texts() == ["before", "during"], what="B to hear 'during'")
        assert a.sync.pending == 0
        assert b.sync.stats.reconnects >= 1

        a.service.create({"text": "after"})
        wait_until(lambda: b.texts() == ["before", "during", "after"], what="B to hear 'after'")
        assert a.texts() == ["before", "during", "after"]
    finally:
        a.sync.stop()
        b.sync.stop()
        process.stop()


def test_full_outbox_drops_the_oldest_and_never_blocks_calls(stream):
    dead_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    node = Node(dead_url, stream, outbox_size=2)
    node.sync.start()
    try:
        for n in range(5):
            node.service.create({"text": str(n)})
        assert node.texts() == ["0", "1", "2", "3", "4"]
        wait_until(
            lambda: node.sync.stats.dropped_overflow == 3 and node.sync.pending == 2,
            what="the outbox to settle at its bound",
        )
        assert not node.sync.is_connected()
    finally:
        node.sync.stop()
    assert node.sync.pending == 2  # kept for a later start
