"""Sealing and opening the stream entries of one sync stream.

An entry is sealed when the publisher writes it, so its signed timestamp is (within clock
skew) the time Redis gives its entry id. Opening checks the signature, then that timestamp
against the entry id, not against the clock: an entry read late (a reader catching up after an
outage) is still valid, while an old entry written again gets a new id and is stale. A verbatim
copy written within the window repeats a nonce and is refused as replayed.
"""

from __future__ import annotations

from typing import Any

from ..signing import NonceCache, Refused, Signer
from .position import parse_id

KIND = "sync"


class StreamSigner:
    """Seals envelopes for ``stream`` and opens its entries; ``max_skew`` in seconds."""

    def __init__(self, secret: bytes, stream: str, max_skew: float = 60.0, capacity: int = 100_000) -> None:
        if max_skew <= 0:
            raise ValueError("max_skew must be positive")
        self._signer = Signer(secret, stream, max_skew, kinds=(KIND,))
        self._nonces = NonceCache(2 * max_skew, capacity)

    def seal(self, envelope: bytes) -> bytes:
        """The entry field for one JSON-encoded envelope, signed now."""
        return self._signer.seal_encoded(KIND, envelope)

    def open(self, entry_id: str, raw: bytes | str | None) -> dict[str, Any]:
        """The envelope of a genuine entry; raise :class:`Refused` on anything else."""
        written_ms = parse_id(entry_id)[0]
        message = self._signer.open(raw, at=written_ms)
        if not self._nonces.add(message.nonce, where=entry_id):
            raise Refused("replayed", "nonce seen before in another entry")
        return message.body
