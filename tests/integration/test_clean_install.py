"""A fresh install boots: the Procfile with no extras, and the README's quick start.

Each test builds its own venv (``python -m venv``, no system site-packages) from a copy of the
working tree, so nothing this test suite installs (pytest pulls in ``packaging``, for one) can
hide a missing runtime dependency. pip keeps its usual cache, so a warm run takes seconds.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import pytest
from node import run
from servers import REPO_ROOT

from kdk_app.embedded import ManagedProcess, free_port

PIP_TIMEOUT = 240
BOOT_TIMEOUT = 90.0
# What a fresh clone would not have: local venvs, npm folders, build output, runtime data.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "node_modules",
    "var",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
)
# Anything from the outer shell that would point the child at other code or other servers.
OUTER_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "MONGO_URL", "DB_URL", "REDIS_URL")


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The status code of ``GET url``, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


def clean_environment(venv: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """Ours minus anything that leaks code or servers in, with the venv's bin first on PATH."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in OUTER_VARIABLES and not key.startswith("KDK_")
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        PYTHONUNBUFFERED="1",
        HOST="127.0.0.1",
    )
    env.update(extra)
    return env


def fresh_clone(tmp_path: Path) -> Path:
    """The working tree as a clone would have it (so installs never write into the real one)."""
    source = tmp_path / "kdk-app"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_IN_A_CLONE)
    return source


def fresh_venv(tmp_path: Path, source: Path, *pip_args: str) -> Path:
    """A new venv with only ``pip install <pip_args>`` in it, run from ``source``."""
    venv = tmp_path / "venv"
    # The base interpreter, not this venv's: the new venv must not see our site-packages.
    base_python = getattr(sys, "_base_executable", sys.executable)
    run([base_python, "-m", "venv", str(venv)], cwd=tmp_path, timeout=60)
    env = clean_environment(venv, {"PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "--quiet", *pip_args], cwd=source, timeout=PIP_TIMEOUT, env=env)
    run([python, "-m", "pip", "check"], cwd=source, timeout=60, env=env)
    return venv


def procfile_command(source: Path) -> list[str]:
    """The ``web:`` line of the Procfile, as arguments."""
    for line in (source / "Procfile").read_text().splitlines():
        kind, _, command = line.partition(":")
        if kind.strip() == "web":
            return shlex.split(command)
    raise AssertionError("the Procfile has no web: line")


def boot(args: list[str], source: Path, venv: Path, env: Mapping[str, str], port: int) -> ManagedProcess:
    """Start ``args`` (resolved in the venv's bin) and wait until /healthcheck answers 200."""
    executable = venv / "bin" / args[0]
    assert executable.is_file(), f"{args[0]} is not installed in the clean venv"
    url = f"http://127.0.0.1:{port}/healthcheck"
    process = ManagedProcess(
        [str(executable), *args[1:]],
        name=f"clean-install:{port}",
        log_path=source / f"app-{port}.log",
        env=clean_environment(venv, {"PORT": str(port), **env}),
        cwd=source,
        ready_check=lambda: http_status(url) == 200,
        start_timeout=BOOT_TIMEOUT,
    )
    return process.start()


@pytest.mark.timeout(PIP_TIMEOUT + BOOT_TIMEOUT + 60)
def test_procfile_boots_from_a_clean_install_with_no_extras(mongo_url: str, tmp_path: Path) -> None:
    source = fresh_clone(tmp_path)
    venv = fresh_venv(tmp_path, source, ".")
    port = free_port()
    process = boot(procfile_command(source), source, venv, {"MONGO_URL": mongo_url}, port)
    try:
        assert http_status(f"http://127.0.0.1:{port}/messages") == 200
    finally:
        process.stop(10)


@pytest.mark.timeout(PIP_TIMEOUT + BOOT_TIMEOUT + 60)
def test_readme_quick_start_serves_with_its_embedded_database(tmp_path: Path) -> None:
    source = fresh_clone(tmp_path)
    readme = (source / "README.md").read_text()
    # The command this test replays; if the README changes it, change the test with it.
    assert "pip install -e '.[embedded]' && .venv/bin/kdk serve" in readme
    venv = fresh_venv(tmp_path, source, "-e", ".[embedded]")
    port = free_port()
    # No MONGO_URL: kdk serve starts SecantusDB itself, with its data in ./var/db.
    process = boot(["kdk", "serve"], source, venv, {}, port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/messages", timeout=5) as response:
            assert "data" in json.load(response)
        assert (source / "var" / "db").is_dir()
    finally:
        process.stop(10)
