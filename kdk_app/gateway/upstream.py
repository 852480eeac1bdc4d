"""Forward one HTTP request upstream and stream both bodies through, never whole in memory.

The request body goes up in chunks as it arrives (with its Content-Length, or re-chunked when
the client sent it chunked); the response comes back as an iterator over the upstream
socket. Failures before the response starts become 504 (refused, timed out) or 502 (not a
valid HTTP response).
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Callable, Iterator
from typing import Any

from ..core import errors
from .errors import GatewayTimeout, error_response
from .headers import request_headers, response_headers
from .table import ProxyRule

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024


class UpstreamBody:
    """The response body as a WSGI iterable; closing it closes the upstream connection."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self.connection = connection
        self.response = response

    def __iter__(self) -> Iterator[bytes]:
        try:
            while True:
                chunk = self.response.read1(CHUNK)
                if not chunk:
                    return
                yield chunk
        except (OSError, http.client.HTTPException) as exc:
            # Headers are gone already: all we can do is cut the response short.
            logger.warning("gateway: upstream response broke off: %s", exc)

    def close(self) -> None:
        self.response.close()
        self.connection.close()


def _request_body(environ: dict[str, Any]) -> tuple[Iterator[bytes] | None, bool]:
    """The body's chunks, and whether they must be sent chunked (no Content-Length known)."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        remaining = int(length)

        def sized() -> Iterator[bytes]:
            nonlocal remaining
            while remaining > 0:
                chunk = stream.read(min(CHUNK, remaining))
                if not chunk:
                    raise errors.BadRequest("Request body ended early")
                remaining -= len(chunk)
                yield chunk

        return sized(), False
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():

        def chunked() -> Iterator[bytes]:
            while True:  # the server de-chunks wsgi.input; read it to the end
                chunk = stream.read(CHUNK)
                if not chunk:
                    return
                yield chunk

        return chunked(), True
    return None, False


def _connection(rule: ProxyRule) -> http.client.HTTPConnection:
    cls = http.client.HTTPSConnection if rule.scheme == "https" else http.client.HTTPConnection
    return cls(rule.host, rule.port, timeout=rule.timeout)


def forward(environ: dict[str, Any], start_response: Callable[..., Any], rule: ProxyRule, target: str) -> Any:
    """Proxy the request to ``target`` (path and query at the upstream) under ``rule``."""
    method = environ.get("REQUEST_METHOD", "GET")
    body, chunked = _request_body(environ)
    headers = request_headers(environ, rule)
    if chunked:
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Transfer-Encoding", "chunked"))
    connection = _connection(rule)
    try:
        try:
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                connection.putheader(name, value)
            connection.endheaders()
        except OSError as exc:  # refused, unreachable, unknown host, timed out
            raise GatewayTimeout(f"Upstream {rule.netloc} is unreachable: {exc}") from None
        sent_error = _send_body(connection, body, chunked)
        try:
            response = connection.getresponse()
        except TimeoutError:
            raise GatewayTimeout(f"Upstream {rule.netloc} did not answer within {rule.timeout:g}s") from None
        except (http.client.HTTPException, OSError) as exc:
            cause = sent_error if sent_error is not None else exc
            raise errors.BadGateway(f"Invalid response from upstream {rule.netloc}: {cause!r}") from None
    except errors.FeathersError as error:
        connection.close()
        logger.warning("gateway: %s %s: %s", method, target, error.message)
        return error_response(start_response, error)
    start_response(f"{response.status} {response.reason}", response_headers(response.getheaders()))
    if method == "HEAD":
        response.close()
        connection.close()
        return []
    return UpstreamBody(connection, response)


def _send_body(
    connection: http.client.HTTPConnection, body: Iterator[bytes] | None, chunked: bool
) -> BaseException | None:
    """Send the body; an upstream that stops reading may still have answered (e.g. 413)."""
    if body is None:
        return None
    try:
        for chunk in body:
            connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
        if chunked:
            connection.send(b"0\r\n\r\n")
    except TimeoutError:
        raise GatewayTimeout("Upstream stopped reading the request body") from None
    except OSError as exc:
        return exc
    return None
