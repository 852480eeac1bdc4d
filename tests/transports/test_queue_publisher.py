"""The Socket.IO queue's publishes leave the request path: queued, then sent in order by one sender."""

import json
import os
import signal
import time
import uuid

import redis
from clients import wait_until

from kdk_app.transports.redis_queue import ResilientRedisManager


def _subscriber(url: str, channel: str):
    pubsub = redis.Redis.from_url(url).pubsub()
    pubsub.subscribe(channel)
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    return pubsub


def _received(pubsub, count: int, timeout: float = 5.0) -> list[int]:
    numbers: list[int] = []
    deadline = time.monotonic() + timeout
    while len(numbers) < count and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message is not None and message["type"] == "message":
            numbers.append(json.loads(message["data"])["n"])
    return numbers


def test_a_burst_of_publishes_reaches_redis_complete_and_in_order(redis_url):
    channel = f"queue-{uuid.uuid4().hex[:8]}"
    subscriber = _subscriber(redis_url, channel)
    queue = ResilientRedisManager(redis_url, channel)
    try:
        for n in range(500):
            queue._publish({"n": n})
        assert _received(subscriber, 500) == list(range(500))
        assert queue.dropped_publishes == 0
    finally:
        queue.stop_publisher()
        subscriber.close()


def test_stopping_the_publisher_sends_what_is_queued_first(redis_url):
    channel = f"queue-{uuid.uuid4().hex[:8]}"
    subscriber = _subscriber(redis_url, channel)
    queue = ResilientRedisManager(redis_url, channel)
    for n in range(100):
        queue._publish({"n": n})
    queue.stop_publisher()
    try:
        assert queue.pending_publishes == 0
        assert _received(subscriber, 100) == list(range(100))
    finally:
        subscriber.close()


def test_a_hung_redis_never_holds_a_publish_and_what_queues_meanwhile_is_sent_after(
    redis_server_factory,
):
    redis_process, url = redis_server_factory()
    channel = f"queue-{uuid.uuid4().hex[:8]}"
    subscriber = _subscriber(url, channel)
    queue = ResilientRedisManager(url, channel)
    queue._publish({"n": -1})  # connects the sender while Redis answers
    assert _received(subscriber, 1) == [-1]
    os.kill(redis_process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        queue._publish({"n": 0})  # taken by the sender, times out after the bound, dropped
        assert time.monotonic() - started < 0.05  # the caller only queued it
        assert wait_until(lambda: queue.dropped_publishes == 1, timeout=5)
        started = time.monotonic()
        for n in range(1, 6):  # during the cool-down: queued, not dropped
            queue._publish({"n": n})
        assert time.monotonic() - started < 0.05
    finally:
        os.kill(redis_process.pid, signal.SIGCONT)
    try:
        # 0 timed out on the client side, but Redis may still run it once resumed: it was
        # written to the socket. Either way it comes at most once, and first.
        received = _received(subscriber, 6, timeout=3)
        assert received in ([1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5])
        assert queue.dropped_publishes == 1
    finally:
        queue.stop_publisher()
        subscriber.close()
