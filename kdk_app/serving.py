"""Starting a built app in a process that serves it.

``create_app`` builds everything and starts nothing, so a CLI command, a shell or an import
never joins the distribution's registry or reads the sync stream. A serving process starts the
background work with :func:`start_serving`: gunicorn's ``post_worker_init`` hook and ``kdk serve``
call it; under any other WSGI server the first request does (see :func:`start_on_first_request`).
When such a process stops, :func:`begin_stop` tells the app before the drain.
"""

from __future__ import annotations

import gc
import logging

from flask import Flask

from .core import Application

logger = logging.getLogger(__name__)


def kdk_of(flask_app: Flask) -> Application:
    kdk = flask_app.extensions.get("kdk")
    if not isinstance(kdk, Application):
        raise RuntimeError("not a kdk-app Flask app (no extensions['kdk'])")
    return kdk


def start_serving(flask_app: Flask) -> None:
    """Start the background work of ``flask_app`` (once; later calls do nothing)."""
    kdk = kdk_of(flask_app)
    if not kdk.started:
        logger.debug("starting background work")
        kdk.start()
        freeze_startup_heap()


def freeze_startup_heap() -> None:
    """Keep what building the app made (modules, routes, schemas: ~80,000 objects) out of the
    garbage collector's sight. A full collection scans every tracked object and took 80 ms on
    that heap, one request's worth of stall each time it ran under load; frozen, it scans only
    what requests made. Frozen objects are never freed, which the app's own never are anyway."""
    gc.collect()
    gc.freeze()


def begin_stop(flask_app: Flask) -> None:
    """Tell the app's parts that this process has stopped accepting and is draining (the app
    event ``stopping``): Socket.IO closes its connections, whose clients then reconnect to a
    process that serves, instead of holding the drain until the graceful timeout."""
    kdk = kdk_of(flask_app)
    logger.debug("stopping: closing long-lived connections")
    kdk.emit("stopping", kdk)


def start_on_first_request(flask_app: Flask) -> None:
    """Start serving at the first request, for WSGI servers that call no hook of ours."""
    kdk = kdk_of(flask_app)

    @flask_app.before_request
    def _start_once() -> None:
        if not kdk.started:
            kdk.start()
