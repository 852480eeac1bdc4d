"""Counters of one process's distribution, safe to bump from any thread or greenlet."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields


@dataclass
class DistributionStats:
    calls_sent: int = 0  # remote calls this process sent (retries included)
    calls_served: int = 0  # remote calls this process executed for others
    calls_failed: int = 0  # calls sent that ended in an error (remote or local)
    retries: int = 0  # idempotent calls sent again after their provider was lost
    unavailable: int = 0  # calls refused at once: no live provider
    timeouts: int = 0  # calls that reached their deadline
    expired: int = 0  # calls dropped by a provider because their deadline had passed
    events_published: int = 0  # local events sent to consumers
    events_received: int = 0  # remote events dispatched here
    events_dropped: int = 0  # events lost: outbox full, unencodable, or no proxy here
    user_notices_sent: int = 0  # changes of this process's users announced to the key
    user_notices_received: int = 0  # such changes from other processes, followed here
    mounts: int = 0  # remote services mounted
    unmounts: int = 0  # remote services removed
    refused_unsigned: int = 0  # messages with no signature
    refused_forged: int = 0  # messages whose signature does not verify
    refused_stale: int = 0  # messages outside the validity window
    refused_replayed: int = 0  # messages whose nonce was seen before
    refused_malformed: int = 0  # signed, but not a valid message for here
    redis_errors: int = 0  # failed Redis round trips in background loops
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # Told of every bump (counter name, amount): the Prometheus metrics (kdk_app/metrics).
    observers: list[Callable[[str, int], None]] = field(default_factory=list, repr=False, compare=False)

    def bump(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)
        for observer in self.observers:
            observer(name, amount)

    @property
    def refused(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self) if f.name.startswith("refused_"))

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            counters = {
                f.name: getattr(self, f.name)
                for f in fields(self)
                if f.name[0] != "_" and f.name != "observers"
            }
        counters["refused"] = sum(v for k, v in counters.items() if k.startswith("refused_"))
        return counters
