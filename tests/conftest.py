"""Shared fixtures: MongoDB (SecantusDB), Redis, the app running as a subprocess, and the npm
dependencies of ``tests/js`` and ``tests/browser``.

The plumbing lives in ``tests/servers.py`` and ``tests/node.py``; this file only declares fixtures.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest
from chromium import chromium  # noqa: F401 - a fixture, for every browser test
from node import BROWSER_DIR, JS_DIR, MOCHA, NODE, NPM, NPM_TIMEOUT, npm_ci, skip_or_fail
from pymongo.database import Database
from servers import AppServerFactory, RedisServerFactory, RunningServer

from kdk_app.embedded import start_redis, start_secantusdb


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``KDK_TEST_MONGO_URL`` if set, else a SecantusDB in memory for the whole session."""
    external = os.environ.get("KDK_TEST_MONGO_URL")
    if external:
        yield external
        return
    log_path = tmp_path_factory.mktemp("secantusdb") / "secantusdb.log"
    process, url = start_secantusdb(":memory:", log_path=log_path)
    try:
        yield url
    finally:
        process.stop()


@pytest.fixture(scope="session")
def mongo_client(mongo_url: str) -> Iterator[pymongo.MongoClient]:
    client: pymongo.MongoClient = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=10_000)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def mongo_db(mongo_client: pymongo.MongoClient, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A database of its own for this test, dropped afterwards."""
    # Readable and unique; MongoDB database names are limited to 63 characters.
    label = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40]
    name = f"t_{label}_{uuid.uuid4().hex[:8]}"
    try:
        yield mongo_client[name]
    finally:
        mongo_client.drop_database(name)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Redis on a free port (never the machine's 6379) for the whole session."""
    log_path = tmp_path_factory.mktemp("redis") / "redis.log"
    process, url = start_redis(log_path=log_path)
    try:
        yield url
    finally:
        process.stop()


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[RedisServerFactory]:
    """``start(port=None) -> (process, url)``: Redis servers this test may stop and restart."""
    factory = RedisServerFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def app_server_factory(mongo_url: str, tmp_path: Path) -> Iterator[AppServerFactory]:
    """``start(env=None, *, workers=0, port=None) -> RunningServer``; all stopped at teardown."""
    factory = AppServerFactory(mongo_url, tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def app_server(mongo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One app for the whole session: KDK_ENV=test, the session database, no Redis."""
    factory = AppServerFactory(mongo_url, tmp_path_factory.mktemp("app"))
    try:
        yield factory()
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def js_deps() -> Path:
    """``npm ci`` in tests/js when node_modules is missing or older than package-lock.json."""
    if NODE is None or NPM is None:
        skip_or_fail("node and npm must be on PATH to run the official Feathers JS client tests (tests/js)")
    return npm_ci(JS_DIR, NPM_TIMEOUT, needs=[MOCHA])


@pytest.fixture(scope="session")
def browser_deps() -> Path:
    """``npm ci`` in tests/browser when node_modules is missing or older than package-lock.json."""
    if NODE is None or NPM is None:
        skip_or_fail("node and npm must be on PATH to drive Chromium with playwright-core (tests/browser)")
    # --ignore-scripts: playwright-core never downloads browsers; we use Debian's chromium.
    return npm_ci(
        BROWSER_DIR,
        NPM_TIMEOUT,
        needs=[Path("node_modules") / "playwright-core" / "package.json"],
        args=["--ignore-scripts"],
    )
