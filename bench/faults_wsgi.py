"""Bench-only WSGI entry: the app of ``wsgi.py`` plus a server-side listener the fault bench reads.

``bench/faults.py`` serves instance B with this module. Each worker's listener on
``messages created`` appends one line per synced event (``<n> <wall time>``) to
``$KDK_BENCH_LISTENER_DIR/<worker pid>.log``. A file, not an HTTP route: the workers of one
instance share their port, so a route would answer for whichever worker accepted the request,
and a file keeps working whatever happens to Redis and MongoDB. Everything else is the real app.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import IO, Any  # noqa: E402

from kdk_app.app import create_app  # noqa: E402
from kdk_app.config import load_config  # noqa: E402

LISTENER_DIR_VARIABLE = "KDK_BENCH_LISTENER_DIR"


def record_synced_creates(app: Any) -> None:
    """Listen to ``messages created`` and log every event that came from another process."""
    directory = os.environ.get(LISTENER_DIR_VARIABLE)
    if not directory or "messages" not in app.services:
        return
    state: dict[str, IO[str]] = {}

    def record(data: dict[str, Any], context: Any) -> None:
        if not getattr(context, "remote", False):  # only what the sync bus brought
            return
        log = state.get("log")
        if log is None:  # opened in the worker (create_app may run before the fork)
            log = state["log"] = open(Path(directory) / f"{os.getpid()}.log", "a", buffering=1)  # noqa: SIM115
        log.write(f"{data.get('tag')} {data.get('n')} {time.time():.6f}\n")

    app.service("messages").on("created", record)


_config = load_config()
_config["configure"] = [*(_config.get("configure") or ()), record_synced_creates]
app = create_app(_config)
