"""Sealing and opening the stream entries of one sync stream.

An entry is sealed when the publisher writes it, so its signed timestamp is (within clock
skew) the time the broker stores it (a Redis entry id, a JetStream message time). Opening checks
the signature, then that timestamp against the broker's time, not against the clock: an entry
read late (a reader catching up after an outage) is still valid, while an old entry written
again gets a new time and is stale. A verbatim copy written within the window repeats a nonce and
is refused as replayed. A broker that keeps no time (RabbitMQ) has the signed time checked
against the clock, within the broker's retention, and its nonces remembered that long.
"""

from __future__ import annotations

from typing import Any

from ..signing import NonceCache, Refused, Signer
from .brokers import Entry

KIND = "sync"


class StreamSigner:
    """Seals envelopes for ``stream`` and opens its entries; ``max_skew`` in seconds."""

    def __init__(
        self,
        secret: bytes,
        stream: str,
        max_skew: float = 60.0,
        capacity: int = 100_000,
        *,
        max_age_ms: int = 0,
    ) -> None:
        if max_skew <= 0:
            raise ValueError("max_skew must be positive")
        self._signer = Signer(secret, stream, max_skew, kinds=(KIND,))
        self._max_age_ms = max_age_ms
        self._nonces = NonceCache(2 * max_skew + max_age_ms / 1000, capacity)

    def seal(self, envelope: bytes) -> bytes:
        """The entry field for one JSON-encoded envelope, signed now."""
        return self._signer.seal_encoded(KIND, envelope)

    def open(self, entry: Entry) -> dict[str, Any]:
        """The envelope of a genuine entry; raise :class:`Refused` on anything else."""
        if entry.written_ms is not None:
            message = self._signer.open(entry.payload, at=entry.written_ms)
        else:
            message = self._signer.open(entry.payload, max_age_ms=self._max_age_ms)
        if not self._nonces.add(message.nonce, where=entry.id):
            raise Refused("replayed", "nonce seen before in another entry")
        return message.body
