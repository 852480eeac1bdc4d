"""Seeded generators of hostile input: HTTP requests and Socket.IO frames.

Everything here is deterministic for a seed, so a failure found by ``kdk fuzz --seed N`` is
found again by the same seed. Each generator mixes well-formed calls (which must succeed) with
every kind of malformed one the transports must answer with a 4xx.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

SERVICE_PATHS = ("messages", "users", "notes", "authentication")
OTHER_PATHS = ("", "healthcheck", "distribution/stats", "socket.io/", "nope", "messages/a/b")
HTTP_METHODS = ("GET", "GET", "GET", "POST", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
STANDARD_METHODS = ("find", "get", "create", "update", "patch", "remove")
RESERVED_EVENTS = ("connect", "disconnect", "connect_error", "*", "disconnecting", "newListener")
HUGE_NUMBERS = ("9223372036854775808", "-9223372036854775809", "1e309", "-1e309", "1" * 400, "1e-400")


@dataclass
class HttpRequest:
    method: str
    target: str  # path and query string, as sent on the request line
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Frame:
    """One Engine.IO message; ``ack_id`` is set when the server owes an answer to it."""

    data: str | bytes
    ack_id: int | None = None


class Inputs:
    """The building blocks shared by both generators: JSON values, keys, numbers, text."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def word(self, size: int = 8) -> str:
        return "".join(self.rng.choice(string.ascii_letters) for _ in range(self.rng.randint(1, size)))

    def key(self) -> str:
        return self.rng.choice(
            [
                self.word(),
                "text",
                "n",
                "tag",
                "$where",
                "$set",
                "a.b",
                "text.x",
                "",
                "x.",
                "_id",
                "\x00k",
                "é",
            ]
        )

    def scalar_json(self) -> str:
        return self.rng.choice(
            [
                json.dumps(self.word()),
                str(self.rng.randint(-1000, 1000)),
                self.rng.choice(HUGE_NUMBERS),
                '"\\ud800"',
                '"\\udfff x"',
                "true",
                "null",
                "NaN",
                "Infinity",
                json.dumps("x" * self.rng.choice([0, 10, 5000])),
            ]
        )

    def nested_json(self, depth: int) -> str:
        opener, closer = self.rng.choice([("[", "]"), ('{"d":', "}")])
        return opener * depth + self.scalar_json() + closer * depth

    def object_json(self) -> str:
        """A JSON object text with hostile keys and values (kept as text: NaN, big ints)."""
        parts = []
        for _ in range(self.rng.randint(0, 4)):
            value = self.rng.choice(
                [self.scalar_json, lambda: self.nested_json(self.rng.choice([2, 40, 120, 700, 1500]))]
            )()
            parts.append(f"{json.dumps(self.key())}:{value}")
        if self.rng.random() < 0.6:
            parts.append(f'"text":{self.scalar_json()}')
        return "{" + ",".join(parts) + "}"

    def value_json(self) -> str:
        return self.rng.choice(
            [
                self.object_json,
                self.scalar_json,
                lambda: "[" + ",".join(self.object_json() for _ in range(self.rng.randint(0, 3))) + "]",
                lambda: self.nested_json(self.rng.choice([5, 200, 990, 3000])),
            ]
        )()

    def query_json(self) -> str:
        field_name = self.rng.choice(["text", "n", "tag", "_id", "$or", "$and", "a.b", "$where"])
        operand = self.rng.choice(
            [
                self.scalar_json(),
                '{"$gt":' + self.scalar_json() + "}",
                '{"$in":' + self.value_json() + "}",
                '{"$regex":".*"}',
                '{"$nin":{"0":1}}',
                "[" + self.object_json() + "]",
            ]
        )
        extras = self.rng.choice(
            ["", ',"$limit":' + self.scalar_json(), ',"$skip":' + self.scalar_json(), ',"$sort":{"n":2}']
        )
        return "{" + json.dumps(field_name) + ":" + operand + extras + "}"


