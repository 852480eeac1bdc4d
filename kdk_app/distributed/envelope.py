"""Distribution's signed messages: the shared scheme of :mod:`kdk_app.signing`, for its kinds.

A message is ``kdk1.<hex HMAC-SHA256>.<canonical JSON>`` of ``{key, kind, ts, nonce, body}``;
the partition ``key`` is signed, so a message cannot be replayed into another partition.
"""

from __future__ import annotations

from ..signing import PREFIX, Message, NonceCache, Refused, canonical, now_ms
from ..signing import Signer as _Signer

KINDS = frozenset({"call", "reply", "event", "record"})

__all__ = ["KINDS", "PREFIX", "Message", "NonceCache", "Refused", "Signer", "canonical", "now_ms"]


class Signer(_Signer):
    """Seals and opens the messages of one partition; ``open`` accepts distribution's kinds."""

    def __init__(self, secret: bytes, key: str, max_skew: float) -> None:
        super().__init__(secret, key, max_skew, kinds=KINDS)
