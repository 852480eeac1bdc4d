"""The MongoDB connection of one process, created lazily so that it is never shared across a fork."""

from __future__ import annotations

import logging
import os
import threading

import pymongo
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError
from pymongo.uri_parser import parse_uri

logger = logging.getLogger(__name__)

DEFAULT_URL = "mongodb://127.0.0.1:27017/kdk"


class MongoProvider:
    """Hands out the Database of this process; a forked child gets a client of its own."""

    def __init__(self, url: str | None, *, database: str | None = None, timeout_ms: int = 2000) -> None:
        self.url = url or DEFAULT_URL
        self.database_name = database or parse_uri(self.url).get("database") or "kdk"
        self.timeout_ms = timeout_ms
        self._client: MongoClient | None = None
        self._database: Database | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> MongoClient:
        if self._client is None or self._pid != os.getpid():
            with self._lock:
                if self._client is None or self._pid != os.getpid():
                    self._client = MongoClient(
                        self.url,
                        serverSelectionTimeoutMS=self.timeout_ms,
                        connectTimeoutMS=self.timeout_ms,
                        tz_aware=False,
                        connect=False,
                    )
                    self._database = self._client[self.database_name]
                    self._pid = os.getpid()
        return self._client

    def database(self) -> Database:
        """This process's Database (the same object every time, so callers can cache on it)."""
        client = self.client
        return self._database if self._database is not None else client[self.database_name]

    def ping(self, timeout_ms: int) -> bool:
        """True when MongoDB answers within ``timeout_ms`` (used by health checks)."""
        try:
            with pymongo.timeout(timeout_ms / 1000):  # bounds server selection too
                self.client.admin.command("ping")
            return True
        except PyMongoError as exc:
            logger.info("MongoDB ping failed: %s", exc)
            return False

    def close(self) -> None:
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None
        self._database = None
