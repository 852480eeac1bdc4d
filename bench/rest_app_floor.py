"""The floor of the HTTP stack: a bare WSGI callable answering one fixed, small JSON body.

Served two ways by bench/rest.py, under the same wrk load as the apps:

- ``gunicorn -c gunicorn.conf.py -w 2 -k gevent bench.rest_app_floor:app`` (the apps' layout);
- ``python -m bench.rest_app_floor --port P`` twice: gevent.pywsgi alone, each process on its
  own ``SO_REUSEPORT`` socket bound to the same port, so the kernel shares the connections
  between the two as it does between gunicorn's workers.

No routing, no JSON encoding, no framework: what is left is what any app on this stack pays.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Callable, Iterable
from typing import Any

logger = logging.getLogger(__name__)

BODY = b'{"_id":"000000000000000000000008","text":"seed 7","n":7,"tag":"t7"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Every request: 200 and the same body."""
    start_response("200 OK", HEADERS)
    return [BODY]


def reuse_port_listener(host: str, port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((host, port))
    listener.listen(2048)
    return listener


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="gevent.pywsgi serving the floor callable")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    # Only here: gunicorn's worker imports this module too, and patches for itself.
    from gevent import monkey

    monkey.patch_all()
    from gevent.pywsgi import WSGIServer

    class NoDelayServer(WSGIServer):
        """pywsgi sends headers and body in two writes: without TCP_NODELAY (which gunicorn
        sets) each small answer waits for the client's delayed ACK, about 40 ms."""

        def handle(self, sock: Any, address: Any) -> None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().handle(sock, address)

    server = NoDelayServer(reuse_port_listener(args.host, args.port), app, log=None)
    logger.info("floor on gevent.pywsgi at http://%s:%d", args.host, args.port)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
