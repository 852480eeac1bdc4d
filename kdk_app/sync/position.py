"""Where a reader resumes in the stream after (re)connecting, and whether it missed events."""

from __future__ import annotations

import logging
from typing import Any

import redis

from ..redis_connect import AnyRedis

logger = logging.getLogger(__name__)

NEW_ONLY = "$"
BEGINNING = "0-0"


def as_text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def parse_id(value: str | bytes) -> tuple[int, int]:
    """A stream entry id (``"ms-seq"`` or ``"ms"``) as a comparable pair."""
    text = as_text(value)
    ms, _, seq = text.partition("-")
    try:
        pair = (int(ms), int(seq or 0))
    except ValueError:
        raise ValueError(f"not a stream id: {text!r}") from None
    if pair[0] < 0 or pair[1] < 0:
        raise ValueError(f"not a stream id: {text!r}")
    return pair


def stream_info(client: AnyRedis, stream: str) -> dict[str, Any] | None:
    """``XINFO STREAM``, or None when the stream does not exist (yet, or any more)."""
    try:
        return client.xinfo_stream(stream)
    except redis.ResponseError as exc:
        if "no such key" in str(exc).lower():
            return None
        raise


def resume_position(client: AnyRedis, stream: str, last_id: str) -> str:
    """The id to read after: ``last_id`` when still valid, with a warning on a known gap.

    ``"$"`` is pinned to the current end so that a connection lost before the first read
    still resumes from the moment the reader started, not from whenever it reconnects.
    """
    info = stream_info(client, stream)
    if last_id == NEW_ONLY:
        return as_text(info["last-generated-id"]) if info else BEGINNING
    last = parse_id(last_id)
    if info is None:
        if last != (0, 0):
            logger.warning(
                "sync stream %r is gone (Redis restarted without persistence?): "
                "events stored in it after %s and not yet read are lost",
                stream,
                last_id,
            )
        return BEGINNING
    generated = parse_id(info["last-generated-id"])
    if generated < last:
        # A new stream under the same name: its ids say nothing about our position.
        logger.warning(
            "sync stream %r was reset (its last id %s is before our position %s): "
            "reading it from the beginning; events of the old stream not yet read are lost",
            stream,
            as_text(info["last-generated-id"]),
            last_id,
        )
        return BEGINNING
    if generated > last and last != (0, 0) and _recreated_after(info, last):
        logger.warning(
            "sync stream %r starts after our position %s and lost no entry to trimming: it is a "
            "new stream (Redis restarted without persistence?); events stored in the old one "
            "after that position and not yet read are lost",
            stream,
            last_id,
        )
    elif generated > last and _trimmed_past(info, last):
        logger.warning(
            "sync stream %r was trimmed past our position %s (retention or maxlen): "
            "events after it and before %s may have been lost for this instance",
            stream,
            last_id,
            _first_id(info) or as_text(info["last-generated-id"]),
        )
    return last_id


def _first_id(info: dict[str, Any]) -> str | None:
    first = info.get("first-entry")
    return as_text(first[0]) if first else None


def _recreated_after(info: dict[str, Any], last: tuple[int, int]) -> bool:
    """A stream whose every entry is newer than ``last`` and which never lost one (Redis 7+
    counts the entries ever added): not trimmed, made anew since we read the old one."""
    first, added = _first_id(info), info.get("entries-added")
    if first is None or added is None:
        return False
    return parse_id(first) > last and int(added) == int(info.get("length", 0))


def _trimmed_past(info: dict[str, Any], last: tuple[int, int]) -> bool:
    first = _first_id(info)
    if first is None:  # empty, yet newer entries were added: all were trimmed
        return True
    if last == (0, 0):
        # Read from the start: lost only if entries were ever removed (Redis 7+ knows).
        added = info.get("entries-added")
        return added is not None and int(added) > int(info.get("length", 0))
    return parse_id(first) > last
