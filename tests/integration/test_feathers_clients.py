"""Unchanged official FeathersJS 5 clients against the Python server.

Runs the mocha suites in ``tests/js`` as subprocesses against the session's ``app_server``:

* ``adapter.test.js``: ``@feathersjs/adapter-tests@5.0.50`` (every test enabled) through
  ``@feathersjs/rest-client`` and through ``@feathersjs/socketio-client`` (docs/protocol.md §8).
* ``client-smoke.test.js``: CRUD, pagination and error classes on ``messages``.

Needs ``node`` (>= 20.19) and ``npm`` on PATH; the ``js_deps`` fixture (conftest.py) installs the
npm dependencies from ``tests/js/package-lock.json`` with ``npm ci`` when missing or stale. Without
node/npm the tests are skipped, except under CI (``CI`` set), where that is an error. The harness
is in ``tests/node.py``.
"""

from __future__ import annotations

import os

import pytest
from node import DEFAULT_SERVICES, MOCHA_TEST_TIMEOUT, describe_failures, run_mocha

# @feathersjs/adapter-tests@5.0.50: 78 named tests + '.id'; adapter.test.js adds 1 coverage test.
ADAPTER_TESTS_PER_SERVICE = 79


def _expected_adapter_passes() -> int:
    services = [s for s in os.environ.get("SERVICES", DEFAULT_SERVICES).split(",") if s.strip()]
    return 1 + ADAPTER_TESTS_PER_SERVICE * len(services)


def _check_adapter(data: dict) -> None:
    stats = data["stats"]
    summary = describe_failures(data, "adapter.test.js")
    assert stats["failures"] == 0, summary
    assert stats["pending"] == 0, (
        summary + "\npending: " + ", ".join(p.get("fullTitle", "") for p in data.get("pending", []))
    )
    assert stats["passes"] == _expected_adapter_passes(), summary


def _check_smoke(data: dict) -> None:
    stats = data["stats"]
    summary = describe_failures(data, "client-smoke.test.js")
    assert stats["failures"] == 0, summary
    assert stats["pending"] == 0, summary  # the real-time part runs too
    assert stats["passes"] >= 8, summary


@pytest.mark.timeout(MOCHA_TEST_TIMEOUT)
def test_adapter_suite_passes_over_rest_client(js_deps, app_server, tmp_path):
    data = run_mocha("adapter.test.js", app_server, tmp_path / "report.json", TRANSPORT="rest")
    _check_adapter(data)


@pytest.mark.timeout(MOCHA_TEST_TIMEOUT)
def test_adapter_suite_passes_over_socketio_client(js_deps, app_server, tmp_path):
    data = run_mocha("adapter.test.js", app_server, tmp_path / "report.json", TRANSPORT="socketio")
    _check_adapter(data)


@pytest.mark.timeout(MOCHA_TEST_TIMEOUT)
def test_official_clients_smoke_over_rest(js_deps, app_server, tmp_path):
    data = run_mocha("client-smoke.test.js", app_server, tmp_path / "report.json", TRANSPORT="rest")
    _check_smoke(data)


@pytest.mark.timeout(MOCHA_TEST_TIMEOUT)
def test_official_clients_smoke_over_socketio(js_deps, app_server, tmp_path):
    data = run_mocha(
        "client-smoke.test.js",
        app_server,
        tmp_path / "report.json",
        TRANSPORT="socketio",
        REALTIME="1",
    )
    _check_smoke(data)
