"""The layers of an app as parts: each declares what it must come after, and the order they are
wired in follows from those declarations, not from the order of calls in one function.

A part's ``init_app(flask_app, kdk, settings)`` adds its layer: routes, a Socket.IO server, a
bus, a WSGI middleware. Middlewares wrap what is there already, so the outermost comes last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask

from .core import Application

InitApp = Callable[[Flask, Application, Mapping[str, Any]], None]


@dataclass(frozen=True)
class Part:
    """One layer: its name, how it is added, and the parts it needs to be added after."""

    name: str
    init_app: InitApp
    after: tuple[str, ...] = ()


def ordered(parts: Iterable[Part]) -> list[Part]:
    """``parts`` in an order where each comes after the ones it names (ties keep the given order).

    ``after`` may name a part that is not in the list (an optional layer left out); a cycle is an
    error.
    """
    pending = list(parts)
    names = {part.name for part in pending}
    if len(names) != len(pending):
        raise ValueError("two parts have the same name")
    placed: list[Part] = []
    done: set[str] = set()
    while pending:
        ready = next(
            (p for p in pending if all(n in done or n not in names for n in p.after)),
            None,
        )
        if ready is None:
            raise ValueError(f"parts wait on each other: {', '.join(p.name for p in pending)}")
        placed.append(ready)
        done.add(ready.name)
        pending.remove(ready)
    return placed
