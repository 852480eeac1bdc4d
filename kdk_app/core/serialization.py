"""One JSON encoding for REST, sockets and Redis messages: ObjectId as hex, datetime as ISO 8601."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

try:  # bson ships with pymongo; the service layer works without it.
    from bson import ObjectId
except ImportError:  # pragma: no cover
    ObjectId = None  # type: ignore[assignment,misc]


def iso_datetime(value: dt.datetime) -> str:
    """Like JavaScript's ``toISOString``: UTC, milliseconds, ``Z`` (naive values are UTC, as pymongo's)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def default(value: Any) -> Any:
    """``json.dumps`` fallback for the types our services return."""
    if ObjectId is not None and isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, dt.datetime):
        return iso_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    return json.dumps(value, default=default, separators=(",", ":"), ensure_ascii=False)


def to_jsonable(value: Any) -> Any:
    """The value as plain JSON types (what a client would see after a round trip)."""
    return json.loads(dumps(value))


class FeathersJSON:
    """A ``json``-like module with our encoding, for libraries that take one (python-socketio)."""

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("separators", (",", ":"))
        return json.dumps(obj, default=default, **kwargs)

    @staticmethod
    def loads(s: str | bytes, **kwargs: Any) -> Any:
        return json.loads(s, **kwargs)
