"""``Distribution``: one process's part in a partition, wiring registry, calls and events.

A heartbeat thread renews this instance's record and reconciles the mounted proxies with
everyone else's records; the listener, the responder and the event threads do the rest.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from typing import Any

from ..background import BackgroundThread
from ..core import Application, Service
from ..delivery import Delivery
from ..redis_connect import REDIS_ERRORS, AnyRedis, redis_client
from .caller import Caller
from .envelope import Message, NonceCache, Refused, Signer
from .events import EventPublisher, EventReceiver
from .listener import Listener
from .liveness import Liveness
from .mounts import Mounts
from .names import Names
from .registry import Declaration, Record, Registry, providers_by_path
from .responder import Responder
from .settings import DistributionSettings
from .stats import DistributionStats
from .user_notices import UserNotices

logger = logging.getLogger(__name__)

START_WAIT = 2.0  # s: how long start() waits for Redis before going on in the background


def default_instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Distribution:
    def __init__(
        self, app: Application, settings: DistributionSettings, *, instance_id: str | None = None
    ) -> None:
        self.app = app
        self.settings = settings
        self.key = settings.key
        self.instance = instance_id or default_instance_id()
        self.names = Names(settings.prefix, settings.key)
        self.signer = Signer(settings.secret, settings.key, settings.max_skew)
        self.stats = DistributionStats()
        # The channels emit as this says; without them, no socket client would see the event.
        self.delivery = app.channels.delivery if app.channels is not None else Delivery()
        self.client = self.request_client()
        self.liveness = Liveness(self.client, self.names.instances)
        self.registry = Registry(self.client, self.names, self.signer, self.stats, settings.ttl)
        self._nonces = NonceCache(settings.max_skew * 2)
        self._providers: dict[str, list[str]] = {}
        self._advertised = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._heartbeat = BackgroundThread("kdk-dist-heartbeat", self._run, wake=self._wake.set)
        self._running = False

        self.listener = Listener(
            self.connect,
            {
                self.names.reply(self.instance): self._on_reply_channel,
                self.names.events: self._on_event,
                self.names.registry: lambda _raw: self._wake.set(),
                self.names.users: lambda raw: self.user_notices.on_message(raw),
            },
            self.stats,
            on_subscribed=self._wake.set,
            route=self.names.instances,
        )
        self.caller = Caller(
            self.client,
            self.liveness,
            self.names,
            self.signer,
            self.stats,
            self.instance,
            lambda path: self._providers.get(path, []),
            lambda: self.listener.connected,
            timeout=settings.timeout,
            probe_interval=settings.probe_interval,
            claim_grace=settings.claim_grace,
        )
        self.mounts = Mounts(
            app,
            self.caller,
            self.stats,
            self.instance,
            consume=settings.consume,
            exposes=self.exposes,
            mount_path=settings.mount_path,
            publish=settings.publish,
        )
        self.publisher = EventPublisher(
            self.connect,
            self.names,
            self.signer,
            self.stats,
            self.instance,
            settings.socketio_channel,
            self.exposes,
            outbox_size=settings.outbox_size,
        )
        self.receiver = EventReceiver(
            app,
            self.signer,
            self.stats,
            self.instance,
            settings.socketio_channel,
            self._nonces,
            self.mounts.proxy_for,
            self.delivery,
        )
        self.user_notices = UserNotices(
            app, self.client, self.names, self.signer, self.stats, self.instance, self._nonces
        )
        self.responder = Responder(
            app,
            self.connect,
            self.client,
            self.names,
            self.signer,
            self.stats,
            self.instance,
            self.exposed_paths,
            concurrency=settings.concurrency,
        )

    def connect(self, timeout: float) -> AnyRedis:
        """A client of its own for a blocking loop; bounded timeouts, our loops do the retrying."""
        return redis_client(
            self.settings.redis_url, socket_timeout=timeout, connect_timeout=2.0, socket_keepalive=True
        )

    def request_client(self) -> AnyRedis:
        """The client of calls, on the request path: a hung Redis costs a call one bounded round
        trip (then 503), never redis-py's retries."""
        bound = self.settings.redis_timeouts
        return redis_client(
            self.settings.redis_url,
            socket_timeout=bound.socket,
            connect_timeout=bound.connect,
            socket_keepalive=True,
        )

    # --- what this instance offers -------------------------------------------------------
    def exposes(self, path: str) -> bool:
        service = self.app.services.get(path)
        return (
            service is not None and not getattr(service.impl, "remote", False) and self.settings.expose(path)
        )

    def exposed_paths(self) -> list[str]:
        return [path for path in list(self.app.services) if self.exposes(path)]

    def own_record(self) -> Record:
        services = {}
        for path in self.exposed_paths():
            service = self.app.services[path]
            services[path] = Declaration(path, tuple(service.methods), tuple(service.events))
        return Record(self.instance, services, self.settings.socketio_channel, 0)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> Distribution:
        if self._running:
            return self
        self._running = True
        self.listener.start()
        self.receiver.start()
        self.publisher.start()
        self.app.event_sinks.append(self.publisher.sink)
        self.app.event_sinks.append(self.user_notices.sink)
        self.app.on("service", self._on_service_change)
        self.app.on("service-removed", self._on_service_change)
        # Be reachable and mounted before the first request when Redis is there; else go on.
        if self.listener.subscribed.wait(START_WAIT):
            self._refresh_quietly()
        self.responder.start()
        self._heartbeat.start()
        logger.info("distribution %s started on key %r", self.instance, self.key)
        return self

    def stop(self) -> None:
        """Withdraw the record at once, finish running calls, stop every thread (bounded)."""
        if not self._running:
            return
        self._running = False
        self._heartbeat.stop(self.settings.heartbeat_interval + 2)
        if self._advertised:
            try:
                self.registry.withdraw(self.instance)
            except REDIS_ERRORS as exc:
                logger.warning("distribution: could not withdraw the record (it will expire): %s", exc)
            self._advertised = False
        self.responder.stop(5.0)
        for sink in (self.publisher.sink, self.user_notices.sink):
            if sink in self.app.event_sinks:
                self.app.event_sinks.remove(sink)
        self.publisher.stop(3.0)
        self.receiver.stop(2.0)
        self.listener.stop(2.0)
        self.app.off("service", self._on_service_change)
        self.app.off("service-removed", self._on_service_change)
        self.client.close()
        logger.info("distribution %s stopped", self.instance)

    @property
    def connected(self) -> bool:
        return self.listener.connected

    # --- heartbeat -------------------------------------------------------------------------
    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._wake.wait(self.settings.heartbeat_interval)
            self._wake.clear()
            if stop.is_set():
                return
            self._refresh_quietly()

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # noqa: BLE001 - Redis may be down: try again next beat
            self.stats.bump("redis_errors")
            logger.warning("distribution: heartbeat failed: %s", exc)

    def refresh(self) -> None:
        """Renew our record, read everyone's, mount and unmount proxies accordingly."""
        with self._lock:
            if self.listener.connected:  # advertise only while callers can see us alive
                record = self.own_record()
                if record.services:
                    self.registry.write(record)
                    self._advertised = True
                elif self._advertised:
                    self.registry.withdraw(self.instance)
                    self._advertised = False
            records = self.registry.read()
            self._providers = providers_by_path(records.values())
            self.mounts.reconcile(records.values())

    def _on_service_change(self, service: Service) -> None:
        if not getattr(service.impl, "remote", False):
            self._wake.set()  # a local service came or went: advertise it now

    # --- incoming messages -----------------------------------------------------------------
    def _open(self, raw: bytes, *kinds: str) -> Message | None:
        try:
            message = self.signer.open(raw, *kinds)
            if not self._nonces.add(message.nonce):
                raise Refused("replayed", "nonce seen before")
            return message
        except Refused as refused:
            self.stats.bump(f"refused_{refused.reason}")
            logger.warning("distribution: refused a message: %s", refused)
            return None

    def _on_reply_channel(self, raw: bytes) -> None:
        message = self._open(raw, "reply")
        if message is not None:
            self.caller.on_reply(message)

    def _on_event(self, raw: bytes) -> None:
        self.receiver.on_message(raw)

    # --- introspection ---------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "key": self.key,
            "connected": self.connected,
            "exposed": self.exposed_paths(),
            "mounted": self.mounts.paths,
            "stats": self.stats.as_dict(),
        }
