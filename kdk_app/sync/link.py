"""The up/down state of one of the bus's threads (publisher, reader) towards its broker."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def close_quietly(link: Any, what: str) -> None:
    """Close a broker link that may be dead already: it is dropped whatever closing does."""
    try:
        link.close()
    except Exception as exc:  # noqa: BLE001 - closing a dead connection may fail
        logger.debug("closing the %s failed: %s", what, exc)


class LinkState:
    """Whether a worker's last Redis command succeeded; logs transitions, not every failure."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.up: bool | None = None  # None: not tried yet

    def ok(self) -> bool:
        """Record a success; True when it ends an outage (a reconnection)."""
        recovered = self.up is False
        if recovered:
            logger.info("sync %s: the broker is back", self.name)
        elif self.up is None:
            logger.debug("sync %s: connected to the broker", self.name)
        self.up = True
        return recovered

    def failed(self, error: BaseException) -> None:
        if self.up is not False:
            logger.warning("sync %s: broker unavailable, retrying: %s", self.name, error)
        else:
            logger.debug("sync %s: still no broker: %s", self.name, error)
        self.up = False

    def reset(self) -> None:
        self.up = None
