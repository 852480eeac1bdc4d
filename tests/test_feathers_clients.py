"""Unchanged official FeathersJS 5 clients against the Python server.

Runs the mocha suites in ``tests/js`` as subprocesses against the session's ``app_server``:

* ``adapter.test.js``: ``@feathersjs/adapter-tests@5.0.50`` (every test enabled) through
  ``@feathersjs/rest-client`` and through ``@feathersjs/socketio-client`` (PROTOCOL.md §8).
* ``client-smoke.test.js``: CRUD, pagination and error classes on ``messages``.

Needs ``node`` (>= 20.19) and ``npm`` on PATH; the npm dependencies are installed from
``tests/js/package-lock.json`` with ``npm ci`` when missing or stale. Without node/npm the
module is skipped, except under CI (``CI`` set), where that is an error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"
MOCHA = Path("node_modules") / "mocha" / "bin" / "mocha.js"
NPM_CI_TIMEOUT = 600
MOCHA_TIMEOUT = 420
# pytest-timeout (setup.cfg: 300 s) also counts the npm ci in the fixture setup.
TEST_TIMEOUT = NPM_CI_TIMEOUT + MOCHA_TIMEOUT + 60
# @feathersjs/adapter-tests@5.0.50: 78 named tests + '.id'; adapter.test.js adds 1 coverage test.
ADAPTER_TESTS_PER_SERVICE = 79
DEFAULT_SERVICES = "people:_id,people-customid:customid"

NODE = shutil.which("node")
NPM = shutil.which("npm")

if NODE is None or NPM is None:
    _why = "node and npm must be on PATH to run the official Feathers JS client tests (tests/js)"
    if os.environ.get("CI"):
        raise RuntimeError(_why)
    pytest.skip(_why, allow_module_level=True)


def _tail(text: str, limit: int = 4000) -> str:
    text = text or ""
    return text if len(text) <= limit else "...\n" + text[-limit:]


@pytest.fixture(scope="session")
def js_deps() -> Path:
    """``npm ci`` in tests/js when node_modules is missing or older than package-lock.json."""
    lock = JS_DIR / "package-lock.json"
    # npm writes node_modules/.package-lock.json on every install/ci
    marker = JS_DIR / "node_modules" / ".package-lock.json"
    stale = (
        not marker.exists() or not (JS_DIR / MOCHA).exists() or marker.stat().st_mtime < lock.stat().st_mtime
    )
    if stale:
        try:
            proc = subprocess.run(
                [NPM, "ci", "--no-audit", "--no-fund"],
                check=False,
                cwd=JS_DIR,
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"npm ci in {JS_DIR} timed out after {NPM_CI_TIMEOUT}s\n{_tail(str(exc.stdout))}")
        if proc.returncode != 0:
            pytest.fail(
                f"npm ci in {JS_DIR} failed (exit {proc.returncode})\n"
                f"stdout:\n{_tail(proc.stdout)}\nstderr:\n{_tail(proc.stderr)}"
            )
    return JS_DIR


def _server_env(server) -> dict[str, str]:
    env = dict(os.environ)
    env["SERVER_URL"] = str(server.url).rstrip("/")
    api_path = getattr(server, "api_path", None)
    if api_path:
        env["API_PATH"] = str(api_path)
    env.setdefault("SERVICES", DEFAULT_SERVICES)  # MongoDB services: people keys on _id
    env.setdefault("NODE_ENV", "test")
    env["FORCE_COLOR"] = "0"
    return env


def run_mocha(spec: str, server, report: Path, **extra_env: str) -> dict:
    """Run one mocha file with the JSON reporter and return the parsed report."""
    env = _server_env(server)
    env.update(extra_env)
    cmd = [
        NODE,
        str(MOCHA),
        "--reporter",
        "json",
        "--reporter-option",
        f"output={report}",
        spec,
    ]
    settings = " ".join(f"{k}={env[k]}" for k in ("SERVER_URL", "API_PATH", *extra_env) if k in env)
    try:
        proc = subprocess.run(
            cmd,
            check=False,
            cwd=JS_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=MOCHA_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"mocha {spec} ({settings}) did not finish within {MOCHA_TIMEOUT}s\n"
            f"stdout:\n{_tail(str(exc.stdout or ''))}\nstderr:\n{_tail(str(exc.stderr or ''))}"
        )
    if not report.exists():
        pytest.fail(
            f"mocha {spec} ({settings}) wrote no report (exit {proc.returncode})\n"
            f"stdout:\n{_tail(proc.stdout)}\nstderr:\n{_tail(proc.stderr)}"
        )
    data = json.loads(report.read_text())
    data["_proc"] = proc
    data["_settings"] = settings
    return data


_NOISE = re.compile(r"^.*? against \S+ | Adapter tests for '[^']*' service with '[^']*' id property ")


def _short_title(title: str) -> str:
    return re.sub(r"\s+", " ", _NOISE.sub(" ", title or "")).strip()


def _describe_failures(data: dict, spec: str, limit: int = 80) -> str:
    stats = data["stats"]
    lines = [
        (
            f"mocha {spec} ({data['_settings']}): {stats.get('passes', 0)} passed, "
            f"{stats.get('failures', 0)} failed, {stats.get('pending', 0)} pending"
        )
    ]
    for failure in data.get("failures", [])[:limit]:
        err = failure.get("err") or {}
        message = (err.get("message") or err.get("stack") or "").strip()
        if len(message) > 600:
            message = message[:600] + " ..."
        lines.append(
            f"- {_short_title(failure.get('fullTitle'))}\n    {message.replace(chr(10), chr(10) + '    ')}"
        )
    extra = len(data.get("failures", [])) - limit
    if extra > 0:
        lines.append(f"... and {extra} more failures")
    proc = data["_proc"]
    if proc.stderr.strip():
        lines.append("stderr:\n" + _tail(proc.stderr, 2000))
    return "\n".join(lines)


def _expected_adapter_passes() -> int:
    services = [s for s in os.environ.get("SERVICES", DEFAULT_SERVICES).split(",") if s.strip()]
    return 1 + ADAPTER_TESTS_PER_SERVICE * len(services)


def _check_adapter(data: dict) -> None:
    stats = data["stats"]
    summary = _describe_failures(data, "adapter.test.js")
    assert stats["failures"] == 0, summary
    assert stats["pending"] == 0, (
        summary + "\npending: " + ", ".join(p.get("fullTitle", "") for p in data.get("pending", []))
    )
    assert stats["passes"] == _expected_adapter_passes(), summary


def _check_smoke(data: dict) -> None:
    stats = data["stats"]
    summary = _describe_failures(data, "client-smoke.test.js")
    assert stats["failures"] == 0, summary
    assert stats["passes"] >= 8, summary


@pytest.mark.timeout(TEST_TIMEOUT)
def test_adapter_suite_passes_over_rest_client(js_deps, app_server, tmp_path):
    data = run_mocha("adapter.test.js", app_server, tmp_path / "report.json", TRANSPORT="rest")
    _check_adapter(data)


@pytest.mark.timeout(TEST_TIMEOUT)
def test_adapter_suite_passes_over_socketio_client(js_deps, app_server, tmp_path):
    data = run_mocha("adapter.test.js", app_server, tmp_path / "report.json", TRANSPORT="socketio")
    _check_adapter(data)


@pytest.mark.timeout(TEST_TIMEOUT)
def test_official_clients_smoke_over_rest(js_deps, app_server, tmp_path):
    data = run_mocha("client-smoke.test.js", app_server, tmp_path / "report.json", TRANSPORT="rest")
    _check_smoke(data)


@pytest.mark.timeout(TEST_TIMEOUT)
def test_official_clients_smoke_over_socketio(js_deps, app_server, tmp_path):
    data = run_mocha(
        "client-smoke.test.js",
        app_server,
        tmp_path / "report.json",
        TRANSPORT="socketio",
    )
    _check_smoke(data)
