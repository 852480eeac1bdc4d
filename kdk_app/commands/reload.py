"""``kdk serve --reload``: restart the server when a source or configuration file changes.

Two processes. The supervisor (``kdk serve --reload`` itself, not patched by gevent) starts the
embedded SecantusDB once when no MongoDB URL is configured, then runs ``kdk serve --reload``
again as its child, in a process group of its own, and runs it again each time it exits with 3.

The child serves as ``kdk serve`` does (gevent, ``run_server``). A watcher greenlet looks at the
files of the imported modules (those outside the Python installation and its site-packages,
so the project's and an editable kdk-app's) and at the config files once a second; on a change
it stops the server with the handler a SIGTERM runs (teardown, the registry record withdrawn),
and the child exits with 3. (werkzeug's reloader is private API in werkzeug 3, runs the server
in a thread, and its watchdog variant's observer threads would block gevent's hub.)
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..cli import RELOADER_CHILD
from .apps import EMBEDDED_DEFAULT_PATH, start_embedded_database

logger = logging.getLogger(__name__)

RESTART_CODE = 3  # the child asks to be started again (werkzeug's reloader uses 3 too)
STOP_TIMEOUT = 15.0  # s: the server's own stop (5 s) plus teardown
WATCH_INTERVAL = 1.0  # s between two looks at the files


def config_files() -> list[str]:
    """The config files: loaded with runpy, they are no modules the reloader would see."""
    from ..config import default_config_dir

    return [str(path) for path in sorted(Path(default_config_dir()).glob("*.py"))]


def serve_with_reloader(config: Callable[[], dict[str, Any]], child_args: list[str]) -> int:
    """Supervise a serving child (in the first process), or serve and watch (in the child)."""
    if os.environ.get(RELOADER_CHILD) == "true":
        return _serve_and_watch(config)
    return _supervise(config(), child_args)


def _die_with_parent() -> None:
    from ..embedded import _die_with_parent as die

    die()


def _supervise(config: dict[str, Any], child_args: list[str]) -> int:
    env = dict(os.environ, **{RELOADER_CHILD: "true"})
    mongo = config.get("mongo") or {}
    embedded = None
    if not mongo.get("url"):
        # Once for every restart: the child finds it through MONGO_URL.
        path = mongo.get("embedded_path") or EMBEDDED_DEFAULT_PATH
        embedded, env["MONGO_URL"] = start_embedded_database(path)
    stopping: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: Any) -> None:
        stopping.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            # Its own process group: a Ctrl-C reaches the supervisor only, which passes it on once.
            child = subprocess.Popen(
                [sys.executable, "-m", "kdk_app", *child_args],
                env=env,
                process_group=0,
                preexec_fn=_die_with_parent,
            )
            if stopping:
                child.send_signal(signal.SIGTERM)
            code = child.wait()
            if code != RESTART_CODE or stopping:
                return 0 if stopping and code in (0, -signal.SIGTERM) else code
            logger.info("restarting the server after a change")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if embedded is not None:
            embedded.stop()


def watched_files(extra: Iterable[str] = ()) -> set[str]:
    """Files of imported modules outside the installation and its site-packages, config files,
    and ``extra``."""
    ignored = tuple({sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix})
    files = {*config_files(), *extra}
    for module in list(sys.modules.values()):
        name = getattr(module, "__file__", None)
        if name and not name.startswith(ignored):
            files.add(name)
    return files


def watch(
    on_change: Callable[[str], None],
    extra: dict[str, float] | None = None,
    interval: float = WATCH_INTERVAL,
    since: float | None = None,
) -> None:
    """Call ``on_change(path)`` once, when the first watched file changes; ``interval`` between
    looks. A file changed after ``since`` (default: now) counts, even if the first look comes
    later (the first look waits for the app to be built); ``extra`` maps more files to the
    modification time they are compared with."""
    extra = {} if extra is None else extra
    since = time.time() if since is None else since
    mtimes: dict[str, float] = {}
    while True:
        for path in watched_files(extra):
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            if mtimes.setdefault(path, extra.get(path, min(mtime, since))) != mtime:
                on_change(path)
                return
        time.sleep(interval)  # gevent's sleep in the serving child


def failing_files(error: BaseException) -> dict[str, float]:
    """The files an error came from, with their modification time now: a module that failed to
    import is in no ``sys.modules``, and a fix saved at once must still count as a change."""
    files = {frame.f_code.co_filename for frame, _ in traceback.walk_tb(error.__traceback__)}
    if isinstance(error, SyntaxError) and error.filename:
        files.add(error.filename)
    return {path: os.stat(path).st_mtime for path in files if os.path.isfile(path)}


def _serve_and_watch(config: Callable[[], dict[str, Any]]) -> int:
    from ..server import run_server

    changed = threading.Event()
    default_handler = signal.getsignal(signal.SIGTERM)

    def on_change(path: str) -> None:
        logger.info("%s changed: restarting", path)
        changed.set()
        if signal.getsignal(signal.SIGTERM) is default_handler:
            os._exit(RESTART_CODE)  # no server yet (the app is being built): nothing to stop
        os.kill(os.getpid(), signal.SIGTERM)  # run_server's own stop, then exit 3 below

    extra: dict[str, float] = {}
    since = time.time()  # before the app's files are read
    watcher = threading.Thread(target=watch, args=(on_change, extra, WATCH_INTERVAL, since), daemon=True)
    watcher.start()
    try:
        code = run_server(config())
    except Exception as exc:
        # A broken file: the next change, of that file too, starts the server again.
        extra.update(failing_files(exc))
        logger.exception("the app could not start; waiting for a change to try again")
        changed.wait()
        return RESTART_CODE
    return RESTART_CODE if changed.is_set() else code
