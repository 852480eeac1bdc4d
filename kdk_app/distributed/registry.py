"""The service registry: one signed record per instance, with a TTL its heartbeat renews.

``<base>:record:<instance>`` holds the record and expires when the instance stops renewing it;
``<base>:instances`` lists who ever wrote one, so readers need no SCAN (they prune the ids
whose record is gone). A message on ``<base>:registry`` only says "read again": it carries
nothing to trust, so it needs no signature.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..redis_connect import AnyRedis
from .envelope import Refused, Signer
from .names import Names
from .stats import DistributionStats

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Declaration:
    """What a provider says about one service: its public methods and its events."""

    path: str
    methods: tuple[str, ...]
    events: tuple[str, ...]

    def merged(self, other: Declaration) -> Declaration:
        # Replicas of different versions: the union, so the mount does not flip between them.
        return Declaration(
            self.path,
            tuple(sorted(set(self.methods) | set(other.methods))),
            tuple(sorted(set(self.events) | set(other.events))),
        )


@dataclass(frozen=True)
class Record:
    instance: str
    services: dict[str, Declaration]
    channel: str
    ts: int

    def body(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "channel": self.channel,
            "services": {
                path: {"methods": list(d.methods), "events": list(d.events)}
                for path, d in self.services.items()
            },
        }


def parse_record(body: dict[str, Any], ts: int) -> Record:
    instance, channel, services = body.get("instance"), body.get("channel"), body.get("services")
    if not isinstance(instance, str) or not isinstance(channel, str) or not isinstance(services, dict):
        raise Refused("malformed", "record without instance, channel or services")
    declarations = {}
    for path, spec in services.items():
        methods = spec.get("methods") if isinstance(spec, dict) else None
        events = spec.get("events") if isinstance(spec, dict) else None
        if not isinstance(methods, list) or not isinstance(events, list):
            raise Refused("malformed", f"bad declaration of {path!r}")
        declarations[path] = Declaration(path, tuple(map(str, methods)), tuple(map(str, events)))
    return Record(instance, declarations, channel, ts)


class Registry:
    def __init__(
        self,
        client: AnyRedis,
        names: Names,
        signer: Signer,
        stats: DistributionStats,
        ttl: float,
    ) -> None:
        self.client = client
        self.names = names
        self.signer = signer
        self.stats = stats
        self.ttl_ms = int(ttl * 1000)
        self._last_written: dict[str, Any] | None = None

    def write(self, record: Record) -> None:
        """Renew ``record``; announce it when it is new or changed, so readers need not wait."""
        body = record.body()
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.names.record(record.instance), self.signer.seal("record", body), px=self.ttl_ms)
        pipe.sadd(self.names.instances, record.instance)
        pipe.execute()
        if body != self._last_written:  # after the write: a reader told to look finds it
            self.client.publish(self.names.registry, record.instance)  # no PUBLISH in cluster pipelines
        self._last_written = body

    def withdraw(self, instance: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(self.names.record(instance))
        pipe.srem(self.names.instances, instance)
        pipe.execute()
        self.client.publish(self.names.registry, instance)
        self._last_written = None

    def read(self) -> dict[str, Record]:
        """Every live, verified record of the partition, by instance id."""
        ids = sorted(
            i.decode() if isinstance(i, bytes) else str(i) for i in self.client.smembers(self.names.instances)
        )
        if not ids:
            return {}
        raws = self.client.mget([self.names.record(i) for i in ids])
        records: dict[str, Record] = {}
        gone: list[str] = []
        for instance, raw in zip(ids, raws, strict=True):
            if raw is None:
                gone.append(instance)
                continue
            try:
                message = self.signer.open(raw, "record")
                record = parse_record(message.body, message.ts)
            except Refused as refused:
                self.stats.bump(f"refused_{refused.reason}")
                logger.warning("distribution: refusing the record of %r: %s", instance, refused)
                continue
            if record.instance == instance:
                records[instance] = record
        if gone:
            self.client.srem(self.names.instances, *gone)
        return records


def providers_by_path(records: Iterable[Record]) -> dict[str, list[str]]:
    """Instance ids serving each path."""
    by_path: dict[str, list[str]] = {}
    for record in records:
        for path in record.services:
            by_path.setdefault(path, []).append(record.instance)
    return by_path
