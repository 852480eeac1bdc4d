"""Shared by the bench driver and the bench-only WSGI modules: seed data, files, percentiles."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

SEED_COUNT = 200
TAG_COUNT = 10
# Environment variables the driver sets for the bench-only WSGI modules.
SEED_FILE_VARIABLE = "BENCH_SEED_FILE"
COLLECTION = "messages"


def seed_records() -> list[dict[str, Any]]:
    """The 200 seeded messages (no ``_id``; the driver assigns ObjectIds)."""
    return [{"text": f"bench message {i}", "n": i, "tag": f"t{i % TAG_COUNT}"} for i in range(SEED_COUNT)]


def load_seed_file(path: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The seeded records as JSON (``_id`` as 24-hex strings), from ``$BENCH_SEED_FILE``."""
    path = path or os.environ[SEED_FILE_VARIABLE]
    return json.loads(Path(path).read_text())


def raw_operation(mode: str, collection: Any, ids: Sequence[Any]) -> Callable[[int], Any]:
    """One raw pymongo call doing the database work of the HTTP route for ``mode``."""
    if mode == "get":
        return lambda i: collection.find_one({"_id": random.choice(ids)})
    if mode == "find":

        def find(i: int) -> Any:
            where = {"tag": f"t{random.randrange(TAG_COUNT)}"}
            return collection.count_documents(where), list(collection.find(where).limit(10))

        return find
    if mode == "create":
        return lambda i: collection.insert_one(
            {"text": f"raw message {i}", "n": i, "tag": f"t{i % TAG_COUNT}"}
        )
    raise ValueError(f"unknown mode {mode!r}")
