"""Signed messages between instances: ``kdk1.<hex HMAC-SHA256>.<canonical JSON>``.

The JSON is ``{key, kind, ts, nonce, body}`` with sorted keys and no spaces; the HMAC covers
exactly those bytes, so the receiver verifies what it parses, with no re-encoding. The
partition ``key`` is signed too, so a message cannot be replayed into another partition.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ..core.serialization import default as json_default

PREFIX = b"kdk1."
KINDS = frozenset({"call", "reply", "event", "record"})


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


class Signer:
    """Seals and opens the messages of one partition with one shared secret."""

    def __init__(self, secret: bytes, key: str, max_skew: float) -> None:
        self._secret = secret
        self.key = key
        self.max_skew_ms = int(max_skew * 1000)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).hexdigest().encode()

    def seal(self, kind: str, body: dict[str, Any], *, nonce: str | None = None) -> bytes:
        payload = canonical(
            {"key": self.key, "kind": kind, "ts": now_ms(), "nonce": nonce or uuid.uuid4().hex, "body": body}
        )
        return PREFIX + self._mac(payload) + b"." + payload

    def open(self, raw: bytes | str, *kinds: str) -> Message:
        """Verify and decode; raise :class:`Refused` (unsigned, forged, stale, malformed)."""
        if isinstance(raw, str):
            raw = raw.encode()
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
            raise Refused("malformed", f"for partition {message.get('key')!r}")
        if message.get("kind") not in (kinds or KINDS):
            raise Refused("malformed", f"unexpected kind {message.get('kind')!r}")
        ts, nonce = message.get("ts"), message.get("nonce")
        if type(ts) is not int or not isinstance(nonce, str) or not nonce:
            raise Refused("malformed", "bad timestamp or nonce")
        if abs(now_ms() - ts) > self.max_skew_ms:
            raise Refused("stale", f"timestamp {ts} is outside the validity window")
        return Message(message["kind"], ts, nonce, message["body"])


class NonceCache:
    """Nonces seen within the validity window, for messages one process receives alone.

    Older entries can be forgotten: a message that old is refused as stale anyway.
    """

    def __init__(self, window: float, capacity: int = 100_000) -> None:
        self.window = window
        self.capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, nonce: str) -> bool:
        """Remember ``nonce``; False when it was seen before (a replay)."""
        now = time.monotonic()
        with self._lock:
            if nonce in self._seen:
                return False
            self._seen[nonce] = now
            while self._seen:
                oldest, seen_at = next(iter(self._seen.items()))
                if now - seen_at <= self.window and len(self._seen) <= self.capacity:
                    break
                del self._seen[oldest]
            return True
