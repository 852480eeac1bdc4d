"""Cross-instance event sync: listeners on every instance hear every instance's events."""

from .bus import EventSync
from .configure import configure_sync
from .envelope import Envelope, EnvelopeError, SyncedContext, parse_envelope

__all__ = [
    "Envelope",
    "EnvelopeError",
    "EventSync",
    "SyncedContext",
    "configure_sync",
    "parse_envelope",
]