class RequestGenerator(Inputs):
    """HTTP requests against the REST API and its neighbours."""

    def __iter__(self) -> Iterator[HttpRequest]:
        while True:
            yield self.request()

    def request(self) -> HttpRequest:
        method = self.rng.choice(HTTP_METHODS)
        target = "/" + self.path() + self.query_string()
        headers = {"Content-Type": self.rng.choice(["application/json"] * 4 + ["text/plain", "x/y", ""])}
        if self.rng.random() < 0.2:
            headers["Authorization"] = self.rng.choice(
                [
                    "Bearer " + self.word(40),
                    "Bearer a.b.c",
                    "JWT",
                    "Basic Zm9vOmJhcg==",
                    "Bearer " + "x" * 3000,
                ]
            )
        if method == "POST" and self.rng.random() < 0.1:
            headers["X-Service-Method"] = self.rng.choice(["find", "setup", "hooks", "_find", self.word()])
        if method == "OPTIONS" or self.rng.random() < 0.1:
            headers["Origin"] = self.rng.choice(["http://evil.example", "null", "http://localhost:5173"])
            headers["Access-Control-Request-Method"] = self.rng.choice(["POST", "DELETE", "FOO"])
        body = self.body() if method in ("POST", "PUT", "PATCH") or self.rng.random() < 0.05 else b""
        return HttpRequest(method, target, headers, body)

    def path(self) -> str:
        roll = self.rng.random()
        if roll < 0.6:
            path = self.rng.choice(SERVICE_PATHS)
            if self.rng.random() < 0.5:
                path += "/" + self.rng.choice(
                    [
                        "0" * 24,
                        "5f" * 12,
                        self.word(),
                        "%ZZ",
                        "%ff%fe",
                        "%00",
                        "..%2F..",
                        "9" * 40,
                        "%C2%B2",
                        "1",
                        "x" * 3000,
                    ]
                )
            return path
        if roll < 0.9:
            return self.rng.choice(OTHER_PATHS)
        return "".join(self.rng.choice(string.printable[:94]).replace("?", "%3F") for _ in range(20))

    def query_string(self) -> str:
        if self.rng.random() < 0.3:
            return ""
        pairs = [self.query_pair() for _ in range(self.rng.randint(1, 5))]
        return "?" + "&".join(pairs)

    def query_pair(self) -> str:
        key = self.rng.choice(
            [
                "$limit",
                "$skip",
                "$sort[n]",
                "$sort[text]",
                "$select[]",
                "$select",
                "n",
                "n[$gt]",
                "n[$in][]",
                "n[$in][0]",
                "n[$where]",
                "text[$regex]",
                "$or[0][n]",
                "$or[0][$or][0][n]",
                "$and[0][tag]",
                "$populate",
                "tag",
                "a[b][c][d][e][f][g][h]",
                "%ZZ",
                "n[%ff]",
                "x[]",
                "x[99999999999]",
                "_id",
                "_id[$in][%C2%B2]",
            ]
        )
        value = self.rng.choice(
            [
                "1",
                "-1",
                "abc",
                "",
                "%ZZ",
                "%ff",
                "%c3%28",
                "%00",
                "%C2%B2",
                "true",
                "null",
                "0" * 24,
                "1" * 1500,
                *HUGE_NUMBERS,
            ]
        )
        return f"{key}={value}"

    def body(self) -> bytes:
        roll = self.rng.random()
        if roll < 0.55:
            return self.value_json().encode("utf-8", "surrogatepass")
        if roll < 0.7:
            return self.rng.choice(
                [b"{", b"[1,", b'{"text": "x"', b"\xff\xfe", b'{"text": "\xc3\x28"}', b"nul", b"{'a': 1}"]
            )
        if roll < 0.8:
            return b"[" * self.rng.choice([1000, 5000, 100_000]) + b"]" * self.rng.choice([0, 1000])
        if roll < 0.9:
            return b'{"text": "' + b"x" * self.rng.choice([10_000, 1_100_000]) + b'"}'
        return self.rng.choice([b"", b" ", b"text=x&n=1", b'"just a string"', b"12", b"null"])


class FrameGenerator(Inputs):
    """Socket.IO frames inside well-formed Engine.IO messages (what a client library can send)."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.next_id = 1

    def __iter__(self) -> Iterator[Frame]:
        while True:
            yield self.frame()

    def _ack_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def frame(self) -> Frame:
        builders: list[Callable[[], Frame]] = [
            self.call_frame,
            self.call_frame,
            self.call_frame,
            self.broken_json_frame,
            self.wrong_shape_frame,
            self.reserved_event_frame,
            self.odd_packet_frame,
            self.binary_frame,
        ]
        return self.rng.choice(builders)()

    def call_frame(self) -> Frame:
        method = self.rng.choice([*STANDARD_METHODS, *STANDARD_METHODS, "foo", "setup", "hooks", ""])
        path = json.dumps(self.rng.choice([*SERVICE_PATHS, "nope", "", "/messages/", "users/1/x"]))
        args = [path] + [
            self.rng.choice([self.value_json, self.query_json])() for _ in range(self.rng.randint(0, 4))
        ]
        if self.rng.random() < 0.1:
            args = [self.rng.choice(["1", "null", "{}", "[]"])] + args[1:]
        ack_id = self._ack_id()
        body = "[" + ",".join([json.dumps(method), *args]) + "]"
        return Frame(f"42{ack_id}{body}", ack_id)

    def broken_json_frame(self) -> Frame:
        ack_id = self._ack_id()
        body = self.rng.choice(['["find"', '["find",]', "[", "]", '["find" "messages"]', "{", "\\", "[\x00]"])
        return Frame(f"42{ack_id}{body}", ack_id)

    def wrong_shape_frame(self) -> Frame:
        ack_id = self._ack_id()
        body = self.rng.choice(["{}", '{"a":1}', "[]", "[1]", "[null]", '"find"', "true", "null", "[[]]"])
        return Frame(f"42{ack_id}{body}", ack_id)

    def reserved_event_frame(self) -> Frame:
        event = self.rng.choice(RESERVED_EVENTS)
        payload = self.rng.choice(['{"REMOTE_ADDR":"203.0.113.7"}', '"transport close"', "{}"])
        if self.rng.random() < 0.5:
            ack_id = self._ack_id()
            return Frame(f"42{ack_id}[{json.dumps(event)},{payload}]", ack_id)
        return Frame(f"42[{json.dumps(event)},{payload}]")

    def odd_packet_frame(self) -> Frame:
        """Packet types and prefixes a client should never send (no answer is owed)."""
        return Frame(
            self.rng.choice(
                [
                    "4",
                    "43999[]",
                    "44{}",
                    "45-[]",
                    '451-["create","messages",{"_placeholder":true,"num":0}]',
                    "46",
                    "47",
                    "49",
                    "4x",
                    '42/nope,["find","messages"]',
                    "42" + "9" * 120 + "[]",
                    "4" + self.word(30),
                    "42" + "[" * 5000,
                ]
            )
        )

    def binary_frame(self) -> Frame:
        return Frame(bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 64))))
