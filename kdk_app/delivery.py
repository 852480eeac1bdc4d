"""How events from another app reach this instance's socket clients: once, whatever the topology.

Every process of a consumer receives each remote event (pub/sub fan-out), so each one must
emit it to its own clients only, not through the Socket.IO message queue, which would reach
every client once per process. And when the provider shares our message-queue channel, its
own publication already reached our clients: we must not emit at all. The event still goes
through ``app.dispatch_event`` (listeners, publishers); only the final emit is redirected.
The distribution sets the mode around such a dispatch; the channels read it when they emit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

LOCAL = "local"  # emit to this process's clients only
SKIP = "skip"  # the provider's own emit reached our clients already


class Delivery:
    def __init__(self) -> None:
        # One variable per app: greenlets and threads each see their own value.
        self._mode: ContextVar[str | None] = ContextVar(f"kdk_dist_delivery_{id(self)}", default=None)

    @contextlib.contextmanager
    def scope(self, mode: str) -> Iterator[None]:
        token = self._mode.set(mode)
        try:
            yield
        finally:
            self._mode.reset(token)

    def mode(self) -> str | None:
        """None: emit as usual; LOCAL: to this process's clients only; SKIP: not at all."""
        return self._mode.get()
