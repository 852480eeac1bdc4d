"""Strict HTTP/1.x request reading for ``kdk serve`` (gevent pywsgi), as gunicorn's parser reads.

gevent's pywsgi takes what gunicorn refuses: header lines folded or without a colon, a space
before the colon (a request-smuggling vector behind a proxy that reads it otherwise), NUL bytes,
bare LF line ends, HTTP/0.9, 60 KB header lines, and a client that never finishes its headers
(it held a greenlet and a socket forever). This mixin refuses them with a 4xx in the Feathers
shape before the app sees the request, with gunicorn's limits: 100 header fields of at most
8,190 bytes each, and the headers read within the keep-alive timeout.
"""

from __future__ import annotations

import io
import json
import logging
import re
from http import HTTPStatus
from typing import Any

from .core import errors

logger = logging.getLogger(__name__)

# gunicorn's defaults (limit_request_fields, limit_request_field_size) and gunicorn.conf.py's
# keepalive, so both servers refuse and wait alike.
MAX_HEADER_FIELDS = 100
MAX_HEADER_FIELD_BYTES = 8190
HEADER_TIMEOUT_S = 5.0

TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
REQUEST_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [\x21-\x7e\x80-\xff]+ HTTP/1\.[01]\r\n")
# Field values: visible characters, spaces and tabs (RFC 9110 field-content, obs-text allowed).
FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")


def error_response(error: errors.FeathersError) -> tuple[str, bytes]:
    """pywsgi's (status, complete answer) for a refused request: the connection closes after."""
    body = json.dumps(error.to_json()).encode()
    head = (
        f"HTTP/1.1 {error.code} {HTTPStatus(error.code).phrase}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return str(error.code), head.encode("latin-1") + body


def check_request_line(raw: bytes) -> None:
    if not REQUEST_LINE.fullmatch(raw):
        raise errors.BadRequest("Invalid request line: METHOD TARGET HTTP/1.x and CRLF expected")


def read_header_lines(rfile: Any) -> list[bytes]:
    """The header lines up to the empty line (CRLF kept), each checked; raises a FeathersError."""
    lines: list[bytes] = []
    while True:
        line = rfile.readline(MAX_HEADER_FIELD_BYTES + 3)
        if line == b"\r\n":
            return lines
        if not line.endswith(b"\r\n"):
            if len(line) > MAX_HEADER_FIELD_BYTES:
                raise errors.RequestHeaderFieldsTooLarge("A header field is longer than 8190 bytes")
            raise errors.BadRequest("Header lines must end with CRLF")
        if len(lines) == MAX_HEADER_FIELDS:
            raise errors.RequestHeaderFieldsTooLarge(f"More than {MAX_HEADER_FIELDS} header fields")
        check_header_line(line[:-2])
        lines.append(line)


def check_header_line(line: bytes) -> None:
    if line[:1] in (b" ", b"\t"):
        raise errors.BadRequest("Folded header lines are not accepted")
    name, colon, value = line.partition(b":")
    if not colon or not TOKEN.fullmatch(name):
        raise errors.BadRequest("Invalid header field name")
    if not FIELD_VALUE.fullmatch(value):
        raise errors.BadRequest("Invalid character in a header field value")


def check_framing(lines: list[bytes]) -> None:
    """One way to find the body's end, so that a proxy in front and this server agree on it."""
    fields = [line.split(b":", 1) for line in lines]
    lengths = [value.strip() for name, value in fields if name.lower() == b"content-length"]
    encodings = [value for name, value in fields if name.lower() == b"transfer-encoding"]
    if len(lengths) > 1:
        raise errors.BadRequest("More than one Content-Length")
    if lengths and encodings:
        raise errors.BadRequest("Content-Length and Transfer-Encoding together")
    if encodings and [e.strip().lower() for e in b",".join(encodings).split(b",")] != [b"chunked"]:
        raise errors.BadRequest("Only Transfer-Encoding: chunked is accepted")
    if lengths and not lengths[0].isdigit():
        raise errors.BadRequest("Invalid Content-Length")


class StrictRequestReading:
    """Mixin for a ``gevent.pywsgi.WSGIHandler``: strict request line and headers, read in time."""

    socket: Any
    rfile: Any
    headers: Any
    client_address: Any

    def read_requestline(self) -> str:
        # Waiting for a request, or for the rest of one, is bounded; then the app runs unbounded
        # (long uploads, websockets), as under gunicorn. An idle connection that times out here
        # is closed without an answer (pywsgi's read error path), as gunicorn closes it.
        self.socket.settimeout(HEADER_TIMEOUT_S)
        line: str = super().read_requestline()  # type: ignore[misc]
        return line

    def read_request(self, raw_requestline: str) -> bool:
        # The line as read, CRLF included (pywsgi decoded it as latin-1, which round-trips).
        check_request_line(raw_requestline.encode("latin-1"))
        try:
            lines = read_header_lines(self.rfile)
        except TimeoutError:
            raise errors.Timeout("The request headers did not arrive in time") from None
        self.socket.settimeout(None)
        check_framing(lines)
        # pywsgi parses the checked copy.
        network, self.rfile = self.rfile, io.BytesIO(b"".join(lines) + b"\r\n")
        try:
            return bool(super().read_request(raw_requestline))  # type: ignore[misc]
        finally:
            self.rfile = network

    def handle(self) -> None:
        try:
            super().handle()  # type: ignore[misc]
        except (BrokenPipeError, ConnectionResetError) as exc:
            # The client left before its answer (pywsgi writes a refusal outside its own error
            # handling): not the server's fault, so no stack trace a client could flood the log with.
            logger.debug("client %s left before its answer: %s", self.client_address, exc)

    def _handle_client_error(self, ex: Exception) -> tuple[str, bytes]:
        # gevent's hook for a request it could not read: ours say why, in the Feathers shape.
        if isinstance(ex, errors.FeathersError):
            return error_response(ex)
        if isinstance(ex, ValueError | OSError):
            # pywsgi's own refusals: a bad version or length (ValueError), a broken chunked body
            # (an IOError). A client's mistake, logged as gunicorn does, not as a server error.
            logger.info("invalid request from %s: %s", self.client_address, ex)
            return error_response(errors.BadRequest("Invalid request"))
        return super()._handle_client_error(ex)  # type: ignore[misc]
