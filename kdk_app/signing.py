"""Signed messages between instances: ``kdk1.<hex HMAC-SHA256>.<canonical JSON>``.

The JSON is ``{body, key, kind, nonce, ts}`` with sorted keys and no spaces; the HMAC covers
exactly those bytes, so the receiver verifies what it parses, with no re-encoding. The ``key``
(a distribution partition, a sync stream) and the ``kind`` are signed too, so a message cannot
be replayed into another partition, stream or protocol. Distribution and the sync bus share it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .core.serialization import default as json_default

PREFIX = b"kdk1."


class Refused(Exception):
    """A message that must not be acted on; ``reason`` names the stats counter."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Message:
    kind: str
    ts: int  # epoch milliseconds
    nonce: str
    body: dict[str, Any]


def canonical(value: Any) -> bytes:
    return json.dumps(
        value, default=json_default, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def now_ms() -> int:
    return int(time.time() * 1000)


def derive_key(secret: str | bytes, purpose: bytes) -> bytes:
    """A key for one purpose from a shared secret, so no two protocols sign with the same key."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, purpose, hashlib.sha256).digest()


class Signer:
    """Seals and opens the messages of one ``key`` (partition, stream) with one shared secret.

    ``kinds`` are the kinds ``open`` accepts when the caller names none.
    """

    def __init__(self, secret: bytes, key: str, max_skew: float, kinds: Iterable[str] = ()) -> None:
        if not secret:
            raise ValueError("a signing secret is required")
        self._secret = secret
        self.key = key
        self.max_skew_ms = int(max_skew * 1000)
        self.kinds = frozenset(kinds)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).hexdigest().encode()

    def seal(self, kind: str, body: dict[str, Any], *, nonce: str | None = None) -> bytes:
        return self.seal_encoded(kind, canonical(body), nonce=nonce)

    def seal_encoded(self, kind: str, body: bytes, *, nonce: str | None = None) -> bytes:
        """Seal a body that is already JSON-encoded (an object), without decoding it again.

        ``body`` sorts first of the five keys, so splicing it in front of the others gives the
        same bytes as :meth:`seal` for a canonical body.
        """
        header = canonical(
            {"key": self.key, "kind": kind, "nonce": nonce or uuid.uuid4().hex, "ts": now_ms()}
        )
        payload = b'{"body":' + body + b"," + header[1:]
        return PREFIX + self._mac(payload) + b"." + payload

    def open(
        self, raw: bytes | str | None, *kinds: str, at: int | None = None, max_age_ms: int = 0
    ) -> Message:
        """Verify and decode; raise :class:`Refused` (unsigned, forged, stale, malformed).

        The timestamp must be within ``max_skew`` of ``at`` (epoch ms; default: now), or up to
        ``max_age_ms`` before it (a message that may wait that long before it is read).
        """
        if raw is None:
            raise Refused("unsigned", "no message")
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogatepass")
        if not raw.startswith(PREFIX) or raw.find(b".", len(PREFIX)) < 0:
            raise Refused("unsigned", "no signature")
        signature, _, payload = raw[len(PREFIX) :].partition(b".")
        if not hmac.compare_digest(signature, self._mac(payload)):
            raise Refused("forged", "bad signature")
        try:
            message = json.loads(payload)
        except ValueError:
            raise Refused("malformed", "signed payload is not JSON") from None
        if not isinstance(message, dict) or not isinstance(message.get("body"), dict):
            raise Refused("malformed", "not an envelope")
        if message.get("key") != self.key:
            raise Refused("malformed", f"for {message.get('key')!r}, not {self.key!r}")
        if message.get("kind") not in (kinds or self.kinds):
            raise Refused("malformed", f"unexpected kind {message.get('kind')!r}")
        ts, nonce = message.get("ts"), message.get("nonce")
        if type(ts) is not int or not isinstance(nonce, str) or not nonce:
            raise Refused("malformed", "bad timestamp or nonce")
        reference = now_ms() if at is None else at
        if not -self.max_skew_ms <= reference - ts <= self.max_skew_ms + max_age_ms:
            raise Refused("stale", f"timestamp {ts} is outside the validity window")
        return Message(message["kind"], ts, nonce, message["body"])


class NonceCache:
    """Nonces seen within the validity window, for messages one process receives alone.

    Older entries can be forgotten: a message that old is refused as stale anyway.
    """

    def __init__(self, window: float, capacity: int = 100_000) -> None:
        self.window = window
        self.capacity = capacity
        self._seen: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, nonce: str, where: str | None = None) -> bool:
        """Remember ``nonce``; False when it was seen before (a replay).

        With ``where`` (say, a stream entry id), meeting the nonce again at the same place is
        reading the same message twice, not a replay.
        """
        now = time.monotonic()
        with self._lock:
            if nonce in self._seen:
                return where is not None and self._seen[nonce][1] == where
            self._seen[nonce] = (now, where)
            while self._seen:
                oldest, (seen_at, _) = next(iter(self._seen.items()))
                if now - seen_at <= self.window and len(self._seen) <= self.capacity:
                    break
                del self._seen[oldest]
            return True
