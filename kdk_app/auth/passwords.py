"""Password hashing with Argon2id (argon2-cffi).

Hashing is CPU-bound C code that releases the GIL. Under gevent it runs in the hub's native
thread pool, so one login does not stall every other greenlet of the worker for tens of
milliseconds; without gevent it runs in the calling thread.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# OWASP's recommended minimum for Argon2id (19 MiB, 2 passes, 1 lane): about 35 ms on one core.
DEFAULT_HASH_OPTIONS = {"time_cost": 2, "memory_cost": 19456, "parallelism": 1}


def _capture(fn: Callable[..., T], args: tuple[Any, ...]) -> tuple[T | None, BaseException | None]:
    try:
        return fn(*args), None
    except Exception as exc:  # returned, not raised: gevent's pool would print a traceback
        return None, exc


def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` in a native thread when gevent patched threading, else right here."""
    try:
        from gevent import get_hub
        from gevent.monkey import is_module_patched
    except ImportError:  # pragma: no cover - gevent is a dependency
        return fn(*args)
    if not is_module_patched("threading"):
        return fn(*args)
    value, error = get_hub().threadpool.apply(_capture, (fn, args))
    if error is not None:
        raise error
    return value


class Passwords:
    """Hash and verify passwords; the same cost settings for every worker of a deployment."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        settings = {**DEFAULT_HASH_OPTIONS, **dict(options or {})}
        self.hasher = PasswordHasher(
            time_cost=int(settings["time_cost"]),
            memory_cost=int(settings["memory_cost"]),
            parallelism=int(settings["parallelism"]),
        )
        self._dummy_hash: str | None = None

    def hash(self, password: str) -> str:
        return _off_loop(self.hasher.hash, password)

    def verify(self, stored_hash: Any, password: str) -> bool:
        """True when ``password`` matches; False for a mismatch or an unusable stored hash."""
        if not isinstance(stored_hash, str) or not stored_hash.startswith("$argon2"):
            self.burn(password)  # same cost as a real check: no timing hint
            return False
        try:
            return bool(_off_loop(self.hasher.verify, stored_hash, password))
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError):
            logger.warning("a stored password hash could not be verified")
            return False

    def burn(self, password: str) -> None:
        """Spend the time of one verification, for unknown users (no user-enumeration by timing)."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hash(secrets.token_urlsafe(16))
        try:
            _off_loop(self.hasher.verify, self._dummy_hash, password)
        except VerificationError:
            pass

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self.hasher.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError):
            return False
