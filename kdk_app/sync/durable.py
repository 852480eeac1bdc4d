"""The durable outbox: envelopes of acknowledged events, kept in MongoDB until the broker has them.

An event is saved here on the caller's thread, before the service call returns, so a write that
was acknowledged has its event on disk even if the process dies the next instant. Calls that
save at the same time share one ``insert_many`` (group commit): the first becomes the leader and
writes what has queued up meanwhile, then hands the lead to the next waiting call. The publisher
deletes saved envelopes once the broker has them. Each bus beats in ``owners``; when an owner
stops beating (SIGKILL, a lost host), any live bus claims it and sends what it left, in the
order it saved it, under the dead owner's origin. Copies that both sides sent (an owner that was
only slow, a send whose deletion failed) are dropped by receivers by envelope id.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pymongo
from bson import Binary, ObjectId
from pymongo.database import Database
from pymongo.errors import PyMongoError

from ..database import MONGO_FAILURES, bounded

logger = logging.getLogger(__name__)

OUTBOX = "kdk_sync_outbox"
OWNERS = "kdk_sync_owners"
SAVE_COOLDOWN = 1.0  # s without saving after a failed save: a down MongoDB costs one call its bound


@dataclass(frozen=True)
class Saved:
    """One envelope the store holds: its document id and the encoded envelope."""

    id: ObjectId
    message: bytes


@dataclass(eq=False)
class _Waiting:
    """One call waiting for its envelope to be written by the current leader (or to lead)."""

    doc: dict[str, Any]
    written: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    lead: bool = False


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class DurableStore:
    """The outbox and owner documents of one bus (``origin``) in one MongoDB database."""

    def __init__(
        self,
        database: Callable[[], Database],
        origin: str,
        *,
        stream: str,
        orphan_after: float = 5.0,
        timeout: float = 1.0,
    ) -> None:
        self._database = database
        self.origin = origin
        self.stream = stream  # several streams (apps) may share a database
        self.orphan_after = orphan_after
        self.timeout = timeout
        self._save_paused_until = 0.0
        self._lock = threading.Lock()
        self._queue: list[_Waiting] = []
        self._leading = False
        self._unforgotten: list[ObjectId] = []
        self._indexed = False

    def _collections(self) -> tuple[Any, Any]:
        db = self._database()
        outbox, owners = db[OUTBOX], db[OWNERS]
        if not self._indexed:
            outbox.create_index([("stream", 1), ("origin", 1), ("_id", 1)])
            owners.create_index([("stream", 1), ("beat", 1)])
            self._indexed = True
        return outbox, owners

    # --- the owner's side ----------------------------------------------------------------
    def save(self, message: bytes) -> ObjectId | None:
        """Store ``message`` before the call returns; None when MongoDB did not take it."""
        if time.monotonic() < self._save_paused_until:
            return None
        with self._lock:
            # The id is taken in queue order, which is the order the drain follows.
            item = _Waiting(
                {"_id": ObjectId(), "stream": self.stream, "origin": self.origin, "msg": Binary(message)}
            )
            self._queue.append(item)
            lead = not self._leading
            self._leading = True
        if not lead and not self._wait(item):
            return item.doc["_id"] if item.ok else None
        self._lead()
        return item.doc["_id"] if item.ok else None

    def _wait(self, item: _Waiting) -> bool:
        """Wait for the leader to write ``item``; True when this call must lead instead."""
        if not item.written.wait(2 * self.timeout):  # a leader's insert is bounded by timeout
            with self._lock:
                if not item.lead and any(waiting is item for waiting in self._queue):
                    self._queue.remove(item)  # never picked up: give up on it, not on the others
                    return False
            item.written.wait(self.timeout)  # in an insert right now, or just handed the lead
        return item.lead

    def _lead(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
        ok = self._insert([item.doc for item in batch])
        for item in batch:
            item.ok = ok
            item.written.set()
        with self._lock:
            if self._queue:  # arrived during the insert: the first of them leads the next one
                self._queue[0].lead = True
                self._queue[0].written.set()
            else:
                self._leading = False

    def _insert(self, docs: list[dict[str, Any]]) -> bool:
        try:
            # On the request path: hard-bounded like the record's own write.
            with bounded(self.timeout):
                outbox, _owners = self._collections()
                outbox.insert_many(docs, ordered=True)
            return True
        except MONGO_FAILURES as exc:
            self._save_paused_until = time.monotonic() + SAVE_COOLDOWN
            logger.warning(
                "sync: could not save %d event(s) in MongoDB (kept in memory only): %s", len(docs), exc
            )
            return False

    def forget(self, ids: list[ObjectId]) -> None:
        """Delete what the broker has; ids that cannot be deleted now go with the next call."""
        pending = self._unforgotten + ids
        if not pending:
            return
        try:
            with pymongo.timeout(self.timeout):
                outbox, _owners = self._collections()
                outbox.delete_many({"_id": {"$in": pending}})
            self._unforgotten = []
        except PyMongoError as exc:
            # Left in the store, they would be sent again if this owner died: receivers drop copies.
            self._unforgotten = pending[-100_000:]
            logger.debug("sync: could not delete sent events from MongoDB: %s", exc)

    def beat(self) -> None:
        """Tell the other buses this owner is alive (raises when MongoDB does not answer)."""
        with pymongo.timeout(self.timeout):
            _outbox, owners = self._collections()
            owners.update_one(
                {"_id": self.origin},
                {"$set": {"stream": self.stream, "beat": _now()}, "$unset": {"drainer": ""}},
                upsert=True,
            )

    def retire(self) -> None:
        """A clean stop with nothing left: no one needs to drain this owner."""
        with pymongo.timeout(self.timeout):
            outbox, owners = self._collections()
            if outbox.find_one({"stream": self.stream, "origin": self.origin}, {"_id": 1}) is None:
                owners.delete_one({"_id": self.origin})

    # --- a drainer's side ------------------------------------------------------------------
    def orphans(self) -> list[str]:
        """Owners of this stream that stopped beating, and origins with envelopes but no owner."""
        with pymongo.timeout(self.timeout):
            outbox, owners = self._collections()
            cutoff = _now() - datetime.timedelta(seconds=self.orphan_after)
            stale = [
                d["_id"] for d in owners.find({"stream": self.stream, "beat": {"$lt": cutoff}}, {"_id": 1})
            ]
            known = {d["_id"] for d in owners.find({"stream": self.stream}, {"_id": 1})}
            unowned = [o for o in outbox.distinct("origin", {"stream": self.stream}) if o not in known]
        return [o for o in stale + unowned if o != self.origin]

    def claim(self, origin: str) -> bool:
        """Take ``origin`` over for ``orphan_after`` seconds; False when another bus has it."""
        cutoff = _now() - datetime.timedelta(seconds=self.orphan_after)
        with pymongo.timeout(self.timeout):
            _outbox, owners = self._collections()
            try:
                result = owners.update_one(
                    {"_id": origin, "$or": [{"beat": {"$lt": cutoff}}, {"drainer": self.origin}]},
                    {"$set": {"stream": self.stream, "beat": _now(), "drainer": self.origin}},
                    upsert=True,  # an origin with envelopes and no owner document
                )
            except pymongo.errors.DuplicateKeyError:
                return False  # it exists and beats: alive, or another bus claimed it first
        return bool(result.matched_count or result.upserted_id)

    def left_by(self, origin: str, limit: int) -> list[Saved]:
        """The oldest ``limit`` envelopes ``origin`` left, in the order it saved them."""
        with pymongo.timeout(self.timeout):
            outbox, _owners = self._collections()
            cursor = outbox.find({"stream": self.stream, "origin": origin}).sort("_id", 1).limit(limit)
            return [Saved(doc["_id"], bytes(doc["msg"])) for doc in cursor]

    def drained(self, origin: str, ids: list[ObjectId]) -> None:
        """Delete what was sent for ``origin``; release it once nothing is left."""
        with pymongo.timeout(self.timeout):
            outbox, owners = self._collections()
            if ids:
                outbox.delete_many({"_id": {"$in": ids}})
            if outbox.find_one({"stream": self.stream, "origin": origin}, {"_id": 1}) is None:
                owners.delete_one({"_id": origin, "drainer": self.origin})
