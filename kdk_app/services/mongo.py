"""MongoService: a Feathers database adapter on pymongo.

Ids are ObjectIds in the database and 24-hex strings outside it. Database outages become
503 Unavailable, duplicate keys 409 Conflict; nothing from pymongo ever reaches a client raw.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from bson import ObjectId
from bson.errors import BSONError
from pymongo import IndexModel, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

from ..core.errors import BadRequest, Conflict, FeathersError, GeneralError, Unavailable
from ..database import CallDeadlineExceeded, bounded, call_timeout
from .adapter import AdapterService
from .query import Query

logger = logging.getLogger(__name__)

# MongoDB error codes caused by what the client sent, not by the server: BadValue,
# FailedToParse, TypeMismatch, Overflow, PathNotViable, ConflictingUpdateOperators,
# DollarPrefixedFieldName, EmptyFieldName, DottedFieldName, a document over 16 MB after an
# update, a bad sort, an empty field path.
INPUT_ERROR_CODES = frozenset({2, 9, 14, 15, 28, 40, 52, 56, 57, 10334, 17419, 17287, 40352})

# Codes of a replica set that is electing, or of a member that is shutting down or out of
# reach: NotWritablePrimary, NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary,
# InterruptedAtShutdown, InterruptedDueToReplStateChange, PrimarySteppedDown,
# ShutdownInProgress, HostUnreachable, HostNotFound, NetworkTimeout, SocketException.
ELECTION_ERROR_CODES = frozenset({10107, 13435, 13436, 11600, 11602, 189, 91, 6, 7, 89, 9001})
# Labels the server puts on errors that a later attempt may not get.
TRANSIENT_ERROR_LABELS = ("RetryableWriteError", "TransientTransactionError")

IndexSpec = IndexModel | Mapping[str, Any] | str
DatabaseSource = Database | Callable[[], Database]


def to_object_id(value: Any) -> Any:
    """A 24-hex string becomes an ObjectId; anything else is kept, so it simply matches nothing."""
    if isinstance(value, str) and len(value) == 24 and ObjectId.is_valid(value):
        return ObjectId(value)
    return value


def _index_model(spec: IndexSpec) -> IndexModel:
    if isinstance(spec, IndexModel):
        return spec
    if isinstance(spec, str):
        return IndexModel([(spec, 1)])
    options = dict(spec)
    keys = options.pop("keys")
    if isinstance(keys, str):
        keys = [(keys, 1)]
    elif isinstance(keys, Mapping):
        keys = list(keys.items())
    return IndexModel(keys, **options)


def _conflict(details: Mapping[str, Any]) -> Conflict:
    fields = list(details.get("keyValue", {}) or {})
    return Conflict("A record with the same unique value already exists", {"fields": fields})


@contextlib.contextmanager
def database_errors(timeout: float | None = None) -> Iterator[None]:
    """Translate pymongo failures into Feathers errors.

    ``timeout`` (seconds) is one deadline for every operation inside, so a call of several
    operations is bounded as a whole, and under gevent a hard one (see ``hard_deadline``); a
    timeout, whatever pymongo calls it, is a 503.
    """
    try:
        with bounded(timeout) if timeout is not None else contextlib.nullcontext():
            yield
    except FeathersError:
        raise
    except CallDeadlineExceeded as exc:
        logger.warning("MongoDB unavailable: %s", exc)
        raise Unavailable("Database unavailable") from None
    except DuplicateKeyError as exc:
        raise _conflict(exc.details or {}) from None
    except (ServerSelectionTimeoutError, ConnectionFailure, ExecutionTimeout, WTimeoutError) as exc:
        logger.warning("MongoDB unavailable: %s", exc)
        raise Unavailable("Database unavailable") from None
    except PyMongoError as exc:
        if not exc.timeout:  # timeouts come in other classes too: a bulk write, code 262 …
            _raise_for_failure(exc)
        logger.warning("MongoDB timed out: %s", exc)
        raise Unavailable("Database unavailable") from None
    except (BSONError, OverflowError, UnicodeEncodeError):
        # pymongo could not encode the input (a number beyond 64 bits, a lone surrogate …).
        raise BadRequest("Invalid data: cannot be stored") from None


def is_election_error(exc: PyMongoError) -> bool:
    """True for a failure that an election or a restarting member causes, so a 503, not a 500.

    pymongo has already retried a retryable read or write once when this reaches us.
    """
    if any(exc.has_error_label(label) for label in TRANSIENT_ERROR_LABELS):
        return True
    if isinstance(exc, OperationFailure) and exc.code in ELECTION_ERROR_CODES:
        return True
    if isinstance(exc, BulkWriteError):  # a write concern error of a batch (e.g. its primary shut down)
        concern_errors = (exc.details or {}).get("writeConcernErrors") or ()
        return any(error.get("code") in ELECTION_ERROR_CODES for error in concern_errors)
    return False


def _raise_for_failure(exc: PyMongoError) -> None:
    """Raise the Feathers error for a pymongo failure that is not an outage."""
    if is_election_error(exc):
        logger.warning("MongoDB unavailable (election or shutdown): %s", exc)
        raise Unavailable("Database unavailable") from None
    if isinstance(exc, BulkWriteError):  # insert_many: judge by the first failed write
        first = ((exc.details or {}).get("writeErrors") or [{}])[0]
        if first.get("code") == 11000:
            raise _conflict(first) from None
        if first.get("code") in INPUT_ERROR_CODES:
            raise BadRequest("Invalid data: refused by the database") from None
        logger.warning("MongoDB refused a bulk write: %s", exc)
        raise GeneralError("Database error") from None
    if isinstance(exc, OperationFailure):
        logger.warning("MongoDB refused an operation: %s", exc)
        if exc.code in INPUT_ERROR_CODES:
            raise BadRequest("Invalid data or query: refused by the database") from None
        raise GeneralError("Database error") from None
    logger.error("MongoDB error", exc_info=exc)
    raise GeneralError("Database error") from None


class MongoService(AdapterService):
    """A service on one MongoDB collection.

    ``database`` is a pymongo Database or a callable returning one; when omitted, ``setup``
    takes ``app.get("mongodb")`` (a callable), so the client is created lazily after a fork.
    ``indexes`` are created at setup: field names, ``{"keys": …, "unique": True}`` or IndexModels.
    """

    def __init__(
        self,
        collection: str,
        *,
        database: DatabaseSource | None = None,
        indexes: Sequence[IndexSpec] = (),
        id: str = "_id",
        **options: Any,
    ) -> None:
        super().__init__(id=id, **options)
        self.collection_name = collection
        self._database = database
        self.indexes = [_index_model(spec) for spec in indexes]
        self._indexes_ready = not self.indexes
        self._collection: tuple[Database, Collection] | None = None  # cached per Database

    # --- wiring --------------------------------------------------------------------------
    def setup(self, app: Any, path: str) -> None:
        if self._database is None:
            self._database = app.get("mongodb")
        if self._database is None:
            raise RuntimeError(f"Service '{path}' needs a MongoDB database (setting 'mongodb')")
        self.ensure_indexes()

    @property
    def collection(self) -> Collection:
        database = self._database() if callable(self._database) else self._database
        if database is None:
            raise RuntimeError("MongoService used before setup()")
        cached = self._collection
        if cached is None or cached[0] is not database:  # a new client after a fork
            cached = self._collection = (database, database[self.collection_name])
        return cached[1]

    def bounded_call(self) -> contextlib.AbstractContextManager[None]:
        """``database_errors`` with one deadline for the whole call (see ``call_timeout``)."""
        return database_errors(call_timeout(self.collection.database.client))

    def ensure_indexes(self) -> None:
        """Create declared indexes; if MongoDB is down now, try again on the next call."""
        if self._indexes_ready:
            return
        try:
            self.collection.create_indexes(self.indexes)
            self._indexes_ready = True
        except PyMongoError as exc:
            if not isinstance(exc, ConnectionFailure) and not exc.timeout:
                raise
            logger.warning("indexes of '%s' not created yet: %s", self.collection_name, exc)

    # --- ids and queries -----------------------------------------------------------------
    def convert_query_value(self, name: str, value: Any) -> Any:
        if name == self.id and self.id == "_id":
            return to_object_id(value)
        return super().convert_query_value(name, value)

    def _by_id(self, id: Any, query: Query) -> dict[str, Any]:
        """The filter for one record: its id AND the caller's query (which may name the id too)."""
        id_filter = {self.id: to_object_id(id) if self.id == "_id" else id}
        if self.id in query.query:
            return {"$and": [query.query, id_filter]}
        return {**query.query, **id_filter}

    def _projection(self, query: Query) -> dict[str, int] | None:
        hidden_id = {"_id": 0} if self.id != "_id" else {}
        if query.select is not None:
            return {**dict.fromkeys(query.select, 1), self.id: 1, **hidden_id}
        return hidden_id or None

    def _out(self, record: Mapping[str, Any] | None, query: Query, params: Mapping[str, Any]) -> Any:
        if record is None:
            return None
        record = dict(record)
        if isinstance(record.get(self.id), ObjectId):
            record[self.id] = str(record[self.id])
        return self.select(record, query.select, params)

    # --- raw methods ---------------------------------------------------------------------
    def _find(self, params: dict[str, Any]) -> Any:
        paginate = self.paginate_options(params)
        query = self.parse_query(params)
        paged = isinstance(paginate, Mapping)
        with self.bounded_call():
            self.ensure_indexes()
            collection = self.collection
            total = None
            if paged and paginate.get("count", True):
                total = collection.count_documents(query.query)
            if query.limit == 0:
                data: list[Any] = []
            else:
                cursor = collection.find(query.query, self._projection(query))
                if query.sort:
                    cursor = cursor.sort(list(query.sort.items()))
                if query.skip:
                    cursor = cursor.skip(query.skip)
                if query.limit is not None:
                    cursor = cursor.limit(query.limit)
                data = [self._out(r, query, params) for r in cursor]
        return self.page(query, total, data, paginate)

    def _get(self, id: Any, params: dict[str, Any]) -> Any:
        query = self.parse_query(params, paginated=False)
        with self.bounded_call():
            record = self.collection.find_one(self._by_id(id, query), self._projection(query))
        if record is None:
            raise self.not_found(id)
        return self._out(record, query, params)

    def _create(self, data: Any, params: dict[str, Any]) -> Any:
        query = self.parse_query(params, paginated=False)
        items = [dict(item) for item in (data if isinstance(data, list) else [data])]
        for item in items:
            if self.id == "_id":
                item["_id"] = to_object_id(item["_id"]) if "_id" in item else ObjectId()
            elif item.get(self.id) is None:
                item[self.id] = str(ObjectId())
        with self.bounded_call():
            self.ensure_indexes()
            if len(items) == 1:
                self.collection.insert_one(items[0])
            else:
                self.collection.insert_many(items)
        created = [self._out(item, query, params) for item in items]
        if self.id != "_id":
            for record in created:
                record.pop("_id", None)
        return created if isinstance(data, list) else created[0]

    def _update(self, id: Any, data: Any, params: dict[str, Any]) -> Any:
        query = self.parse_query(params, paginated=False)
        replacement = {k: v for k, v in dict(data).items() if k not in ("_id", self.id)}
        if self.id != "_id":
            replacement[self.id] = id
        with self.bounded_call():
            record = self.collection.find_one_and_replace(
                self._by_id(id, query),
                replacement,
                projection=self._projection(query),
                return_document=ReturnDocument.AFTER,
            )
        if record is None:
            raise self.not_found(id)
        return self._out(record, query, params)

    def _patch(self, id: Any, data: Any, params: dict[str, Any]) -> Any:
        query = self.parse_query(params, paginated=False)
        changes = {k: v for k, v in dict(data).items() if k not in ("_id", self.id)}
        with self.bounded_call():
            collection = self.collection
            if id is not None:
                where = self._by_id(id, query)
                if changes:
                    record = collection.find_one_and_update(
                        where,
                        {"$set": changes},
                        projection=self._projection(query),
                        return_document=ReturnDocument.AFTER,
                    )
                else:
                    record = collection.find_one(where, self._projection(query))
                if record is None:
                    raise self.not_found(id)
                return self._out(record, query, params)
            # Multi: remember which records matched, so the result holds them all even if the
            # patch makes them stop matching (adapter test ".patch multi query changed").
            ids = [r[self.id] for r in collection.find(query.query, {self.id: 1})]
            if ids and changes:
                collection.update_many({self.id: {"$in": ids}}, {"$set": changes})
            patched = collection.find({self.id: {"$in": ids}}, self._projection(query))
            return [self._out(r, query, params) for r in patched]

    def _remove(self, id: Any, params: dict[str, Any]) -> Any:
        query = self.parse_query(params, paginated=False)
        with self.bounded_call():
            collection = self.collection
            if id is not None:
                record = collection.find_one_and_delete(
                    self._by_id(id, query),
                    projection=self._projection(query),
                )
                if record is None:
                    raise self.not_found(id)
                return self._out(record, query, params)
            records = list(collection.find(query.query, self._projection(query)))
            if records:
                collection.delete_many({self.id: {"$in": [r[self.id] for r in records]}})
            return [self._out(r, query, params) for r in records]
