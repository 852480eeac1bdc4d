"""gunicorn responses go out in one write (kdk_app/gunicorn_response.py) and stay byte for
byte what gunicorn's own response sends."""

from __future__ import annotations

import re
import socket

from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.parser import RequestParser

from kdk_app.gunicorn_response import CoalescingResponse

# Headers that differ between two answers to the same request.
VARYING = re.compile(rb"^(Date|X-Request-Id|ETag|Last-Modified): .*\r\n", re.IGNORECASE | re.MULTILINE)


class RecordingSocket:
    """Records each sendall (a fake for the unit tests; the real servers are below)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))


def respond(response_class, request: bytes, status: str, headers, body: list[bytes]) -> list[bytes]:
    cfg = Config()
    req = next(RequestParser(cfg, [request], ("127.0.0.1", 1)))
    sock = RecordingSocket()
    resp = response_class(req, sock, cfg)
    resp.start_response(status, headers)
    for chunk in body:
        resp.write(chunk)
    resp.close()
    return [VARYING.sub(b"", write) for write in sock.writes]


GET = b"GET /messages HTTP/1.1\r\nHost: test\r\n\r\n"
HEAD = b"HEAD /messages HTTP/1.1\r\nHost: test\r\n\r\n"
JSON = [("Content-Type", "application/json"), ("Content-Length", "11")]


def test_a_json_answer_is_one_write_with_the_same_bytes():
    ours = respond(CoalescingResponse, GET, "200 OK", JSON, [b'{"a": true}'])
    theirs = respond(wsgi.Response, GET, "200 OK", JSON, [b'{"a": true}'])
    assert len(ours) == 1 and len(theirs) == 2
    assert ours == [b"".join(theirs)]


def test_a_chunked_answer_sends_its_head_with_the_first_chunk_and_ends_the_same():
    body = [b"first", b"second"]
    ours = respond(CoalescingResponse, GET, "200 OK", [("Content-Type", "text/plain")], body)
    theirs = respond(wsgi.Response, GET, "200 OK", [("Content-Type", "text/plain")], body)
    assert len(ours) == 3
    assert b"".join(ours) == b"".join(theirs)
    assert ours[-1] == b"0\r\n\r\n"


def test_answers_without_a_body_send_their_head_at_the_end():
    for request, status, headers in ((HEAD, "200 OK", JSON), (GET, "204 No Content", [])):
        ours = respond(
            CoalescingResponse, request, status, headers, [b'{"a": true}'] if request == HEAD else []
        )
        theirs = respond(wsgi.Response, request, status, headers, [b'{"a": true}'] if request == HEAD else [])
        assert len(ours) == 1
        assert ours == [b"".join(theirs)]


def raw_answer(port: int, request: bytes) -> bytes:
    """Everything the server sends for one request on a connection that it then closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return VARYING.sub(b"", data)


def test_the_fair_worker_answers_byte_for_byte_as_gunicorns_own_worker(app_server_factory, tmp_path):
    static = tmp_path / "public"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>one write</title>")
    env = {"KDK_WEB__STATIC_FOLDER": str(static)}
    ours = app_server_factory(env, workers=1)
    theirs = app_server_factory({**env, "GUNICORN_CMD_ARGS": "-k gevent"}, workers=1)
    for path, method in [
        ("/livez", "GET"),
        ("/messages?$limit=2", "GET"),
        ("/messages", "HEAD"),
        ("/nowhere", "GET"),
        ("/", "GET"),  # index.html: a file, sent with sendfile
    ]:
        request = f"{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode()
        answer = raw_answer(ours.port, request)
        assert answer == raw_answer(theirs.port, request), path
        assert answer.startswith(b"HTTP/1.1 "), answer
    assert b"one write" in raw_answer(ours.port, b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    assert "Using worker: kdk_app.gunicorn_worker.FairGeventWorker" in ours.log_text()
    assert "Using worker: gevent" in theirs.log_text()
