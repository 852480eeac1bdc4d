"""Running node, npm and mocha from the tests (used by conftest and the Node-based test modules).

* ``NODE`` / ``NPM``: the tools on PATH, or None.
* ``skip_or_fail``: skip locally, fail under CI (``CI`` set), where a missing tool is an error.
* ``run``: a subprocess that fails the test with the tails of its output on timeout or error.
* ``npm_ci``: ``npm ci`` in a folder of ``tests/`` when its node_modules is missing or stale.
* ``run_mocha`` / ``describe_failures``: one mocha file of ``tests/js`` against a server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
JS_DIR = TESTS_DIR / "js"
BROWSER_DIR = TESTS_DIR / "browser"
MOCHA = Path("node_modules") / "mocha" / "bin" / "mocha.js"  # relative to JS_DIR
NPM_TIMEOUT = 600
MOCHA_TIMEOUT = 420
# pytest-timeout (setup.cfg: 300 s) also counts the npm ci in the fixture setup.
MOCHA_TEST_TIMEOUT = NPM_TIMEOUT + MOCHA_TIMEOUT + 60
DEFAULT_SERVICES = "people:_id,people-customid:customid"

NODE = shutil.which("node")
NPM = shutil.which("npm")


def tail(text: str | bytes | None, limit: int = 4000) -> str:
    """The last ``limit`` characters of a process output (``TimeoutExpired`` gives bytes or None)."""
    text = text.decode(errors="replace") if isinstance(text, bytes) else (text or "")
    return text if len(text) <= limit else "...\n" + text[-limit:]


def _outputs(stdout: str | bytes | None, stderr: str | bytes | None) -> str:
    return f"stdout:\n{tail(stdout)}\nstderr:\n{tail(stderr)}"


def skip_or_fail(reason: str) -> None:
    """Skip locally; under CI a missing tool means the suite did not run what it claims."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def run(
    command: list[str], cwd: Path, timeout: float, *, check: bool = True, what: str | None = None, **kwargs
) -> subprocess.CompletedProcess[str]:
    """Run ``command``; fail the test if it outlives ``timeout`` or, with ``check``, exits non-zero.

    ``what`` names the command in the failure message (default: the command line).
    """
    what = what or " ".join(command)
    try:
        proc = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{what} did not finish within {timeout}s\n{_outputs(exc.stdout, exc.stderr)}")
    if check and proc.returncode != 0:
        pytest.fail(f"{what} failed (exit {proc.returncode})\n{_outputs(proc.stdout, proc.stderr)}")
    return proc


def npm_ci(
    folder: Path, timeout: float, *, needs: Iterable[Path | str] = (), args: Iterable[str] = ()
) -> Path:
    """``npm ci`` in ``folder`` when node_modules is stale; returns ``folder``.

    Stale: ``node_modules/.package-lock.json`` (npm rewrites it on every install) is missing or
    older than ``package-lock.json``, or one of ``needs`` (paths relative to ``folder``) is missing.
    """
    lock = folder / "package-lock.json"
    marker = folder / "node_modules" / ".package-lock.json"
    stale = (
        not marker.exists()
        or any(not (folder / path).exists() for path in needs)
        or marker.stat().st_mtime < lock.stat().st_mtime
    )
    if stale:
        run([NPM, "ci", *args, "--no-audit", "--no-fund"], folder, timeout, what=f"npm ci in {folder}")
    return folder


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
    """Run one mocha file of tests/js with the JSON reporter and return the parsed report."""
    env = _server_env(server)
    env.update(extra_env)
    cmd = [NODE, str(MOCHA), "--reporter", "json", "--reporter-option", f"output={report}", spec]
    settings = " ".join(f"{k}={env[k]}" for k in ("SERVER_URL", "API_PATH", *extra_env) if k in env)
    proc = run(cmd, JS_DIR, MOCHA_TIMEOUT, check=False, what=f"mocha {spec} ({settings})", env=env)
    if not report.exists():
        pytest.fail(
            f"mocha {spec} ({settings}) wrote no report (exit {proc.returncode})\n"
            f"{_outputs(proc.stdout, proc.stderr)}"
        )
    data = json.loads(report.read_text())
    data["_proc"] = proc
    data["_settings"] = settings
    return data


_NOISE = re.compile(r"^.*? against \S+ | Adapter tests for '[^']*' service with '[^']*' id property ")


def _short_title(title: str) -> str:
    return re.sub(r"\s+", " ", _NOISE.sub(" ", title or "")).strip()


def describe_failures(data: dict, spec: str, limit: int = 80) -> str:
    """A summary of a ``run_mocha`` report: counts, the first ``limit`` failures, stderr."""
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
        lines.append("stderr:\n" + tail(proc.stderr, 2000))
    return "\n".join(lines)
