"""Signed sync envelopes: entries written to the stream without the secret never reach a listener."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests
from clients import wait_until

from kdk_app.config import environment_overrides
from kdk_app.core import Application
from kdk_app.services import MemoryService
from kdk_app.sync import EventSync, configure_sync
from kdk_app.sync.envelope import FIELD, make_envelope
from kdk_app.sync.secret import resolve_sync_secret
from kdk_app.sync.signed import StreamSigner

pytestmark = pytest.mark.timeout(60)

FAST = {"block_ms": 100, "socket_timeout": 0.5, "backoff": (0.02, 0.3)}
SECRET = b"sync-signing-test-secret-of-32-bytes!"


class Node:
    """One application with a ``messages`` service, its signed bus and what its listener heard."""

    def __init__(self, url: str, stream: str, secret: bytes = SECRET, **options: Any) -> None:
        self.app = Application()
        self.service = self.app.use("messages", MemoryService())
        self.sync = EventSync(self.app, url, stream=stream, secret=secret, **{**FAST, **options})
        self.heard: list[str] = []
        self.service.on("created", lambda data, context: self.heard.append(data["text"]))

    def start(self, **kwargs: Any) -> Node:
        self.sync.start(**kwargs)
        assert wait_until(self.sync.is_connected)
        return self


@pytest.fixture
def stream() -> str:
    return f"test:signed:{uuid.uuid4().hex}"


@pytest.fixture
def nodes(redis_url: str, stream: str) -> Iterator[tuple[Node, Node]]:
    a, b = Node(redis_url, stream).start(), Node(redis_url, stream).start()
    try:
        yield a, b
    finally:
        a.sync.stop()
        b.sync.stop()


def envelope_bytes(text: str, origin: str = "attacker") -> bytes:
    return make_envelope("messages", "created", {"text": text}, None, origin).encode().encode()


def test_injected_entries_never_reach_listeners_and_are_counted_as_forged(
    nodes, redis_url, stream, monkeypatch
):
    a, b = nodes
    client = redis.Redis.from_url(redis_url)
    a.service.create({"text": "genuine"})
    assert wait_until(lambda: b.heard == ["genuine"])
    [(genuine_id, genuine_fields)] = client.xrange(stream)
    genuine = genuine_fields[FIELD.encode()]

    client.xadd(stream, {FIELD: envelope_bytes("unsigned")})  # the old, unsigned format
    client.xadd(stream, {FIELD: StreamSigner(b"not-the-secret", stream).seal(envelope_bytes("wrong key"))})
    client.xadd(stream, {FIELD: StreamSigner(SECRET, "another-stream").seal(envelope_bytes("elsewhere"))})
    client.xadd(stream, {FIELD: genuine.replace(b"genuine", b"changed")})  # replayed, body changed
    client.xadd(stream, {FIELD: genuine})  # replayed verbatim, within the window: nonce seen
    monkeypatch.setattr("kdk_app.signing.now_ms", lambda: 1_000_000)  # sealed long ago...
    stale = StreamSigner(SECRET, stream).seal(envelope_bytes("from 1970"))
    monkeypatch.undo()
    client.xadd(stream, {FIELD: stale})  # ...and written now: its entry id says so
    client.xadd(stream, {FIELD: b"kdk1.deadbeef"})
    client.xadd(stream, {"no-envelope": "at all"})
    forged = 8

    a.service.create({"text": "after"})
    assert wait_until(lambda: b.heard == ["genuine", "after"])
    assert wait_until(lambda: a.sync.stats.forged == forged)
    assert b.sync.stats.forged == forged
    assert a.heard == ["genuine", "after"]  # nothing injected reached A's listener either
    assert b.sync.stats.received == 2 and b.sync.stats.invalid == 0
    assert b.sync.is_connected()
    assert client.xrange(stream)[0][0] == genuine_id


def test_refused_entries_are_logged_once_per_interval(nodes, redis_url, stream, caplog):
    a, b = nodes
    client = redis.Redis.from_url(redis_url)
    with caplog.at_level(logging.WARNING, logger="kdk_app.sync"):
        for n in range(5):
            client.xadd(stream, {FIELD: envelope_bytes(f"flood {n}")})
        assert wait_until(lambda: b.sync.stats.forged == 5 and a.sync.stats.forged == 5)
    refusals = [r for r in caplog.records if r.name == "kdk_app.sync.refusals"]
    assert len(refusals) == 2  # one per bus, not one per entry
    assert "refused 1 stream entry" in refusals[0].getMessage()


def test_reading_entries_again_from_an_earlier_position_is_not_a_replay(nodes, redis_url, stream):
    a, b = nodes
    a.service.create({"text": "one"})
    assert wait_until(lambda: b.heard == ["one"])
    b.sync.stop()
    b.start(from_id="0-0")  # reads "one" again: the same entry, so the same nonce
    a.service.create({"text": "two"})
    assert wait_until(lambda: b.heard == ["one", "two"])
    assert wait_until(lambda: b.sync.stats.dropped_duplicate == 1)
    assert b.sync.stats.forged == 0


def test_instances_with_different_secrets_refuse_each_other(redis_url, stream):
    a = Node(redis_url, stream).start()
    b = Node(redis_url, stream, secret=b"another-secret-entirely-32-bytes!!").start()
    try:
        a.service.create({"text": "from a"})
        assert wait_until(lambda: b.sync.stats.forged == 1)
        assert b.heard == [] and b.sync.stats.received == 0
    finally:
        a.sync.stop()
        b.sync.stop()


# --- where the secret comes from ---------------------------------------------------------


def test_sync_secret_comes_from_the_environment_then_distribution_then_jwt():
    assert environment_overrides({"KDK_SYNC__SECRET": "s" * 40})["sync"]["secret"] == "s" * 40
    own = resolve_sync_secret({"sync": {"secret": "s" * 40}, "distribution": {"secret": "d"}})
    assert own == b"s" * 40
    from_distribution = resolve_sync_secret(
        {"distribution": {"secret": "d"}, "authentication": {"secret": "j"}}
    )
    from_jwt = resolve_sync_secret({"authentication": {"secret": "j"}})
    # Derived keys: never the distribution or JWT secret itself, and stable across processes.
    assert from_distribution not in (b"d", b"j") and from_jwt not in (b"d", b"j")
    assert from_distribution != from_jwt
    assert from_jwt == resolve_sync_secret({"authentication": {"secret": "j"}, "env": "production"})
    assert resolve_sync_secret({"sync": {"secret": 12345}}) == b"12345"  # KDK_* JSON numbers


def test_production_refuses_to_start_the_bus_without_a_secret(redis_url):
    settings = {"env": "production", "redis": {"url": redis_url}}
    with pytest.raises(RuntimeError, match="KDK_SYNC__SECRET"):
        configure_sync(Application(), settings)
    # Disabled, it needs none.
    assert configure_sync(Application(), {**settings, "sync": {"enabled": False}}) is None


def test_development_instances_share_a_generated_secret_through_redis(redis_url, stream):
    settings = {
        "env": "development",
        "redis": {"url": redis_url},
        "sync": {"stream": stream, "block_ms": 100},
    }
    assert resolve_sync_secret(settings) == resolve_sync_secret(settings)
    apps = [Application(), Application()]
    heard: list[str] = []
    for app in apps:
        app.use("messages", MemoryService())
    apps[1].service("messages").on("created", lambda data, context: heard.append(data["text"]))
    buses = [configure_sync(app, settings) for app in apps]
    for app in apps:
        app.start()
    try:
        for bus in buses:
            assert wait_until(bus.is_connected)
        apps[0].service("messages").create({"text": "shared"})
        assert wait_until(lambda: heard == ["shared"])
    finally:
        for app in apps:
            app.teardown()


# --- a real server -----------------------------------------------------------------------


def test_a_running_server_hears_signed_entries_only(app_server_factory, redis_url, stream):
    secret = "e2e-sync-secret-" + uuid.uuid4().hex
    server = app_server_factory(
        env={
            "REDIS_URL": redis_url,
            "KDK_SYNC__SECRET": secret,
            "KDK_SYNC__STREAM": stream,
            "KDK_MONGO__DATABASE": f"sig_{uuid.uuid4().hex[:10]}",
        }
    )
    client = redis.Redis.from_url(redis_url)
    signer = StreamSigner(secret.encode(), stream)

    def heard() -> list[str]:
        return [r["text"] for r in requests.get(server.url + "/heard", timeout=5).json()]

    def reader_is_listening() -> bool:
        # The reader starts at the stream's end: probe until a signed entry gets through.
        client.xadd(stream, {FIELD: signer.seal(envelope_bytes("probe"))})
        return "probe" in heard()

    assert wait_until(reader_is_listening, timeout=10, interval=0.2)
    client.xadd(stream, {FIELD: envelope_bytes("unsigned")})
    client.xadd(stream, {FIELD: StreamSigner(b"guessed", stream).seal(envelope_bytes("guessed"))})
    client.xadd(stream, {FIELD: signer.seal(envelope_bytes("signed"))})

    assert wait_until(lambda: heard()[-1] == "signed", timeout=10)
    assert set(heard()) == {"probe", "signed"}
    assert server.log_text().count("sync: refused") == 1  # two refused, reported once
