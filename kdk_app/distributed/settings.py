"""The ``distribution`` section of the configuration, validated, with its defaults."""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.application import normalize_path
from ..redis_client import RedisTimeouts

# Which paths to expose or consume: "*" / True (all), None / False / [] (none), a glob, a list of
# paths or globs, or a callable ``(path) -> bool``.
Selector = Any
# Where a remote path is mounted locally: a prefix ("remote/"), or ``(path) -> mounted path``.
PathTransform = str | Callable[[str], str] | None

DEFAULTS: dict[str, Any] = {
    "key": "default",  # partition: instances only see records, calls and events of their key
    "services": "*",  # local services to expose (never the remote ones)
    "remote_services": "*",  # remote services to consume
    "remote_service_path": None,  # prefix or callable for mounted paths; None keeps the path
    "timeout": 20.0,  # s, whole remote call, retries included
    "heartbeat_interval": 5.0,  # s, record refresh and registry poll
    "ttl": 15.0,  # s, a record outlives its last heartbeat by this long
    "secret": None,  # HMAC key of envelopes; default: derived from authentication.secret
    "concurrency": 32,  # remote calls one process runs at once
    "max_skew": 60.0,  # s, validity window of a signed message (at least timeout + 5)
    "probe_interval": 0.1,  # s, how often a waiting call checks that its provider lives
    "claim_grace": 1.0,  # s, a call taken from the queue but never claimed is presumed lost
    "healthcheck_timeout": 2.0,  # s, bound of each probe of /distribution/healthcheck/<key>
    "publish": None,  # publisher of remote services' events: channel names or a callable
    "prefix": "kdk:dist",  # Redis key prefix
    "outbox_size": 10_000,  # events queued while Redis is slow or down
}


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"distribution.{name} must be a positive number, got {value!r}")
    return float(value)


def derive_secret(settings: Mapping[str, Any]) -> bytes:
    """``distribution.secret``, else a key derived from the JWT secret (never the JWT key itself)."""
    secret = (settings.get("distribution") or {}).get("secret")
    if secret not in (None, ""):
        return str(secret).encode()
    jwt_secret = (settings.get("authentication") or {}).get("secret")
    if jwt_secret:
        return hmac.new(str(jwt_secret).encode(), b"kdk-distribution", hashlib.sha256).digest()
    raise ValueError(
        "distribution needs a shared secret: set KDK_DISTRIBUTION__SECRET (or JWT_SECRET) "
        "to the same value on every instance"
    )


def make_selector(spec: Selector) -> Callable[[str], bool]:
    """A predicate on normalized paths for a ``services`` / ``remote_services`` setting."""
    if callable(spec):
        return lambda path: bool(spec(path))
    if spec is True or spec == "*":
        return lambda path: True
    if not spec:
        return lambda path: False
    patterns = [spec] if isinstance(spec, str) else list(spec)
    patterns = [normalize_path(str(p)) for p in patterns]
    return lambda path: any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def explicit_paths(spec: Selector) -> list[str]:
    """The paths a selector names literally (no glob, no callable): the ones health must find."""
    if callable(spec) or spec is True or not spec:
        return []
    patterns = [spec] if isinstance(spec, str) else list(spec)
    return [normalize_path(str(p)) for p in patterns if not any(c in str(p) for c in "*?[")]


def make_transform(spec: PathTransform) -> Callable[[str], str]:
    if spec is None or spec == "":
        return lambda path: path
    if callable(spec):
        return lambda path: normalize_path(spec(path))
    prefix = normalize_path(str(spec))
    return lambda path: normalize_path(f"{prefix}/{path}")


@dataclass(frozen=True)
class DistributionSettings:
    key: str
    secret: bytes
    redis_url: str
    expose: Callable[[str], bool]
    consume: Callable[[str], bool]
    mount_path: Callable[[str], str]
    required_remote: tuple[str, ...]
    timeout: float
    heartbeat_interval: float
    ttl: float
    concurrency: int
    max_skew: float
    probe_interval: float
    claim_grace: float
    healthcheck_timeout: float
    publish: Any
    prefix: str
    outbox_size: int
    socketio_channel: str
    # Bound of one Redis round trip of a call (`redis.socket_timeout_ms` / `connect_timeout_ms`).
    redis_timeouts: RedisTimeouts = field(default_factory=RedisTimeouts)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> DistributionSettings | None:
        """None when distribution is off: no ``distribution`` section or no ``redis.url``."""
        section = settings.get("distribution")
        redis_url = (settings.get("redis") or {}).get("url")
        if not section or not redis_url:
            return None
        if not isinstance(section, Mapping):
            raise ValueError("distribution must be a mapping of settings")
        unknown = set(section) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"Unknown distribution settings: {', '.join(sorted(unknown))}")
        options = {**DEFAULTS, **{k: v for k, v in section.items() if v is not None}}
        timeout = _positive("timeout", options["timeout"])
        heartbeat = _positive("heartbeat_interval", options["heartbeat_interval"])
        ttl = _positive("ttl", options["ttl"])
        if ttl <= heartbeat:
            raise ValueError("distribution.ttl must be longer than distribution.heartbeat_interval")
        # The Socket.IO message-queue channel: instances sharing it reach each other's clients.
        channel = str((settings.get("socketio") or {}).get("channel", "kdk-socketio"))
        return cls(
            key=str(options["key"]),
            secret=derive_secret(settings),
            redis_url=str(redis_url),
            expose=make_selector(options["services"]),
            consume=make_selector(options["remote_services"]),
            mount_path=make_transform(options["remote_service_path"]),
            required_remote=tuple(explicit_paths(options["remote_services"])),
            timeout=timeout,
            heartbeat_interval=heartbeat,
            ttl=ttl,
            concurrency=int(_positive("concurrency", options["concurrency"])),
            max_skew=max(_positive("max_skew", options["max_skew"]), timeout + 5),
            probe_interval=_positive("probe_interval", options["probe_interval"]),
            claim_grace=_positive("claim_grace", options["claim_grace"]),
            healthcheck_timeout=_positive("healthcheck_timeout", options["healthcheck_timeout"]),
            publish=options["publish"],
            prefix=str(options["prefix"]),
            outbox_size=int(_positive("outbox_size", options["outbox_size"])),
            socketio_channel=channel,
            redis_timeouts=RedisTimeouts.from_settings(settings),
        )
