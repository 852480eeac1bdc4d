"""The MongoDB connection of one process, created lazily so that it is never shared across a fork."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pymongo
from pymongo import MongoClient, ReadPreference
from pymongo.database import Database
from pymongo.errors import PyMongoError
from pymongo.uri_parser import parse_uri

from .replica_set import report_from_hello, report_from_status

logger = logging.getLogger(__name__)

DEFAULT_URL = "mongodb://127.0.0.1:27017/kdk"
DEFAULT_TIMEOUT_MS = 1000
DEFAULT_MAX_POOL_SIZE = 100  # pymongo's own default, per process
# pymongo's minimum. Its default (10 s) leaves a server marked Unknown after an election error
# until the next heartbeat when the server does not push the change (SecantusDB does not), so
# the single retry of a read or write would find no primary within timeoutMS.
DEFAULT_HEARTBEAT_FREQUENCY_MS = 500
SELECTION_POLL_MS = 500  # pymongo's server selection loop step (MIN_HEARTBEAT_INTERVAL)
# Of a call's bound, what the hard deadline leaves for the rest of the request: routing and
# hooks before the call, writing the 503 after it (about 15 ms on a loaded 2-core machine).
ANSWER_ALLOWANCE_S = 0.05


def call_timeout(client: MongoClient) -> float | None:
    """Seconds one service call on ``client`` may take: its timeoutMS, cut to its
    serverSelectionTimeoutMS while every server's last check failed.

    Under timeoutMS pymongo ignores serverSelectionTimeoutMS and waits for a server in 500 ms
    steps, so a call on a stopped MongoDB would overshoot the bound by up to that much.
    """
    timeout = client.options.timeout
    if timeout is None:
        return None
    servers = client.topology_description.server_descriptions().values()
    if servers and all(server.error is not None for server in servers):
        return min(timeout, client.options.server_selection_timeout)
    return timeout


class CallDeadlineExceeded(Exception):
    """A call on MongoDB ran past its whole deadline (see ``hard_deadline``).

    Not a PyMongoError on purpose: raised inside pymongo, one of those could be taken for a
    network error and retried, and the retry would run with no hard deadline left.
    """


# What a bounded call on MongoDB may raise when MongoDB fails it or runs out of time.
MONGO_FAILURES = (PyMongoError, CallDeadlineExceeded)


@contextlib.contextmanager
def hard_deadline(seconds: float | None) -> Iterator[None]:
    """Under gevent, raise ``CallDeadlineExceeded`` in the block shortly before ``seconds`` have
    passed, so that the answer goes out within ``seconds`` (see ``ANSWER_ALLOWANCE_S``).

    timeoutMS bounds each wait of a call, but not every one by what is left: a connection that
    the pool opens late in a call gets the whole connectTimeoutMS for its connect and handshake,
    so on a hung server a call could take up to one and a half times its bound. pymongo is made
    to be interrupted (it closes the connection it was using and re-raises), so the deadline is
    enforced from outside. Without gevent's sockets nothing could interrupt a blocking read, so
    the block runs under timeoutMS alone.
    """
    # Looked up, not imported: the service layer does not pull in gevent for a process without it.
    monkey = sys.modules.get("gevent.monkey")
    if seconds is None or monkey is None or not monkey.is_module_patched("socket"):
        yield
        return
    import gevent

    deadline = seconds - min(ANSWER_ALLOWANCE_S, seconds / 10)
    with gevent.Timeout(deadline, CallDeadlineExceeded(f"no answer within {deadline:g} s")):
        yield


@contextlib.contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """One deadline of ``seconds`` for the block: pymongo's timeoutMS, and under gevent a hard one."""
    with hard_deadline(seconds), pymongo.timeout(seconds):
        yield


