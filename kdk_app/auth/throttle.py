"""Login and registration throttling: windowed counters per email and per client address.

Every local login counts against its email (``max_attempts``) and its client address
(``ip_max_attempts``) *before* the password is verified, each counter in one atomic step, so
parallel requests can never all pass a check made before the count. An attempt that takes a counter
over its limit is refused with 429 TooManyRequests without verifying anything, even with the
right password, until the window that started at the first attempt ends. A successful login
clears the email's counter and gives its own count back to the address, so the address limit
is a limit on failures.

Every registration (an external ``create`` on the users service without a token) counts
against its address (``register_max_attempts`` per ``register_window_seconds``), successful
or not: each one costs an Argon2 hash and a 409 would tell whether an email exists.

With ``redis.url`` the counters live in Redis, so the limits hold across workers and hosts. Each
counter is one key, counted by one script (``SET NX EX`` starts the window, ``INCR`` counts,
``TTL`` gives the retry delay), atomic on its own key. Two keys need no transaction between
them: a request passes only if each of its counts is within its limit, and each key hands out
its counts one by one. So no key needs a hash tag and, on a Redis Cluster, the counters spread
over every master. Each script is a command of its own, never in a pipeline: a cluster pipeline
sends a command again after a timeout, and the attempt would count twice.
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
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.errors import TooManyRequests

logger = logging.getLogger(__name__)

MESSAGE = "Too many failed login attempts, try again later"
REGISTER_MESSAGE = "Too many registrations, try again later"
WARN_EVERY = 60.0
# Count one more on KEYS[1]: the window (ARGV[1] seconds) starts at the first attempt; INCR keeps
# the TTL. Returns {count, seconds left}.
HIT = (
    "redis.call('set', KEYS[1], 0, 'EX', ARGV[1], 'NX') "
    "return {redis.call('incr', KEYS[1]), redis.call('ttl', KEYS[1])}"
)
# Give one count back, never below zero, and only inside a live window (a missing key stays missing).
REFUND = (
    "local n = tonumber(redis.call('get', KEYS[1]) or '0') "
    "if n > 0 then return redis.call('decr', KEYS[1]) end return 0"
)


class LocalCounters:
    """Windowed counters of one process: key -> (count, window end)."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, window: float) -> tuple[int, float]:
        """Count one more; the new count and the seconds left in its window (atomic)."""
        now = time.monotonic()
        with self._lock:
            if len(self._counts) > 10_000:  # drop finished windows now and then
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            count, ends = self._counts.get(key, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + window
            self._counts[key] = (count + 1, ends)
            return count + 1, ends - now

    def refund(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            count, ends = self._counts.get(key, (0, 0.0))
            if ends > now and count > 0:
                self._counts[key] = (count - 1, ends)

    def clear(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)


class Counters:
    """Windowed counters in Redis when configured (shared), else (and during an outage) local."""

    def __init__(self, redis_url: str | None = None) -> None:
        self.local = LocalCounters()
        self.redis: Any = None
        self._last_warning = 0.0
        if redis_url:
            from ..redis_client import RedisTimeouts
            from ..redis_connect import redis_client

            # On the login path: a hung Redis costs one bounded round trip, then fails open.
            bound = RedisTimeouts()
            self.redis = redis_client(redis_url, socket_timeout=bound.socket, connect_timeout=bound.connect)

    def _fail_open(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY:
            self._last_warning = now
            logger.warning("throttle: Redis unavailable (%s); counting in this process only", exc)

    def hit(self, keys: Sequence[str], window: int) -> list[tuple[int, float]]:
        """Count one more on every key: (count, seconds left) per key."""
        if self.redis is not None:
            try:
                # One script per key, atomic on it; no transaction across keys (see above). The
                # first failure fails open for all of them: a hung Redis costs one bound.
                replies = [self.redis.eval(HIT, 1, key, window) for key in keys]
                return [(int(count), float(max(0, ttl))) for count, ttl in replies]
            except Exception as exc:  # redis errors, timeouts: fail open
                self._fail_open(exc)
        return [self.local.hit(key, window) for key in keys]

    def settle(self, *, clear: Sequence[str] = (), refund: Sequence[str] = ()) -> None:
        """Delete ``clear`` and give one count back to ``refund`` (one command each, as in hit())."""
        if not clear and not refund:
            return
        if self.redis is not None:
            try:
                for key in clear:  # one key a command: keys of other slots on a cluster
                    self.redis.delete(key)
                for key in refund:
                    self.redis.eval(REFUND, 1, key)
            except Exception as exc:
                self._fail_open(exc)
        for key in clear:
            self.local.clear(key)
        for key in refund:
            self.local.refund(key)

    def close(self) -> None:
        if self.redis is not None:
            try:
                self.redis.close()
            except Exception:
                pass


def _refuse(results: Sequence[tuple[int, float]], limits: Sequence[int], window: int, message: str) -> None:
    over = [ttl for (count, ttl), limit in zip(results, limits, strict=True) if count > limit]
    if over:
        retry = max(1, math.ceil(max(over))) if max(over) > 0 else window
        raise TooManyRequests(message, {"retryAfter": retry})


class LoginThrottle:
    """Counts local logins and registrations and refuses those over a limit with 429."""

    def __init__(
        self,
        *,
        max_attempts: int = 5,
        window_seconds: float = 300,
        ip_max_attempts: int = 100,
        register_max_attempts: int = 20,
        register_window_seconds: float = 3600,
        redis_url: str | None = None,
        prefix: str = "kdk:auth:throttle:",
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self.max_attempts = int(max_attempts)
        self.ip_max_attempts = int(ip_max_attempts)
        self.window = max(1, int(window_seconds))
        self.register_max_attempts = int(register_max_attempts)
        self.register_window = max(1, int(register_window_seconds))
        self.prefix = prefix
        self.counters = Counters(redis_url)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None, redis_url: str | None) -> LoginThrottle:
        settings = dict(settings or {})
        return cls(
            max_attempts=settings.get("max_attempts", 5),
            window_seconds=settings.get("window_seconds", 300),
            ip_max_attempts=settings.get("ip_max_attempts", 100),
            register_max_attempts=settings.get("register_max_attempts", 20),
            register_window_seconds=settings.get("register_window_seconds", 3600),
            redis_url=redis_url,
            prefix=settings.get("prefix", "kdk:auth:throttle:"),
            enabled=settings.get("enabled", True),
        )

    # --- keys ----------------------------------------------------------------------------
    def email_key(self, email: str) -> str:
        # Hashed, so Redis never holds emails in clear.
        return f"{self.prefix}email:{hashlib.sha256(email.encode('utf-8')).hexdigest()[:32]}"

    def keys(self, email: str | None, address: str | None) -> list[tuple[str, int]]:
        """The (counter key, limit) pairs of a login attempt."""
        keys = []
        if email and self.max_attempts > 0:
            keys.append((self.email_key(email), self.max_attempts))
        if address and self.ip_max_attempts > 0:
            keys.append((f"{self.prefix}ip:{address}", self.ip_max_attempts))
        return keys

    # --- logins --------------------------------------------------------------------------
    def attempt(self, email: str | None, address: str | None) -> None:
        """Count a login attempt; 429 when it takes any of its counters over the limit."""
        if not self.enabled:
            return
        pairs = self.keys(email, address)
        if not pairs:
            return
        results = self.counters.hit([key for key, _ in pairs], self.window)
        _refuse(results, [limit for _, limit in pairs], self.window, MESSAGE)

    def success(self, email: str | None, address: str | None = None) -> None:
        """A verified login: clear the email's counter, give the address its count back."""
        if not self.enabled:
            return
        clear = [key for key, _ in self.keys(email, None)]
        refund = [key for key, _ in self.keys(None, address)]
        self.counters.settle(clear=clear, refund=refund)

    # --- registrations -------------------------------------------------------------------
    def register(self, address: str | None) -> None:
        """Count a registration from ``address``; 429 over ``register_max_attempts``."""
        if not self.enabled or not address or self.register_max_attempts <= 0:
            return
        results = self.counters.hit([f"{self.prefix}register:{address}"], self.register_window)
        _refuse(results, [self.register_max_attempts], self.register_window, REGISTER_MESSAGE)

    def close(self) -> None:
        self.counters.close()
