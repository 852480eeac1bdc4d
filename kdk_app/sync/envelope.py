"""The sync-bus message: ``{v, id, origin, ts, path, event, data, context}`` as JSON.

In the stream it travels sealed (see ``signed.py``): the JSON is the body of a signed message.

Routing fields stay apart from the payload, and the context is deliberately small: a
receiver gets what a listener usually needs (who did what, how), never the whole call.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.hooks import HookContext
from ..core.serialization import dumps
from ..logs import current_request_id

VERSION = 1
# The stream entry field holding the JSON envelope.
FIELD = "envelope"
# request_id: the id of the request or socket call that made the event, so the logs of every
# instance that handles it can be matched to the origin's.
CONTEXT_KEYS = ("method", "id", "provider", "query", "user_id", "request_id")
MAX_REQUEST_ID = 200  # characters; longer ids are dropped, never logged
_ROUTING_KEYS = ("id", "origin", "path", "event")


class EnvelopeError(ValueError):
    """A stream entry that is not a valid envelope of a supported version."""


@dataclass(frozen=True)
class Envelope:
    """One service event as it travels between instances."""

    id: str
    origin: str
    ts: int
    path: str
    event: str
    data: Any
    context: dict[str, Any]
    v: int = VERSION

    def encode(self) -> str:
        return dumps(
            {
                "v": self.v,
                "id": self.id,
                "origin": self.origin,
                "ts": self.ts,
                "path": self.path,
                "event": self.event,
                "data": self.data,
                "context": self.context,
            }
        )


@dataclass(frozen=True)
class SyncedContext:
    """What a listener gets as its second argument for an event from another instance."""

    path: str
    event: str
    method: str | None = None
    id: Any = None
    provider: str | None = None
    query: dict[str, Any] = field(default_factory=dict)
    user_id: Any = None
    origin: str | None = None
    request_id: str | None = None
    remote: bool = True

    @property
    def params(self) -> dict[str, Any]:
        # The subset of HookContext.params that survived the trip, for listeners that
        # read ``context.params`` whichever side the event came from.
        return {"provider": self.provider, "query": self.query}


def user_id_of(user: Any) -> Any:
    """The id of an authenticated user: ``_id`` (MongoDB) or ``id``, else None."""
    if isinstance(user, Mapping):
        return user.get("_id", user.get("id"))
    return getattr(user, "_id", getattr(user, "id", None))


def summarize_context(context: HookContext | None) -> dict[str, Any]:
    """The small context sent along: method, id, provider, query, user id and request id."""
    if context is None:
        return {**dict.fromkeys(CONTEXT_KEYS), "request_id": current_request_id()}
    params = getattr(context, "params", None) or {}
    return {
        "method": getattr(context, "method", None),
        "id": getattr(context, "id", None),
        "provider": params.get("provider"),
        "query": params.get("query") or {},
        "user_id": user_id_of(params.get("user")),
        "request_id": current_request_id(),
    }


def make_envelope(
    path: str,
    event: str,
    data: Any,
    context: HookContext | None,
    origin: str,
) -> Envelope:
    return Envelope(
        id=uuid.uuid4().hex,
        origin=origin,
        ts=int(time.time() * 1000),
        path=path,
        event=event,
        data=data,
        context=summarize_context(context),
    )


def parse_envelope(raw: str | bytes | None) -> Envelope:
    """Decode and validate one message; raise :class:`EnvelopeError` on anything else."""
    if raw is None:
        raise EnvelopeError("entry has no envelope field")
    try:
        message = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        raise EnvelopeError(f"not JSON: {exc}") from None
    return envelope_from_dict(message)


def envelope_from_dict(message: Any) -> Envelope:
    """Validate one decoded message; raise :class:`EnvelopeError` on anything else."""
    if not isinstance(message, dict):
        raise EnvelopeError(f"expected an object, got {type(message).__name__}")
    version = message.get("v")
    if type(version) is not int or version != VERSION:
        raise EnvelopeError(f"unsupported envelope version {version!r}")
    for key in _ROUTING_KEYS:
        if not isinstance(message.get(key), str) or not message[key]:
            raise EnvelopeError(f"'{key}' must be a non-empty string")
    if type(message.get("ts")) is not int:
        raise EnvelopeError("'ts' must be an integer (epoch milliseconds)")
    if "data" not in message:
        raise EnvelopeError("'data' is missing")
    context = message.get("context")
    if not isinstance(context, dict):
        raise EnvelopeError("'context' must be an object")
    for key in ("method", "provider"):
        if context.get(key) is not None and not isinstance(context[key], str):
            raise EnvelopeError(f"'context.{key}' must be a string or null")
    query = context.get("query")
    if query is not None and not isinstance(query, dict):
        raise EnvelopeError("'context.query' must be an object")
    request_id = context.get("request_id")
    if not isinstance(request_id, str) or len(request_id) > MAX_REQUEST_ID:
        context = {**context, "request_id": None}  # an older sender's, or not one to log
    return Envelope(
        id=message["id"],
        origin=message["origin"],
        ts=message["ts"],
        path=message["path"],
        event=message["event"],
        data=message["data"],
        context={key: context.get(key) for key in CONTEXT_KEYS},
    )


def synced_context(envelope: Envelope) -> SyncedContext:
    context = envelope.context
    return SyncedContext(
        path=envelope.path,
        event=envelope.event,
        method=context.get("method"),
        id=context.get("id"),
        provider=context.get("provider"),
        query=context.get("query") or {},
        user_id=context.get("user_id"),
        origin=envelope.origin,
        request_id=context.get("request_id"),
    )
