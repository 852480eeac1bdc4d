"""Under ``gunicorn -c gunicorn.conf.py wsgi:app`` with 2 workers, kdk_app's INFO lines reach the
log, as text or JSON lines, with the id of the request that caused them; the access lines carry
it too, with the latency; ``kdk serve`` uses the same setup. Real servers on a real SecantusDB,
their output read as it is written."""

from __future__ import annotations

import json
import re
import socket
from typing import Any

import requests
from clients import wait_until

REQUEST_ID = "test-123"
# A chunked body with a chunk size that is no number: reading it fails, which kdk_app logs at INFO.
BROKEN_CHUNKED_POST = (
    "POST /messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    f"X-Request-Id: {REQUEST_ID}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    "zz\r\nabc\r\n0\r\n\r\n"
)


def send_broken_body(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(BROKEN_CHUNKED_POST.encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines


def test_gunicorn_writes_kdk_app_info_json_lines_with_the_request_id(app_server_factory):
    server = app_server_factory({"KDK_LOG_FORMAT": "json", "KDK_ACCESS_LOG": "-"}, workers=2)
    answer = send_broken_body(server.port)
    assert answer.startswith(b"HTTP/1.1 400") and f"X-Request-Id: {REQUEST_ID}".encode() in answer

    def logged(predicate: Any) -> list[dict[str, Any]]:
        return [line for line in json_lines(server.log_text()) if predicate(line)]

    def caused() -> list[dict[str, Any]]:
        return logged(
            lambda line: line.get("logger") == "kdk_app.transports.rest" and line["level"] == "INFO"
        )

    def access() -> list[dict[str, Any]]:
        return logged(lambda line: line.get("logger") == "gunicorn.access" and line["status"] == "400")

    assert wait_until(caused), server.log_text()
    assert caused()[0]["request_id"] == REQUEST_ID
    assert "unreadable request body" in caused()[0]["message"]
    assert wait_until(access), server.log_text()
    line = access()[0]
    assert line["request_id"] == REQUEST_ID and line["method"] == "POST" and line["path"] == "/messages"
    assert isinstance(line["duration_ms"], int) and "ms" in line["message"]

    # Both workers log kdk_app's INFO lines from their start on (the sync bus without Redis), outside
    # of any request.
    def started() -> set[int]:
        kdk_info = logged(
            lambda line: line.get("logger", "").startswith("kdk_app.") and line["level"] == "INFO"
        )
        return {line["process"] for line in kdk_info if line["request_id"] == "-"}

    assert wait_until(lambda: len(started()) == 2), server.log_text()


def test_gunicorn_writes_text_lines_by_default_with_the_request_id(app_server_factory):
    server = app_server_factory({"KDK_ACCESS_LOG": "-"}, workers=2)
    send_broken_body(server.port)
    caused = re.compile(rf"INFO kdk_app\.transports\.rest \[{REQUEST_ID}\] unreadable request body")
    access = re.compile(
        rf'INFO gunicorn\.access \[{REQUEST_ID}\] 127\.0\.0\.1 "POST /messages HTTP/1\.1" 400 .* \d+ms'
    )
    assert wait_until(lambda: caused.search(server.log_text())), server.log_text()
    assert wait_until(lambda: access.search(server.log_text())), server.log_text()
    assert not json_lines(server.log_text())


def test_gunicorn_writes_no_access_lines_unless_asked(app_server_factory):
    server = app_server_factory({"KDK_LOG_FORMAT": "json"}, workers=1)
    send_broken_body(server.port)
    assert wait_until(lambda: "unreadable request body" in server.log_text()), server.log_text()
    assert requests.get(server.url + "/messages", timeout=10).status_code == 200
    assert not [line for line in json_lines(server.log_text()) if line.get("logger") == "gunicorn.access"]


def test_kdk_serve_uses_the_same_setup(app_server_factory):
    server = app_server_factory({"KDK_LOG_FORMAT": "json", "KDK_LOGGING__LEVELS__KDK_APP.SERVING": "DEBUG"})
    answer = requests.get(server.url + "/messages", headers={"X-Request-Id": REQUEST_ID}, timeout=10)
    assert answer.headers["X-Request-Id"] == REQUEST_ID

    def lines(logger: str) -> list[dict[str, Any]]:
        return [line for line in json_lines(server.log_text()) if line.get("logger") == logger]

    assert wait_until(lambda: lines("kdk_app.server")), server.log_text()
    assert any("listening on" in line["message"] for line in lines("kdk_app.server"))
    # A level per logger from the settings: kdk_app.serving's DEBUG line shows, no other's does.
    assert [line["level"] for line in lines("kdk_app.serving")] == ["DEBUG"]
    debug = [line for line in json_lines(server.log_text()) if line["level"] == "DEBUG"]
    assert {line["logger"] for line in debug} == {"kdk_app.serving"}
