"""Build the sync bus from application settings."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..core.application import Application
from .bus import EventSync
from .secret import resolve_sync_secret

logger = logging.getLogger(__name__)

# settings["sync"] keys passed through to EventSync, with the type each must have.
SYNC_OPTIONS: dict[str, type | tuple[type, ...]] = {
    "stream": str,
    "retention_ms": int,
    "maxlen": int,
    "outbox_size": int,
    "block_ms": int,
    "socket_timeout": (int, float),
    "instance_id": str,
    "start_id": str,
    "max_skew": (int, float),
    "refusal_log_interval": (int, float),
    "orphan_after": (int, float),
}
OUTBOXES = ("mongodb", "memory")


def configure_sync(app: Application, settings: Mapping[str, Any]) -> EventSync | None:
    """The bus on ``sync.url``, else ``redis.url``, started by ``app.start()``; or None.

    None when neither URL is configured or ``settings["sync"]["enabled"]`` is false. The bus
    closes itself on ``app.teardown()``. Its signing secret: see :func:`resolve_sync_secret`.
    """
    redis_settings = settings.get("redis") or {}
    options = dict(settings.get("sync") or {})
    url = options.pop("url", None) or (
        redis_settings.get("url") if isinstance(redis_settings, Mapping) else None
    )
    if not url:
        logger.info("sync bus disabled: no sync.url or redis.url configured")
        return None
    if not options.pop("enabled", True):
        logger.info("sync bus disabled by settings")
        return None
    options.pop("secret", None)  # resolved below, with its fallbacks
    outbox = options.pop("outbox", None) or "mongodb"
    if outbox not in OUTBOXES:
        raise ValueError(f"Setting sync.outbox must be one of {', '.join(OUTBOXES)}, not {outbox!r}")
    unknown = set(options) - set(SYNC_OPTIONS)
    if unknown:
        raise ValueError(f"Unknown sync settings: {', '.join(sorted(unknown))}")
    for key, value in options.items():
        expected = SYNC_OPTIONS[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, expected)):
            raise ValueError(f"Setting sync.{key} has the wrong type: {value!r}")
    secret = resolve_sync_secret(settings)
    durable = app.get("mongodb") if outbox == "mongodb" else None
    sync = EventSync(
        app, url, secret=secret, durable=durable, **{k: v for k, v in options.items() if v is not None}
    )
    app.on("teardown", lambda _app: sync.close())
    app.on_start(sync.start)
    return sync
