"""Run one process of the app: the embedded default for `kdk serve`.

With no MongoDB URL it starts SecantusDB as a child process (data in ``mongo.embedded_path``)
and stops it on exit, whatever ends the server.
"""

from __future__ import annotations

import logging
import signal
import socket
from typing import Any

from gevent.pywsgi import WSGIHandler, WSGIServer

from .app import create_app
from .http_strict import StrictRequestReading
from .serving import begin_stop, kdk_of, start_serving
from .turns import take_turns

logger = logging.getLogger(__name__)


class Handler(StrictRequestReading, WSGIHandler):
    """Reads requests as strictly as gunicorn (kdk_app/http_strict.py). Closes the connection
    after a websocket session instead of reading the next request from it: the client's close
    frame would be parsed as HTTP, and the client would wait seconds for a close reply
    (gunicorn's worker does the same by design). Yields to the hub between two requests of a
    connection, so one whose next request is always ready cannot starve the others (see
    kdk_app/gunicorn_worker.py)."""

    def handle_one_request(self) -> Any:
        result = super().handle_one_request()
        take_turns()
        return result

    def run_application(self) -> None:
        try:
            super().run_application()
        finally:
            if self.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
                self.close_connection = True


def listener(host: str, port: int) -> socket.socket:
    """A listening socket with TCP_NODELAY, which accepted sockets inherit: without it, small
    keep-alive responses wait ~40 ms for the peer's delayed ACK (as gunicorn also avoids)."""
    sock = socket.create_server((host, port), reuse_port=False, backlog=2048)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def run_server(config: dict[str, Any]) -> int:
    mongo = config.setdefault("mongo", {})
    embedded = None
    if not mongo.get("url"):
        from .embedded import start_secantusdb

        path = mongo.get("embedded_path") or "./var/db"
        logger.info("no MongoDB URL configured: starting an embedded SecantusDB in %s", path)
        embedded, mongo["url"] = start_secantusdb(path)
    try:
        flask_app = create_app(config)
        start_serving(flask_app)
        host, port = config.get("host", "0.0.0.0"), int(config.get("port", 8081))
        server = WSGIServer(
            listener(host, port), flask_app, handler_class=Handler, log=None, error_log=logger
        )

        def stop(*_: Any) -> None:
            logger.info("stopping")
            begin_stop(flask_app)  # websockets closed now end during the drain below
            server.stop(timeout=5)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        logger.info("kdk-app listening on http://%s:%s", host, port)
        server.serve_forever()
        kdk_of(flask_app).teardown()
    finally:
        if embedded is not None:
            embedded.stop()
    return 0
