"""What the sync bus needs from a broker: a writer that appends sealed envelopes in order, and a
reader that hands them back, in order, from a position it can resume at after an outage.

Each background thread owns one writer or one reader (its own connection). Their methods raise
on any connection failure; the bus's loops own retrying, with backoff, and reopen them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class BrokerOptions:
    """What every broker is built from (``sync.*`` settings)."""

    stream: str
    socket_timeout: float
    block_ms: int
    retention_ms: int | None
    maxlen: int | None
    instance_id: str = ""  # the bus's own id, for brokers that name something after it


# "Only entries written from now on": the start position of a reader that has none yet.
NEW_ONLY = "$"


@dataclass(frozen=True)
class Entry:
    """One message read back: where it is (for resuming and logs), when the broker stored it
    (epoch ms, None when the broker keeps no time), and the sealed envelope."""

    id: str
    written_ms: int | None
    payload: bytes | None


class Writer(Protocol):
    def send(self, messages: list[bytes]) -> list[BaseException | None]:
        """Append ``messages`` in order; per message, None once the broker has it, else the error.

        Raises when the whole batch failed (connection lost): some may have been stored anyway,
        and are sent again (receivers drop copies by envelope id).
        """

    def close(self) -> None: ...


class Reader(Protocol):
    def resume(self, position: str) -> str:
        """(Re)connect and place the reader after ``position`` (or at the end for NEW_ONLY);
        return the position it really reads after, pinned so a reconnection resumes there."""

    def read(self) -> list[Entry]:
        """The next entries, waiting up to the bus's block time for the first one."""

    def done(self, entries: list[Entry]) -> None:
        """Called once ``entries`` were handled (brokers that need acknowledgements ack here)."""

    def close(self) -> None: ...


class Broker(Protocol):
    """One kind of broker, for one stream of one deployment."""

    kind: str  # "redis", "amqp", "nats": for logs and health
    # How long after its writing an entry may still be read (its retention): with no write time
    # from the broker (``Entry.written_ms`` None), the signed time is checked against this age.
    max_age_ms: int

    def check_position(self, position: str) -> None:
        """Raise ValueError unless ``position`` is a valid start position for this broker."""

    def writer(self) -> Writer: ...

    def reader(self) -> Reader: ...

    def retire(self) -> None:
        """The bus is gone for good: drop what the broker keeps for its reader alone."""
