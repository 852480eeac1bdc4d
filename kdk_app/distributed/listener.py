"""One pub/sub connection per process: replies, remote events, registry changes.

Its subscription to this instance's reply channel is also how others see that we are alive,
so ``connected`` is exact: True only while subscribed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

from ..background import BackgroundThread, Backoff
from .stats import DistributionStats

logger = logging.getLogger(__name__)

Handler = Callable[[bytes], None]


class Listener:
    def __init__(
        self,
        connect: Callable[[float], redis.Redis],
        handlers: dict[str, Handler],
        stats: DistributionStats,
        on_subscribed: Callable[[], None] = lambda: None,
    ) -> None:
        self.connect = connect
        self.handlers = handlers
        self.stats = stats
        self.on_subscribed = on_subscribed
        self.subscribed = threading.Event()
        self._thread = BackgroundThread("kdk-dist-listener", self._run)

    @property
    def connected(self) -> bool:
        return self.subscribed.is_set()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._thread.stop(timeout)
        self.subscribed.clear()

    def _run(self, stop: threading.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            client = self.connect(5.0)
            pubsub = client.pubsub()
            try:
                pubsub.subscribe(*self.handlers)
                while not stop.is_set():
                    message = pubsub.get_message(timeout=0.25)  # how soon stop() is noticed
                    if not message:
                        continue
                    if message.get("type") == "message":
                        self._handle(message)
                    elif message.get("type") == "subscribe" and message.get("data") == len(self.handlers):
                        # Confirmed for every channel: from now on others see us alive.
                        self.subscribed.set()
                        backoff.reset()
                        self.on_subscribed()
            except Exception as exc:  # noqa: BLE001 - any failure: resubscribe after a pause
                self.subscribed.clear()
                self.stats.bump("redis_errors")
                logger.warning("distribution: lost the Redis subscription, retrying: %s", exc)
                stop.wait(backoff.next())
            finally:
                self.subscribed.clear()
                try:
                    pubsub.close()
                    client.close()
                except Exception:  # noqa: BLE001 - closing a broken connection may fail too
                    pass

    def _handle(self, message: dict[str, object]) -> None:
        channel = message["channel"]
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        handler = self.handlers.get(name)
        data = message["data"]
        if handler is None or not isinstance(data, (bytes, str)):
            return
        try:
            handler(data if isinstance(data, bytes) else data.encode())
        except Exception:
            logger.exception("distribution: handling a message on %s failed", name)
