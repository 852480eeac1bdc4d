"""Service events across instances: providers publish them, consumers dispatch them.

A provider seals each event of an exposed service on the caller's thread (a snapshot) and a
background thread PUBLISHes it on the partition's events channel. Each consumer process
dispatches it on its proxy, marked ``meta["distributed"]`` so that no sink sends it back.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from ..background import BackgroundThread, Backoff
from ..core import Application, HookContext, Service, ServiceEvent
from ..delivery import LOCAL, SKIP, Delivery
from ..redis_connect import AnyRedis
from .envelope import NonceCache, Refused, Signer
from .names import Names
from .stats import DistributionStats

logger = logging.getLogger(__name__)

META_KEY = "distributed"  # ServiceEvent.meta flag: this event came from another instance
_BATCH = 100
# A batch in one round trip on any Redis (cluster pipelines refuse PUBLISH): ARGV[1] is the
# channel, the rest the messages. No key, so on a cluster any master runs it, and Redis
# Cluster hands every PUBLISH to all nodes.
PUBLISH_ALL = "for i = 2, #ARGV do redis.call('PUBLISH', ARGV[1], ARGV[i]) end return #ARGV - 1"


def is_distributed(event: ServiceEvent) -> bool:
    return bool(event.meta.get(META_KEY))


def _context_summary(context: Any) -> dict[str, Any]:
    params = getattr(context, "params", None) or {}
    user = params.get("user")
    return {
        "method": getattr(context, "method", None),
        "id": getattr(context, "id", None),
        "provider": params.get("provider"),
        "query": params.get("query") or {},
        "user": user if isinstance(user, dict) else None,
    }


class EventPublisher:
    def __init__(
        self,
        connect: Callable[[float], AnyRedis],
        names: Names,
        signer: Signer,
        stats: DistributionStats,
        instance: str,
        channel: str,
        exposes: Callable[[str], bool],
        *,
        outbox_size: int,
    ) -> None:
        self.connect = connect
        self.names = names
        self.signer = signer
        self.stats = stats
        self.instance = instance
        self.channel = channel
        self.exposes = exposes
        self._outbox: queue.Queue[bytes] = queue.Queue(maxsize=outbox_size)
        self._thread = BackgroundThread("kdk-dist-events", self._run)

    def sink(self, event: ServiceEvent) -> None:
        """The ``app.event_sinks`` entry: this instance's own events of exposed services only."""
        if event.remote or is_distributed(event) or not self.exposes(event.path):
            return
        body: dict[str, Any] = {
            "origin": self.instance,
            "channel": self.channel,
            "path": event.path,
            "event": event.event,
            "data": event.data,
            "context": _context_summary(event.context),
        }
        if event.payload is not event.data:  # a hook set dispatch: the consumer's sockets get it
            body["dispatch"] = event.payload
        try:
            self._outbox.put_nowait(self.signer.seal("event", body))
        except (TypeError, ValueError):
            self.stats.bump("events_dropped")
            logger.exception("distribution: cannot encode %s %s", event.path, event.event)
        except queue.Full:
            self.stats.bump("events_dropped")
            logger.warning("distribution: event outbox full, dropping %s %s", event.path, event.event)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._thread.stop(timeout)

    def _run(self, stop: threading.Event) -> None:
        client = self.connect(2.0)
        backoff = Backoff()
        try:
            while True:
                try:
                    batch = [self._outbox.get(timeout=0.25)]
                except queue.Empty:
                    if stop.is_set():
                        return
                    continue
                while len(batch) < _BATCH:
                    try:
                        batch.append(self._outbox.get_nowait())
                    except queue.Empty:
                        break
                while True:
                    try:
                        client.eval(PUBLISH_ALL, 0, self.names.events, *batch)
                        self.stats.bump("events_published", len(batch))
                        backoff.reset()
                        break
                    except Exception as exc:  # noqa: BLE001 - keep the batch, retry until stopped
                        self.stats.bump("redis_errors")
                        logger.warning("distribution: cannot publish events: %s", exc)
                        if stop.wait(backoff.next()):
                            self.stats.bump("events_dropped", len(batch))
                            return
        finally:
            client.close()


class EventReceiver:
    """Verifies events from the listener thread; dispatches them in order on a thread of its own,
    so a listener that calls a remote service cannot block the replies it waits for."""

    def __init__(
        self,
        app: Application,
        signer: Signer,
        stats: DistributionStats,
        instance: str,
        channel: str,
        nonces: NonceCache,
        proxy_for: Callable[[str], Service | None],
        delivery: Delivery,
    ) -> None:
        self.app = app
        self.signer = signer
        self.stats = stats
        self.instance = instance
        self.channel = channel
        self.nonces = nonces
        self.proxy_for = proxy_for
        self.delivery = delivery
        self._inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        # Its loop blocks on the inbox: stop() wakes it with the None sentinel.
        self._thread = BackgroundThread("kdk-dist-dispatch", self._run, wake=lambda: self._inbox.put(None))

    def on_message(self, raw: bytes) -> None:
        try:
            message = self.signer.open(raw, "event")
            if not self.nonces.add(message.nonce):
                raise Refused("replayed", "event nonce seen before")
            body = message.body
            if not all(isinstance(body.get(k), str) for k in ("origin", "channel", "path", "event")):
                raise Refused("malformed", "event without origin, channel, path or event")
        except Refused as refused:
            self.stats.bump(f"refused_{refused.reason}")
            logger.warning("distribution: refused an event: %s", refused)
            return
        if body["origin"] != self.instance:
            self._inbox.put(body)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._thread.stop(timeout)

    def _run(self, _stop: threading.Event) -> None:  # ends at the None that stop() queues
        while True:
            body = self._inbox.get()
            if body is None:
                return
            try:
                self.dispatch(body)
            except Exception:
                logger.exception(
                    "distribution: dispatching %s %s failed", body.get("path"), body.get("event")
                )

    def dispatch(self, body: dict[str, Any]) -> None:
        service = self.proxy_for(body["path"])
        if service is None:
            return  # a path this instance does not consume
        context = _summary_context(self.app, service, body)
        event = ServiceEvent(
            service.path,
            body["event"],
            body.get("data"),
            context,
            meta={META_KEY: True, "origin": body["origin"]},
        )
        mode = SKIP if body["channel"] == self.channel else LOCAL
        with self.delivery.scope(mode):
            self.app.dispatch_event(event)
        self.stats.bump("events_received")


def _summary_context(app: Application, service: Service, body: dict[str, Any]) -> HookContext:
    sent = body.get("context")
    summary: dict[str, Any] = sent if isinstance(sent, dict) else {}
    params: dict[str, Any] = {"provider": summary.get("provider"), "query": summary.get("query") or {}}
    if summary.get("user") is not None:
        params["user"] = summary["user"]
    sent_method = summary.get("method")
    method = sent_method if isinstance(sent_method, str) else "create"
    context = HookContext(app, service, method, id=summary.get("id"), params=params)
    context.event = body["event"]
    context.result = body.get("data")
    if "dispatch" in body:
        context.dispatch = body["dispatch"]
    return context
