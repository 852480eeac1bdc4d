"""What the health check says about a MongoDB replica set: its name, primary and secondaries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# replSetGetStatus member states that count as serving (the others: STARTUP, RECOVERING, DOWN …).
PRIMARY_STATE = 1
SECONDARY_STATE = 2


def report_from_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """The report from ``replSetGetStatus``: each member's state, as the set itself sees it."""
    members = list(status.get("members") or ())
    return {
        "replicaSet": status.get("set"),
        "primary": next((m.get("name") for m in members if m.get("state") == PRIMARY_STATE), None),
        "secondaries": [m.get("name") for m in members if m.get("state") == SECONDARY_STATE],
        "members": [
            {"name": m.get("name"), "state": m.get("stateStr"), "health": m.get("health")} for m in members
        ],
        "source": "replSetGetStatus",
    }


def report_from_hello(hello: Mapping[str, Any]) -> dict[str, Any]:
    """The report from ``hello`` alone (replSetGetStatus refused, e.g. to a restricted user):
    the configured data-bearing members other than the primary, without their state."""
    primary = hello.get("primary")
    hosts = [*(hello.get("hosts") or ()), *(hello.get("passives") or ())]
    return {
        "replicaSet": hello.get("setName"),
        "primary": primary,
        "secondaries": [host for host in hosts if host != primary],
        "arbiters": list(hello.get("arbiters") or ()),
        "source": "hello",
    }
