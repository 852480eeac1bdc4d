"""Starting the app under test and its Redis servers as child processes (used by conftest)."""

from __future__ import annotations

import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kdk_app.embedded import ManagedProcess, free_port, start_redis

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
HEALTHCHECK_PATH = "/healthcheck"
# gunicorn with several gevent workers needs a few seconds to import and fork.
APP_START_TIMEOUT = 60.0
# Variables the outer shell may have set that would leak a real service into the tests.
ISOLATED_VARIABLES = ("REDIS_URL",)


def gunicorn_workers(master_pid: int) -> set[int]:
    """The PIDs of a gunicorn master's workers (its children, read from /proc)."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return {int(pid) for pid in children}


def http_answers(url: str, timeout: float = 1.0) -> bool:
    """True when ``url`` returns any HTTP response at all, whatever the status code."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


class RunningServer:
    """One started app process and how to reach it."""

    def __init__(self, process: ManagedProcess, port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the app (and any workers); returns its exit code."""
        return self.process.stop(timeout)

    def log_text(self) -> str:
        """Everything the app printed, for debugging a failing test."""
        return self.process.log_text()

    def __repr__(self) -> str:
        return f"<RunningServer {self.url} {self.process!r}>"


def app_command(port: int, workers: int) -> list[str]:
    """The command line for one app server: ``kdk serve``, or gunicorn with ``workers``."""
    if workers > 0:
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "gunicorn.conf.py",
            "-w",
            str(workers),
            "wsgi:app",
        ]
    return [
        sys.executable,
        "-m",
        "kdk_app",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def app_environment(mongo_url: str, port: int, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ours, in test mode, on the test database, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in ISOLATED_VARIABLES}
    base.update(
        KDK_ENV="test",
        MONGO_URL=mongo_url,
        PORT=str(port),
        # Flush log lines at once, so log_text() shows what happened just before a failure.
        PYTHONUNBUFFERED="1",
    )
    base.update(env or {})
    return base


def start_app_server(
    mongo_url: str,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    workers: int = 0,
    port: int | None = None,
    timeout: float = APP_START_TIMEOUT,
    ready_check: Callable[[], bool] | None = None,
) -> RunningServer:
    """Start the app and wait until ``GET /healthcheck`` answers (any status counts as up), or
    until ``ready_check`` says so (a server that is not plain HTTP)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}{HEALTHCHECK_PATH}"
    process = ManagedProcess(
        app_command(port, workers),
        name=f"kdk-app:{port}",
        log_path=log_dir / f"app-{port}.log",
        env=app_environment(mongo_url, port, env),
        cwd=REPO_ROOT,
        ready_check=ready_check or (lambda: http_answers(url)),
        start_timeout=timeout,
    )
    process.start()
    return RunningServer(process, port)


class AppServerFactory:
    """Starts app servers on demand and stops all of them in ``stop_all()``."""

    def __init__(self, mongo_url: str, log_dir: Path) -> None:
        self.mongo_url = mongo_url
        self.log_dir = log_dir
        self.servers: list[RunningServer] = []

    def __call__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        workers: int = 0,
        port: int | None = None,
        ready_check: Callable[[], bool] | None = None,
    ) -> RunningServer:
        server = start_app_server(
            self.mongo_url, self.log_dir, env, workers=workers, port=port, ready_check=ready_check
        )
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        stop_all_at_once([server.stop for server in self.servers])
        self.servers.clear()


class RedisServerFactory:
    """Starts private Redis servers (restartable on their port) and stops them all at the end."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir
        self.processes: list[ManagedProcess] = []

    def __call__(self, port: int | None = None) -> tuple[ManagedProcess, str]:
        port = port or free_port()
        log_path = self.log_dir / f"redis-{port}.log" if self.log_dir else None
        process, url = start_redis(port, log_path=log_path)
        self.processes.append(process)
        return process, url

    def stop_all(self) -> None:
        stop_all_at_once([process.stop for process in self.processes])
        self.processes.clear()


def stop_all_at_once(stops: Sequence[Callable[[], object]]) -> None:
    """Run every stop in its own thread and wait for all: each waits for its process to drain,
    so stopping them one after the other would add their drains up at every teardown."""
    if not stops:
        return
    with ThreadPoolExecutor(max_workers=len(stops)) as pool:
        for done in [pool.submit(stop_quietly, stop) for stop in stops]:
            done.result()


def stop_quietly(stop: Callable[[], object]) -> None:
    """Run a teardown step, logging instead of raising so the other steps still run."""
    try:
        stop()
    except Exception:
        logger.exception("teardown step failed")
