"""Send fuzzed requests and frames to a running server and tally what came back.

A run passes when no answer is a 5xx, every frame that carried an ack id got its ack, no
connection was dropped without an answer, and a normal call still works afterwards.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import socket
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from .inputs import Frame, FrameGenerator, HttpRequest, RequestGenerator
from .rawsocket import RawSocket, SocketClosed

logger = logging.getLogger(__name__)

# Bodies whose chunked framing is broken: the server must answer 400 (or close), never 500.
BROKEN_CHUNKED = (
    b"zz\r\nabc\r\n0\r\n\r\n",
    b"5\r\nab\r\n0\r\n\r\n",
    b"ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
    b"2\r\n{}",
)
# Refused by the HTTP server before any application code runs (a request line over 8 KB).
HTTP_LAYER_REFUSALS = frozenset({414, 431})
HEALTH_EVERY = 100  # frames between two checks that a normal call still works


@dataclass
class Report:
    """What one fuzz run saw; ``failures`` holds the first few inputs that broke a rule."""

    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    server_errors: int = 0
    unanswered: int = 0
    dropped: int = 0
    not_feathers: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.server_errors or self.unanswered or self.dropped or self.not_feathers)

    def fail(self, kind: str, what: Any) -> None:
        if len(self.failures) < 20:
            self.failures.append(f"{kind}: {str(what)[:300]}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "statuses": dict(sorted(self.statuses.items())),
            "server_errors": self.server_errors,
            "unanswered": self.unanswered,
            "dropped": self.dropped,
            "not_feathers": self.not_feathers,
            "failures": self.failures,
        }


def is_feathers_error(body: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(body, dict) and isinstance(body.get("name"), str) and isinstance(body.get("code"), int)


class RestFuzzer:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None

    def run(self, count: int, seed: int) -> Report:
        report = Report()
        requests = RequestGenerator(random.Random(seed))
        for index, request in enumerate(islice(requests, count)):
            self._send(request, report)
            if index % 250 == 0:
                self._send_broken_chunked(BROKEN_CHUNKED[(index // 250) % len(BROKEN_CHUNKED)], report)
        if self.connection is not None:
            self.connection.close()
        return report

    def _send(self, request: HttpRequest, report: Report) -> None:
        report.sent += 1
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.connection.request(request.method, request.target, request.body or None, request.headers)
            response = self.connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.connection.close()
            self.connection = None
            if _closed_after_refusing(request):
                report.statuses["closed"] += 1
                return
            report.dropped += 1
            report.fail("dropped", f"{request.method} {request.target[:200]} {exc!r}")
            return
        self._judge(request, response.status, raw, report)
        if response.will_close:
            self.connection.close()
            self.connection = None

    def _judge(self, request: HttpRequest, status: int, raw: bytes, report: Report) -> None:
        report.statuses[str(status)] += 1
        if status >= 500:
            report.server_errors += 1
            report.fail(str(status), f"{request.method} {request.target[:200]} body={request.body[:200]!r}")
        elif status >= 400 and status not in HTTP_LAYER_REFUSALS and self._expects_json(request):
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if not is_feathers_error(body):
                report.not_feathers += 1
                report.fail("not a Feathers error", f"{status} {request.method} {request.target[:200]}")

    @staticmethod
    def _expects_json(request: HttpRequest) -> bool:
        # HEAD has no body; Engine.IO answers its own errors on its path.
        return request.method != "HEAD" and not request.target.startswith("/socket.io")

    def _send_broken_chunked(self, body: bytes, report: Report) -> None:
        """A request with a broken chunked body, on a connection of its own."""
        report.sent += 1
        head = (
            f"POST /messages HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
        with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
            sock.sendall(head + body)
            sock.shutdown(socket.SHUT_WR)  # the body ends here, whatever the chunks promised
            answer = b""
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except OSError:
                pass
        status_line = answer.split(b"\r\n", 1)[0].split()
        if len(status_line) < 2 or not status_line[1].isdigit():
            report.statuses["closed"] += 1  # refusing to parse a broken request is fine
            return
        status = int(status_line[1])
        report.statuses[str(status)] += 1
        if status >= 500:
            report.server_errors += 1
            report.fail(str(status), f"broken chunked body {body!r}")


def _closed_after_refusing(request: HttpRequest) -> bool:
    # A server may answer 413 and close while a large body is still being sent.
    return len(request.body) > 1_000_000


class FrameFuzzer:
    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.health_id = 10**9  # far from the generator's ids

    def run(self, count: int, seed: int) -> Report:
        report = Report()
        frames = FrameGenerator(random.Random(seed))
        client = RawSocket(self.base_url, timeout=self.timeout)
        try:
            for index, frame in enumerate(islice(frames, count)):
                client = self._send(client, frame, report)
                if index % HEALTH_EVERY == HEALTH_EVERY - 1:
                    client = self._check_health(client, report)
            client = self._check_health(client, report)
        finally:
            client.close()
        return report

    def _send(self, client: RawSocket, frame: Frame, report: Report) -> RawSocket:
        report.sent += 1
        try:
            client.send(frame.data)
            if frame.ack_id is None:
                report.statuses["no ack owed"] += 1
                return client
            answer = client.wait_ack(frame.ack_id)
        except SocketClosed as exc:
            report.dropped += 1
            report.fail("dropped", f"{frame.data[:200]!r} {exc}")
            return RawSocket(self.base_url, timeout=self.timeout)
        self._judge(frame, answer, report)
        return client

    def _judge(self, frame: Frame, answer: Any, report: Report) -> None:
        if answer is None:
            report.unanswered += 1
            report.fail("unanswered", frame.data[:200])
            return
        if isinstance(answer, list) and answer and answer[0] is None:
            report.statuses["ok"] += 1
            return
        error = answer[0] if isinstance(answer, list) and answer else None
        if not is_feathers_error(error):
            report.not_feathers += 1
            report.fail("not a Feathers error", f"{frame.data[:200]!r} -> {str(answer)[:200]}")
            return
        report.statuses[str(error["code"])] += 1
        if error["code"] >= 500:
            report.server_errors += 1
            report.fail(str(error["code"]), f"{frame.data[:200]!r} -> {error.get('message')}")

    def _check_health(self, client: RawSocket, report: Report) -> RawSocket:
        self.health_id += 1
        try:
            answer = client.call(self.health_id, "find", "messages", {"$limit": 1})
        except SocketClosed:
            report.dropped += 1
            report.fail("dropped", "the connection closed before a health call")
            return RawSocket(self.base_url, timeout=self.timeout)
        if not (isinstance(answer, list) and answer and answer[0] is None):
            report.unanswered += 1
            report.fail("health", f"a normal find got {str(answer)[:200]}")
        return client


def normal_calls_work(base_url: str) -> bool:
    """A REST find and a socket find both answer as they should."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=10)
    try:
        connection.request("GET", "/messages?$limit=1")
        rest_ok = connection.getresponse().status == 200
    finally:
        connection.close()
    client = RawSocket(base_url)
    try:
        answer = client.call(1, "find", "messages", {"$limit": 1})
    finally:
        client.close()
    return rest_ok and isinstance(answer, list) and bool(answer) and answer[0] is None


def fuzz(base_url: str, *, requests: int, frames: int, seed: int) -> dict[str, Any]:
    """Both fuzzers with one seed, and whether a normal call works afterwards."""
    rest = RestFuzzer(base_url).run(requests, seed)
    sockets = FrameFuzzer(base_url).run(frames, seed)
    healthy = normal_calls_work(base_url)
    return {
        "seed": seed,
        "ok": rest.ok and sockets.ok and healthy,
        "rest": rest.as_dict(),
        "frames": sockets.as_dict(),
        "normal_calls_work": healthy,
    }
