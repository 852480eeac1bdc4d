"""A bounded, thread-safe FIFO between service calls and the publisher thread.

Service calls only ever append (never touch the network), so a slow or dead Redis cannot
slow them down; when the bound is hit the oldest messages go, and the caller counts them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

# One queued message: the encoded envelope, and what the publisher hands back once it is sent
# (the durable outbox's document id, or None).
Pending = tuple[bytes, Any]


class Outbox:
    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("outbox size must be at least 1")
        self.maxsize = maxsize
        self._items: deque[Pending] = deque()
        self._ready = threading.Condition()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Pending) -> int:
        """Append ``item``; return how many of the oldest items were dropped to make room."""
        with self._ready:
            self._items.append(item)
            dropped = self._trim()
            self._ready.notify()
        return dropped

    def take(self, limit: int, timeout: float) -> list[Pending]:
        """Up to ``limit`` oldest items, waiting at most ``timeout`` s for the first one."""
        with self._ready:
            if not self._items:
                self._ready.wait(timeout)
            count = min(limit, len(self._items))
            return [self._items.popleft() for _ in range(count)]

    def restore(self, items: Iterable[Pending]) -> int:
        """Put items that could not be sent back in front; return how many were dropped."""
        with self._ready:
            self._items.extendleft(reversed(list(items)))
            return self._trim()

    def wake(self) -> None:
        """Release a waiting ``take`` (used on shutdown)."""
        with self._ready:
            self._ready.notify_all()

    def _trim(self) -> int:
        dropped = 0
        while len(self._items) > self.maxsize:
            self._items.popleft()
            dropped += 1
        return dropped
