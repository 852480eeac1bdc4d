"""Request ids: each HTTP request and each socket call is served under an id of its own.

An HTTP request keeps the ``X-Request-Id`` it came with when that is a sane token (what a proxy
or a client generated), else gets a new one; the response returns it in ``X-Request-Id``. Each
socket call gets a new id (the Feathers protocol has no place for one). While it is served,
:data:`kdk_app.logs.REQUEST_ID` holds it, so every log line written meanwhile carries it.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from flask import Flask

from .core import Application
from .logs import REQUEST_ID

HEADER = "X-Request-Id"
ENVIRON_KEY = "kdk.request_id"
# Ids of proxies and tracers (UUIDs, ULIDs, base64) fit; spaces, quotes and control characters,
# which could forge or break a log line, do not, nor do ids long enough to bloat every line.
SANE_ID = re.compile(r"[A-Za-z0-9._:=+/-]{1,128}")

F = TypeVar("F", bound=Callable[..., Any])


class RequestIds:
    """New request ids: a random prefix of this generator, then a counter. Unique across
    processes and hosts without reading the system's randomness at each request (``uuid4``
    costs about 25 µs a call on some virtual machines); an id need not be unguessable."""

    def __init__(self) -> None:
        self.prefix = os.urandom(6).hex()
        self.counter = itertools.count(1)  # next() on it is atomic under the GIL

    def new(self) -> str:
        return f"{self.prefix}-{next(self.counter):x}"

    def accepted(self, value: str | None) -> str:
        """``value`` when it is a sane request id, else a new one."""
        if value and SANE_ID.fullmatch(value):
            return value
        return self.new()


class RequestIdMiddleware:
    """WSGI middleware: sets the request's id for its duration and returns it in the response.

    The id is not reset when the response ends: wrapping the response iterable would hide
    ``wsgi.file_wrapper`` (sendfile) from the server, and each request on a connection sets its
    own before any line of it is written; the connection's greenlet ends with the connection.
    """

    def __init__(self, wsgi_app: Callable[..., Any]) -> None:
        self.wsgi_app = wsgi_app
        self.ids = RequestIds()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request_id = self.ids.accepted(environ.get("HTTP_X_REQUEST_ID"))
        environ[ENVIRON_KEY] = request_id
        environ["HTTP_X_REQUEST_ID"] = request_id  # what the app and the gateway's upstreams see
        REQUEST_ID.set(request_id)

        def start_with_id(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # A proxied upstream's own X-Request-Id gives way to ours: one id per response.
            headers = [(name, value) for name, value in headers if name.lower() != "x-request-id"]
            headers.append((HEADER, request_id))
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start_with_id)


def with_request_id(handler: F) -> F:
    """``handler`` run under a new request id on each call (a socket event, a socket call)."""
    ids = RequestIds()

    @functools.wraps(handler)
    def run(*args: Any, **kwargs: Any) -> Any:
        token = REQUEST_ID.set(ids.new())
        try:
            return handler(*args, **kwargs)
        finally:
            REQUEST_ID.reset(token)

    return run  # type: ignore[return-value]


def install_request_id(flask_app: Flask, kdk: Application, settings: Mapping[str, Any]) -> None:
    """The request-id part: wraps the whole app, so every layer's lines carry the id."""
    flask_app.wsgi_app = RequestIdMiddleware(flask_app.wsgi_app)  # type: ignore[method-assign]
