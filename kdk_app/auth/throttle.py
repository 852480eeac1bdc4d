"""Login throttling: failed local logins are counted per email and per client address.

Once a key has ``max_attempts`` failures (``ip_max_attempts`` for an address) inside the
window, every further local login for it is refused with 429 TooManyRequests, even with the
right password, until the window that started at the first failure ends. A success clears
the email's counter (not the address's).

With ``redis.url`` the counters live in Redis (``SET NX EX`` then ``INCR``: the window starts
at the first failure and survives restarts), so the limit holds across workers and hosts.
Without Redis they live in this process. When Redis is unreachable the throttle fails open:
it logs a warning (at most once a minute) and counts in this process until Redis answers
again, so an outage of Redis never locks users out, it only weakens the limit to one process.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Any

from ..core.errors import TooManyRequests

logger = logging.getLogger(__name__)

MESSAGE = "Too many failed login attempts, try again later"
WARN_EVERY = 60.0


class LocalCounters:
    """Failure counters of one process: key -> (count, window end)."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[int, float]:
        """The count and the seconds left in its window (0, 0 when none)."""
        now = time.monotonic()
        with self._lock:
            count, ends = self._counts.get(key, (0, 0.0))
            if ends <= now:
                self._counts.pop(key, None)
                return 0, 0.0
            return count, ends - now

    def incr(self, key: str, window: float) -> int:
        now = time.monotonic()
        with self._lock:
            if len(self._counts) > 10_000:  # drop finished windows now and then
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            count, ends = self._counts.get(key, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + window
            self._counts[key] = (count + 1, ends)
            return count + 1

    def clear(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)


class LoginThrottle:
    """Counts failed logins and refuses attempts over the limit with 429."""

    def __init__(
        self,
        *,
        max_attempts: int = 5,
        window_seconds: float = 300,
        ip_max_attempts: int = 100,
        redis_url: str | None = None,
        prefix: str = "kdk:auth:throttle:",
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self.max_attempts = int(max_attempts)
        self.ip_max_attempts = int(ip_max_attempts)
        self.window = max(1, int(window_seconds))
        self.prefix = prefix
        self.local = LocalCounters()
        self.redis: Any = None
        self._last_warning = 0.0
        if redis_url:
            import redis

            self.redis = redis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None, redis_url: str | None) -> LoginThrottle:
        settings = dict(settings or {})
        return cls(
            max_attempts=settings.get("max_attempts", 5),
            window_seconds=settings.get("window_seconds", 300),
            ip_max_attempts=settings.get("ip_max_attempts", 100),
            redis_url=redis_url,
            prefix=settings.get("prefix", "kdk:auth:throttle:"),
            enabled=settings.get("enabled", True),
        )

    # --- keys ----------------------------------------------------------------------------
    def keys(self, email: str | None, address: str | None) -> list[tuple[str, int]]:
        """(counter key, limit) pairs; emails are hashed, so Redis never holds them in clear."""
        keys = []
        if email and self.max_attempts > 0:
            digest = hashlib.sha256(email.encode("utf-8")).hexdigest()[:32]
            keys.append((f"{self.prefix}email:{digest}", self.max_attempts))
        if address and self.ip_max_attempts > 0:
            keys.append((f"{self.prefix}ip:{address}", self.ip_max_attempts))
        return keys

    # --- the three operations ------------------------------------------------------------
    def check(self, email: str | None, address: str | None) -> None:
        """Raise 429 when any counter of this attempt is at its limit."""
        if not self.enabled:
            return
        for key, limit in self.keys(email, address):
            count, ttl = self._get(key)
            if count >= limit:
                retry = max(1, math.ceil(ttl)) if ttl > 0 else self.window
                raise TooManyRequests(MESSAGE, {"retryAfter": retry})

    def failure(self, email: str | None, address: str | None) -> None:
        if self.enabled:
            for key, _ in self.keys(email, address):
                self._incr(key)

    def success(self, email: str | None) -> None:
        if self.enabled:
            for key, _ in self.keys(email, None):
                self._clear(key)

    # --- storage -------------------------------------------------------------------------
    def _fail_open(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY:
            self._last_warning = now
            logger.warning(
                "login throttle: Redis unavailable (%s); counting failed logins in this process only",
                exc,
            )

    def _get(self, key: str) -> tuple[int, float]:
        if self.redis is not None:
            try:
                pipe = self.redis.pipeline(transaction=False)
                pipe.get(key)
                pipe.ttl(key)
                raw, ttl = pipe.execute()
                return int(raw or 0), float(ttl if ttl and ttl > 0 else 0)
            except Exception as exc:  # redis errors, timeouts: fail open
                self._fail_open(exc)
        return self.local.get(key)

    def _incr(self, key: str) -> int:
        if self.redis is not None:
            try:
                pipe = self.redis.pipeline(transaction=True)
                pipe.set(key, 0, ex=self.window, nx=True)  # the window starts at the first failure
                pipe.incr(key)  # INCR keeps the TTL
                return int(pipe.execute()[1])
            except Exception as exc:
                self._fail_open(exc)
        return self.local.incr(key, self.window)

    def _clear(self, key: str) -> None:
        if self.redis is not None:
            try:
                self.redis.delete(key)
            except Exception as exc:
                self._fail_open(exc)
        self.local.clear(key)

    def close(self) -> None:
        if self.redis is not None:
            try:
                self.redis.close()
            except Exception:
                pass
