"""The key that signs sync-bus entries, from the settings, with the documented fallbacks."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from ..redis_client import shared_dev_secret
from ..signing import derive_key

logger = logging.getLogger(__name__)

MIN_SECRET_LENGTH = 32
DEV_SECRET_KEY = "kdk:sync:dev-secret"
# Derived keys are bound to the sync bus: the same secret never signs another protocol.
PURPOSE = b"kdk-sync"


def _configured(settings: Mapping[str, Any], section: str) -> str | None:
    value = (settings.get(section) or {}).get("secret")
    # KDK_* values are read as JSON, so a numeric secret arrives as a number.
    return None if value in (None, "") else str(value)


def resolve_sync_secret(settings: Mapping[str, Any]) -> bytes:
    """``sync.secret``, else a key derived from ``distribution.secret``, else from the JWT secret.

    With none of them, ``KDK_ENV=production`` refuses to start; other environments use a
    generated secret shared through Redis (one per process if Redis does not answer).
    """
    own = _configured(settings, "sync")
    if own is not None:
        if len(own) < MIN_SECRET_LENGTH:
            logger.warning("the sync secret is shorter than %d characters", MIN_SECRET_LENGTH)
        return own.encode()
    for section in ("distribution", "authentication"):
        shared = _configured(settings, section)
        if shared is not None:
            return derive_key(shared, PURPOSE)
    if (settings.get("env") or "development") == "production":
        raise RuntimeError(
            "the sync bus needs a secret in production: set KDK_SYNC__SECRET (or "
            "KDK_DISTRIBUTION__SECRET, or JWT_SECRET) to the same value on every instance, "
            "or disable it with KDK_SYNC__ENABLED=false"
        )
    redis_url = (settings.get("redis") or {}).get("url")
    generated = shared_dev_secret(redis_url, DEV_SECRET_KEY) if redis_url else None
    if generated:
        logger.warning(
            "No sync secret configured (KDK_SYNC__SECRET): using a generated development secret "
            "shared through Redis (%s). Never run like this in production.",
            DEV_SECRET_KEY,
        )
        return derive_key(generated, PURPOSE)
    logger.warning(
        "No sync secret configured (KDK_SYNC__SECRET): using a random secret for this process; "
        "other instances will refuse its events. Never run like this in production."
    )
    return secrets.token_bytes(32)
