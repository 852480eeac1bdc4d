"""Both servers refuse the same malformed HTTP: gunicorn by its own parser, ``kdk serve`` by
kdk_app/http_strict.py (before it, pywsgi answered 200 to most of these and held a client that
never finished its headers forever)."""

from __future__ import annotations

import json
import socket
import struct
import time

import pytest
from servers import AppServerFactory

from kdk_app.http_strict import HEADER_TIMEOUT_S

HOST = "Host: test\r\n"
JSON_POST = "POST /messages HTTP/1.1\r\n" + HOST + "Content-Type: application/json\r\n"

# case -> (raw request, the status both servers answer)
MALFORMED = {
    "content-length-and-chunked": (
        JSON_POST + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "two-content-lengths": (JSON_POST + "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400),
    "signed-content-length": (JSON_POST + "Content-Length: +2\r\n\r\n{}", 400),
    "negative-content-length": (JSON_POST + "Content-Length: -1\r\n\r\n", 400),
    "header-without-colon": ("GET /livez HTTP/1.1\r\n" + HOST + "Badheader\r\n\r\n", 400),
    "folded-header": ("GET /livez HTTP/1.1\r\n" + HOST + "X-A: a\r\n  folded\r\n\r\n", 400),
    "space-before-colon": ("GET /livez HTTP/1.1\r\n" + HOST + "Content-Length : 0\r\n\r\n", 400),
    "nul-in-header": ("GET /livez HTTP/1.1\r\n" + HOST + "X-A: a\x00b\r\n\r\n", 400),
    "bare-lf-line-ends": ("GET /livez HTTP/1.1\n" + HOST.replace("\r\n", "\n") + "\n", 400),
    "http-0.9": ("GET /livez\r\n\r\n", 400),
    "unknown-version": ("GET /livez HTTP/9.9\r\n" + HOST + "\r\n", 400),
    "200-header-fields": (
        "GET /livez HTTP/1.1\r\n" + HOST + "".join(f"X-H{i}: v\r\n" for i in range(200)) + "\r\n",
        431,
    ),
    "9-kb-header-field": ("GET /livez HTTP/1.1\r\n" + HOST + "X-Big: " + "a" * 9000 + "\r\n\r\n", 431),
    "9-kb-request-line": ("GET /livez?" + "a" * 9000 + " HTTP/1.1\r\n" + HOST + "\r\n", 414),
    "broken-chunk-size": (JSON_POST + 'Transfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\nZZ\r\n', 400),
    "bad-chunk-trailer": (
        JSON_POST + "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nbad trailer\r\n\r\n",
        400,
    ),
}


@pytest.fixture(scope="module", params=["gunicorn", "kdk-serve"])
def server(request, mongo_url, tmp_path_factory):
    factory = AppServerFactory(mongo_url, tmp_path_factory.mktemp("framing"))
    try:
        yield factory(workers=1 if request.param == "gunicorn" else 0)
    finally:
        factory.stop_all()


@pytest.fixture
def port(server):
    return server.port


def exchange(port: int, raw: str) -> bytes:
    """Send ``raw`` and read until the server closes or has sent a whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw.encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            head, separator, body = data.partition(b"\r\n\r\n")
            length = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
            if separator and length and len(body) >= int(length[0].split(b":")[1]):
                break
        return data


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_http_is_refused_with_the_same_status_by_both_servers(port, case):
    raw, status = MALFORMED[case]
    assert status_of(exchange(port, raw)) == status


def test_a_well_formed_request_still_passes(port):
    assert status_of(exchange(port, "GET /livez HTTP/1.1\r\n" + HOST + "Connection: close\r\n\r\n")) == 200


def test_kdk_serve_says_why_in_the_feathers_shape(app_server):
    answer = exchange(app_server.port, MALFORMED["space-before-colon"][0])
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert body == {
        "name": "BadRequest",
        "message": "Invalid header field name",
        "code": 400,
        "className": "bad-request",
    }


def test_a_client_that_never_finishes_its_headers_is_cut_off(port):
    with socket.create_connection(("127.0.0.1", port), timeout=HEADER_TIMEOUT_S * 3) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\n" + HOST.encode())
        started = time.monotonic()
        answer = sock.recv(65536)  # gunicorn closes without a word, kdk serve says 408
        waited = time.monotonic() - started
    assert answer == b"" or status_of(answer) == 408
    assert waited < HEADER_TIMEOUT_S + 3


def reset_after_sending(port: int, raw: bytes, *, read_first: bool) -> None:
    """Send ``raw``, read the start of an answer or not, and close with a reset (SO_LINGER 0)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.sendall(raw)
    if read_first:
        sock.recv(1)
    sock.close()


def test_clients_that_leave_before_their_answer_leave_no_stack_trace_in_the_log(server):
    for case in ("header-without-colon", "broken-chunk-size", "http-0.9", "bare-lf-line-ends"):
        for attempt in range(10):
            reset_after_sending(
                server.port, MALFORMED[case][0].encode("latin-1"), read_first=attempt % 2 == 1
            )
    # Still serving, and the log has a line per client at most, never a trace.
    assert (
        status_of(exchange(server.port, "GET /livez HTTP/1.1\r\n" + HOST + "Connection: close\r\n\r\n"))
        == 200
    )
    log = server.log_text()
    assert "Traceback" not in log and "BrokenPipeError" not in log and "ConnectionResetError" not in log