class MongoProvider:
    """Hands out the Database of this process; a forked child gets a client of its own."""

    def __init__(
        self,
        url: str | None,
        *,
        database: str | None = None,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        server_selection_timeout_ms: int | None = None,
        max_pool_size: int = DEFAULT_MAX_POOL_SIZE,
        heartbeat_frequency_ms: int = DEFAULT_HEARTBEAT_FREQUENCY_MS,
    ) -> None:
        """``timeout_ms`` bounds every operation (pymongo's ``timeoutMS``); a smaller
        ``server_selection_timeout_ms`` gives up sooner on a server that is not there at all."""
        for name, value in (("timeout_ms", timeout_ms), ("max_pool_size", max_pool_size)):
            if value <= 0:
                raise ValueError(f"mongo.{name} must be a positive number, not {value!r}")
        if heartbeat_frequency_ms < DEFAULT_HEARTBEAT_FREQUENCY_MS:
            raise ValueError(
                f"mongo.heartbeat_frequency_ms must be at least {DEFAULT_HEARTBEAT_FREQUENCY_MS}, "
                f"not {heartbeat_frequency_ms!r}"
            )
        self.url = url or DEFAULT_URL
        self.database_name = database or parse_uri(self.url).get("database") or "kdk"
        self.timeout_ms = timeout_ms
        # pymongo re-checks for a server in 500 ms steps and may overshoot by as much, so by
        # default a call on a server known to be down gives up early enough to fit the bound.
        selection_ms = server_selection_timeout_ms or max(timeout_ms - SELECTION_POLL_MS, timeout_ms // 2)
        self.server_selection_timeout_ms = min(selection_ms, timeout_ms)
        self.max_pool_size = max_pool_size
        self.heartbeat_frequency_ms = heartbeat_frequency_ms
        self._client: MongoClient | None = None
        self._database: Database | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def client_options(self) -> dict[str, Any]:
        """The MongoClient keywords: every wait on a down or hung server is bounded.

        ``timeoutMS`` (client-side operation timeout) covers server selection, the pool's wait
        queue, connecting and every socket read, so requests queued behind a hung server get
        their 503 within the same bound. The legacy timeouts are set too, for the connections
        pymongo opens outside an operation (the monitors' heartbeats use connectTimeoutMS).

        Retryable reads and writes (pymongo's defaults, forced on over a URL's ``retryWrites=false``
        because the answer to an election relies on them) retry once an operation that failed on
        an election error, on the primary the monitors find next, within the same ``timeoutMS``.
        """
        return {
            "retryReads": True,
            "retryWrites": True,
            "heartbeatFrequencyMS": self.heartbeat_frequency_ms,
            "timeoutMS": self.timeout_ms,
            "serverSelectionTimeoutMS": self.server_selection_timeout_ms,
            "connectTimeoutMS": self.timeout_ms,
            "socketTimeoutMS": self.timeout_ms,
            "waitQueueTimeoutMS": self.timeout_ms,
            "maxPoolSize": self.max_pool_size,
        }

    @property
    def client(self) -> MongoClient:
        if self._client is None or self._pid != os.getpid():
            with self._lock:
                if self._client is None or self._pid != os.getpid():
                    self._client = MongoClient(
                        self.url,
                        **self.client_options(),
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
            with bounded(timeout_ms / 1000):
                self.client.admin.command("ping")
            return True
        except MONGO_FAILURES as exc:
            logger.info("MongoDB ping failed: %s", exc)
            return False

    def health_check(self, timeout_ms: int) -> tuple[bool, dict[str, Any]]:
        """``(running, {"mongo": replica_set_report})`` for the health check, within ``timeout_ms``
        for both commands together.

        Running means a primary answers (as ``ping`` does). The report (left out on a standalone
        server or when nothing answers) comes from ``replSetGetStatus``, or from ``hello`` when
        that is refused; ``hello`` goes to any member, so an election shows as no primary.
        """
        try:
            with bounded(timeout_ms / 1000):
                admin = self.client.admin
                any_member = ReadPreference.PRIMARY_PREFERRED
                hello = admin.command("hello", read_preference=any_member)
                if not hello.get("setName"):
                    return True, {}
                report = report_from_hello(hello)
                try:
                    status = admin.command("replSetGetStatus", read_preference=any_member)
                    report = report_from_status(status)
                except PyMongoError as exc:  # not permitted, or out of time: hello's view will do
                    logger.info("replSetGetStatus failed, reporting from hello: %s", exc)
        except MONGO_FAILURES as exc:
            logger.info("MongoDB health check failed: %s", exc)
            return False, {}
        return report["primary"] is not None, {"mongo": report}

    def close(self) -> None:
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None
        self._database = None
