"""The durable outbox: no event of an acknowledged write is lost when its process dies.

Real servers: SecantusDB holds the outbox, a Redis started here carries the events, and the
last test SIGKILLs a whole gunicorn instance (master and workers) during a Redis outage.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
import requests
from clients import wait_until
from pymongo import monitoring

from kdk_app.core import Application
from kdk_app.embedded import free_port, start_redis
from kdk_app.services import MemoryService
from kdk_app.sync import EventSync
from kdk_app.sync.durable import OUTBOX, OWNERS, DurableStore

pytestmark = pytest.mark.timeout(120)

FAST = {"block_ms": 100, "socket_timeout": 0.5, "backoff": (0.02, 0.3), "orphan_after": 1.0}
SECRET = b"test-durable-secret-shared-by-every-node"


class Node:
    """An application with a ``messages`` service and a bus whose outbox is in MongoDB."""

    def __init__(self, redis_url: str, stream: str, db: Any, **options: Any) -> None:
        self.app = Application()
        self.service = self.app.use("messages", MemoryService())
        self.sync = EventSync(
            self.app, redis_url, stream=stream, secret=SECRET, durable=lambda: db, **{**FAST, **options}
        )
        self.heard: list[tuple[str, str]] = []
        self.service.on("created", self._record)

    def _record(self, data: dict[str, Any], context: Any) -> None:
        if getattr(context, "remote", False):  # heard from another instance through the bus
            self.heard.append((data["text"], context.origin))

    def texts(self) -> list[str]:
        return [text for text, _origin in self.heard]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    process, url = start_redis()
    try:
        yield url
    finally:
        process.stop()


@pytest.fixture
def db(mongo_url: str) -> Iterator[Any]:
    client = pymongo.MongoClient(mongo_url)
    name = f"durable_{uuid.uuid4().hex[:10]}"
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()


@pytest.fixture
def stream() -> str:
    return f"test:durable:{uuid.uuid4().hex}"


def outbox_size(db: Any, stream: str) -> int:
    return db[OUTBOX].count_documents({"stream": stream})


def test_an_event_is_saved_before_the_call_returns(stream, db):
    dead_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: every send fails
    node = Node(dead_url, stream, db)
    node.sync.start()
    try:
        node.service.create({"text": "kept"})
        # Saved on the caller's thread: there the moment create() returned.
        assert outbox_size(db, stream) == 1 and node.sync.stats.saved == 1
        # The owner's record is the drainer thread's first beat, which may come just after.
        assert wait_until(lambda: db[OWNERS].find_one({"_id": node.sync.instance_id}), timeout=10)
        assert db[OWNERS].find_one({"_id": node.sync.instance_id})["stream"] == stream
    finally:
        node.sync.stop()
    # Stopped with the event unsent: the owner stays, for a live bus to drain once it is stale.
    assert db[OWNERS].count_documents({"_id": node.sync.instance_id}) == 1


def test_a_sent_event_is_deleted_and_a_clean_stop_leaves_nothing_to_drain(redis_url, stream, db):
    node = Node(redis_url, stream, db)
    node.sync.start()
    try:
        wait_until(node.sync.is_connected)
        node.service.create({"text": "sent"})
        assert node.sync.stats.saved == 1
        assert wait_until(lambda: outbox_size(db, stream) == 0)
    finally:
        node.sync.stop()
    assert db[OWNERS].count_documents({"_id": node.sync.instance_id}) == 0


def test_events_left_by_a_dead_owner_reach_every_live_bus_once_and_in_order(redis_url, stream, db):
    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    origin = Node(dead_url, stream, db)  # its Redis is unreachable for its whole life
    b, c = Node(redis_url, stream, db), Node(redis_url, stream, db)
    origin.sync.start()
    for bus in (b, c):
        bus.sync.start()
        wait_until(bus.sync.is_connected)
    texts = [f"m{i}" for i in range(50)]
    for text in texts:
        origin.service.create({"text": text})
    assert outbox_size(db, stream) == 50
    # Dies without a word: its threads stop, its owner document stops beating.
    origin.sync._drainer.stop(1)
    origin.sync._publisher.stop(1)
    origin.sync._reader.stop(1)
    try:
        for bus in (b, c):
            assert wait_until(lambda bus=bus: len(bus.heard) >= 50, timeout=15)
        time.sleep(0.5)  # any duplicate would arrive within this
        for bus in (b, c):
            assert bus.texts() == texts  # once each, in the order they were acknowledged
            assert {o for _t, o in bus.heard} == {origin.sync.instance_id}
        assert b.sync.stats.recovered + c.sync.stats.recovered == 50
        assert wait_until(lambda: outbox_size(db, stream) == 0)
        assert wait_until(lambda: db[OWNERS].count_documents({"_id": origin.sync.instance_id}) == 0)
    finally:
        b.sync.stop()
        c.sync.stop()


def test_a_live_owner_is_never_drained_by_others(redis_url, stream, db):
    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    slow = Node(dead_url, stream, db)  # alive (beating) but unable to reach Redis
    other = Node(redis_url, stream, db)
    slow.sync.start()
    other.sync.start()
    try:
        slow.service.create({"text": "mine"})
        time.sleep(3 * FAST["orphan_after"])  # several drain rounds of the other bus
        assert other.heard == [] and other.sync.stats.recovered == 0
        assert outbox_size(db, stream) == 1
    finally:
        other.sync.stop()
        slow.sync.stop()


def test_events_acknowledged_during_a_redis_outage_survive_a_sigkill_of_their_instance(
    app_server_factory, redis_server_factory
):
    redis_process, redis_url = redis_server_factory()
    env = {
        "REDIS_URL": redis_url,
        "KDK_MONGO__DATABASE": f"durable_{uuid.uuid4().hex[:10]}",
        "KDK_SYNC__ORPHAN_AFTER": "2",
    }
    origin = app_server_factory(env=env, workers=2)
    other = app_server_factory(env=env)  # one process: its listeners are one `heard` service

    def heard() -> list[dict[str, Any]]:
        return requests.get(other.url + "/heard", timeout=5).json()

    requests.post(origin.url + "/messages", json={"text": "before"}, timeout=5)
    assert wait_until(lambda: [r["text"] for r in heard()] == ["before"], timeout=15)

    redis_process.stop()
    session = requests.Session()  # keep-alive: every create goes to one worker, in order
    texts = [f"during-{i}" for i in range(50)]
    for text in texts:
        assert session.post(origin.url + "/messages", json={"text": text}, timeout=5).status_code == 201
    session.close()
    os.killpg(origin.process.pid, signal.SIGKILL)  # master and both workers, no clean-up at all
    origin.process.stop()

    redis_process.start()
    assert wait_until(lambda: len(heard()) >= 51, timeout=30, interval=0.2)
    time.sleep(1.0)  # any duplicate would arrive within this
    received = [r["text"] for r in heard()]
    assert received == ["before", *texts]  # every acknowledged event, once, in order
    assert requests.get(other.url + "/messages", params={"$limit": 0}, timeout=5).json()["total"] == 51


def test_concurrent_saves_share_inserts_and_each_gets_its_own_id(mongo_url, db, stream):
    inserts: list[int] = []

    class CountInserts(monitoring.CommandListener):
        def started(self, event: monitoring.CommandStartedEvent) -> None:
            if event.command_name == "insert" and event.command.get("insert") == OUTBOX:
                inserts.append(len(event.command.get("documents", [])))

        def succeeded(self, event: Any) -> None: ...

        def failed(self, event: Any) -> None: ...

    client = pymongo.MongoClient(mongo_url, event_listeners=[CountInserts()])
    store = DurableStore(lambda: client[db.name], "origin-1", stream=stream)
    ids: list[Any] = []
    threads = [
        threading.Thread(target=lambda i=i: ids.append(store.save(f"m{i}".encode()))) for i in range(40)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    client.close()
    assert None not in ids and len(set(ids)) == 40
    assert outbox_size(db, stream) == 40
    assert sum(inserts) == 40 and len(inserts) < 40  # grouped: fewer round trips than events


def test_a_save_without_mongodb_answers_within_its_bound_and_keeps_the_event_in_memory(stream):
    client = pymongo.MongoClient(f"mongodb://127.0.0.1:{free_port()}/", serverSelectionTimeoutMS=300)
    store = DurableStore(lambda: client["nowhere"], "origin-1", stream=stream, timeout=0.3)
    started = time.monotonic()
    assert store.save(b"m") is None
    assert time.monotonic() - started < 1.0
    started = time.monotonic()
    assert store.save(b"m2") is None  # the cool-down: no second wait right after a failure
    assert time.monotonic() - started < 0.05
    client.close()
