"""Counters of the sync bus, safe to bump from request and worker threads alike."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields


@dataclass
class SyncStats:
    published: int = 0  # envelopes written to the stream
    received: int = 0  # envelopes from other instances, dispatched locally
    dropped_own: int = 0  # our own envelopes read back
    dropped_duplicate: int = 0  # envelope ids seen before
    dropped_unknown_path: int = 0  # no service at that path on this instance
    dropped_overflow: int = 0  # oldest outbox messages dropped because it was full
    invalid: int = 0  # signed entries that are not valid envelopes (another version?)
    forged: int = 0  # entries refused: unsigned, bad signature, malformed, stale or replayed
    publish_failures: int = 0  # failed write attempts (batches), unserializable events
    saved: int = 0  # envelopes written to the durable outbox (MongoDB) before the call returned
    unsaved: int = 0  # envelopes the durable outbox could not take (kept in memory only)
    recovered: int = 0  # envelopes sent on behalf of an owner that stopped (durable outbox)
    reconnects: int = 0  # times the reader got Redis back after losing it
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # Told of every bump (counter name, amount): the Prometheus metrics (kdk_app/metrics).
    observers: list[Callable[[str, int], None]] = field(default_factory=list, repr=False, compare=False)
    # Told the lag (seconds) of every envelope received from another instance.
    lag_observers: list[Callable[[float], None]] = field(default_factory=list, repr=False, compare=False)

    def bump(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)
        for observer in self.observers:
            observer(name, amount)

    def observe_lag(self, seconds: float) -> None:
        for observer in self.lag_observers:
            observer(seconds)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {
                f.name: getattr(self, f.name)
                for f in fields(self)
                if f.name[0] != "_" and not f.name.endswith("observers")
            }
