"""The JetStream API calls of the NATS broker: the stream (created when missing, its limits
kept to the settings), and where a reader resumes in it after (re)connecting."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from .base import NEW_ONLY, BrokerOptions
from .nats_client import NatsConnection, NatsError

logger = logging.getLogger(__name__)

API = "$JS.API"
NS_PER_MS = 1_000_000
_STREAM_NOT_FOUND = 10059
_STREAM_NAME_IN_USE = 10058


class JetStreamError(NatsError):
    """JetStream answered with an error (its code and description)."""

    def __init__(self, description: str, err_code: int | None = None) -> None:
        super().__init__(description)
        self.err_code = err_code


def stream_name(stream: str) -> str:
    """A valid JetStream stream name for ``sync.stream`` (no ``.``, ``*``, ``>``, spaces):
    ``kdk:events`` is ``kdk_events``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", stream)


def api(conn: NatsConnection, call: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One JetStream API call; JetStreamError with its description when it fails."""
    reply = conn.request(f"{API}.{call}", json.dumps(body).encode() if body is not None else b"")
    if reply.status == 503:
        raise NatsError(
            "JetStream is not available on this NATS server (started without -js, or still starting)"
        )
    answer = json.loads(reply.data)
    error = answer.get("error")
    if error:
        raise JetStreamError(f"JetStream {call}: {error.get('description')}", error.get("err_code"))
    return answer


def ensure_stream(
    conn: NatsConnection, name: str, subject: str, options: BrokerOptions
) -> tuple[dict[str, Any], bool]:
    """The stream's info, creating the stream when missing (True then); its limits follow ours."""
    limits = {"max_age": (options.retention_ms or 0) * NS_PER_MS, "max_msgs": options.maxlen or -1}
    try:
        info = api(conn, f"STREAM.INFO.{name}")
    except JetStreamError as exc:
        if exc.err_code != _STREAM_NOT_FOUND:
            raise
        config = {"name": name, "subjects": [subject], "storage": "file", "discard": "old", **limits}
        try:
            return api(conn, f"STREAM.CREATE.{name}", config), True
        except JetStreamError as exc:
            if exc.err_code != _STREAM_NAME_IN_USE:  # else another instance was first
                raise
        info = api(conn, f"STREAM.INFO.{name}")
    config = info["config"]
    if subject not in config.get("subjects", []):
        raise NatsError(f"JetStream stream {name!r} exists without the subject {subject!r}")
    if any(config.get(key) != value for key, value in limits.items()):
        try:
            update = {**config, **limits}
            if limits["max_age"] and update.get("duplicate_window", 0) > limits["max_age"]:
                update["duplicate_window"] = limits["max_age"]  # JetStream requires it
            info = api(conn, f"STREAM.UPDATE.{name}", update)
            logger.info("sync stream %r: limits set to %s", name, limits)
        except JetStreamError as exc:  # the stream works as it is; say why the settings do not apply
            logger.warning("sync stream %r: could not set its limits to %s: %s", name, limits, exc)
    return info, False


def resume_sequence(
    name: str, position: str, state: dict[str, Any], *, created: bool, replaced: bool = False
) -> int:
    """The sequence to read after: ``position`` when still valid, with a warning on a known gap.

    NEW_ONLY is pinned to the stream's last sequence, so that a reconnection before the first
    read still resumes from the moment the reader started. ``created``: the stream was missing
    (made just now); ``replaced``: it is not the one this process read before (its creation
    time changed), so our position says nothing about it.
    """
    first, last = int(state.get("first_seq") or 0), int(state.get("last_seq") or 0)
    if position == NEW_ONLY:
        return last
    after = int(position)
    if created and after > 0:
        logger.warning(
            "sync stream %r is gone (NATS lost its store?): events stored in it after %s and not yet "
            "read are lost",
            name,
            position,
        )
        return 0
    if replaced:
        # Sequences start again at 1 in a new stream: reading after ours would skip its first ones.
        logger.warning(
            "sync stream %r was deleted and created again since this instance read it at %s: "
            "reading it from the beginning; events of the old stream not yet read are lost",
            name,
            position,
        )
        return 0
    if last < after:
        # A new stream under the same name: its sequences say nothing about our position.
        logger.warning(
            "sync stream %r was reset (its last sequence %d is before our position %s): reading it "
            "from the beginning; events of the old stream not yet read are lost",
            name,
            last,
            position,
        )
        return 0
    if last > after and first > after + 1:
        logger.warning(
            "sync stream %r was trimmed past our position %s (retention or maxlen): events after it "
            "and before %d may have been lost for this instance",
            name,
            position,
            first,
        )
        return first - 1
    return after
