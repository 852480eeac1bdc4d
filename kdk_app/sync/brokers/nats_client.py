"""A small synchronous client for the NATS protocol: what the JetStream broker needs, no more.

Why not nats-py: it is asyncio, and under gevent the bus's threads are greenlets of one OS
thread, where asyncio allows one running event loop at a time ("Cannot run the event loop while
another loop is running" as soon as the publisher and the reader both wait). Plain sockets are
cooperative under gevent and ordinary in threads, with a bounded timeout on every wait.

One connection: connect (INFO, optional TLS, CONNECT, PING/PONG), one wildcard inbox
subscription for every reply, PUB, and a parser for MSG/HMSG that answers the server's PINGs.
It never reconnects by itself: any failure raises, and the bus's loops reopen it.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

logger = logging.getLogger(__name__)

DEFAULT_PORT = 4222
_RECV_SIZE = 65536
_CRLF = b"\r\n"


class NatsError(ConnectionError):
    """The server refused something (-ERR), broke the protocol, or closed the connection."""


@dataclass(frozen=True)
class NatsTarget:
    servers: tuple[tuple[str, int], ...]
    tls: bool
    user: str | None
    password: str | None
    token: str | None


def parse_nats_url(url: str) -> NatsTarget:
    """``nats://[user:pass@|token@]host[:port][,host[:port]...]``; ``tls://`` for TLS."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("nats", "tls"):
        raise ValueError(f"not a NATS URL: {url!r}")
    rest = rest.split("/", 1)[0].split("?", 1)[0]
    userinfo, at, hosts = rest.rpartition("@")
    user = password = token = None
    if at:
        name, colon, secret = userinfo.partition(":")
        if colon:
            user, password = unquote(name), unquote(secret)
        else:
            token = unquote(name)
    servers = []
    for host_port in hosts.split(","):
        host, port = _host_port(host_port.strip(), url)
        servers.append((host, port))
    return NatsTarget(tuple(servers), scheme == "tls", user, password, token)


def _host_port(text: str, url: str) -> tuple[str, int]:
    if text.startswith("["):  # [::1]:4222
        host, _, tail = text[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ValueError(f"NATS URL without a host: {url!r}")
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"bad port in NATS URL {url!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"bad port in NATS URL {url!r}")
    return host, port


@dataclass(frozen=True)
class Msg:
    subject: str
    reply: str | None
    data: bytes
    status: int | None = None  # from a header block "NATS/1.0 408 Request Timeout"
    description: str = ""


class NatsConnection:
    """One connection to the first server of ``url`` that answers; ``timeout`` bounds each wait."""

    def __init__(self, url: str, timeout: float, name: str = "kdk-sync") -> None:
        self.target = parse_nats_url(url)
        self.timeout = timeout
        self.name = name
        self.inbox = f"_INBOX.{secrets.token_hex(11)}"
        self.info: dict[str, Any] = {}
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._next_reply = 0

    @property
    def max_payload(self) -> int:
        return int(self.info.get("max_payload") or 1024 * 1024)

    def connect(self) -> NatsConnection:
        errors = []
        for host, port in self.target.servers:
            try:
                self._open(host, port)
                return self
            except (OSError, NatsError, ValueError) as exc:
                self.close()
                errors.append(f"{host}:{port}: {exc}")
        raise NatsError("could not connect to NATS: " + "; ".join(errors))

    def _open(self, host: str, port: int) -> None:
        self._buffer.clear()
        self._sock = socket.create_connection((host, port), timeout=self.timeout)
        deadline = time.monotonic() + self.timeout
        while (end := self._buffer.find(_CRLF)) < 0:
            if not self._fill(deadline):
                raise TimeoutError(f"no greeting from NATS within {self.timeout:g}s")
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        if not line.startswith(b"INFO "):
            raise NatsError(f"not a NATS server (first line {line!r})")
        self.info = json.loads(line[5:])
        tls = self.target.tls or bool(self.info.get("tls_required"))
        if tls:  # the system's CAs (SSL_CERT_FILE, SSL_CERT_DIR) verify the server
            context = ssl.create_default_context()
            self._sock = context.wrap_socket(self._sock, server_hostname=host)
        options: dict[str, Any] = {
            "verbose": False,
            "pedantic": False,
            "tls_required": tls,
            "name": self.name,
            "lang": "python",
            "version": "kdk",
            "protocol": 1,
            "headers": True,
            "no_responders": True,  # a request nobody serves answers 503 at once, no timeout
        }
        if self.target.user is not None:
            options["user"], options["pass"] = self.target.user, self.target.password
        elif self.target.token is not None:
            options["auth_token"] = self.target.token
        subscribe = f"SUB {self.inbox}.* 1".encode()
        self.send(b"CONNECT " + json.dumps(options).encode() + _CRLF + b"PING" + _CRLF + subscribe + _CRLF)
        # The PONG confirms CONNECT (a refusal comes first, as -ERR).
        reply = self._read_line(deadline, skip_pong=False)
        if reply != b"PONG":
            raise NatsError(f"NATS did not confirm the connection (got {reply!r})")

    def new_reply(self) -> str:
        self._next_reply += 1
        return f"{self.inbox}.{self._next_reply}"

    def send(self, data: bytes) -> None:
        sock = self._require()
        sock.settimeout(self.timeout)
        sock.sendall(data)

    def request(self, subject: str, body: bytes, timeout: float | None = None) -> Msg:
        """Publish ``body`` and wait for the one reply; TimeoutError if none comes in time."""
        reply = self.new_reply()
        self.send(pub(subject, body, reply))
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while True:
            msg = self.next_msg(deadline)
            if msg is None:
                raise TimeoutError(f"no answer from NATS to {subject} within {wait:g}s")
            if msg.subject == reply:
                return msg
            logger.debug("nats: dropping a late message on %s", msg.subject)

    def next_msg(self, deadline: float) -> Msg | None:
        """The next message for our inbox, or None once ``deadline`` (monotonic) passes."""
        while True:
            line = self._read_line(deadline)
            if line is None:
                return None
            parts = line.split()
            if parts[0] == b"MSG" and len(parts) in (4, 5):
                data = self._read_exact(int(parts[-1]) + 2, deadline)[:-2]
                return Msg(parts[1].decode(), _reply(parts, 5), data)
            if parts[0] == b"HMSG" and len(parts) in (5, 6):
                header_size, total = int(parts[-2]), int(parts[-1])
                raw = self._read_exact(total + 2, deadline)[:-2]
                status, description = _status(raw[:header_size])
                return Msg(parts[1].decode(), _reply(parts, 6), raw[header_size:], status, description)
            raise NatsError(f"unexpected NATS line {line[:80]!r}")

    def poll(self) -> None:
        """Take in what the server sent meanwhile, without waiting, answering its PINGs;
        raise if it hung up."""
        sock = self._require()
        sock.settimeout(0.0)
        try:
            chunk = sock.recv(_RECV_SIZE)
        except (BlockingIOError, ssl.SSLWantReadError, TimeoutError):
            chunk = None
        if chunk == b"":
            raise NatsError("NATS closed the connection")
        self._buffer += chunk or b""
        # Control lines at the front only: a message still waiting to be read stays whole.
        while (end := self._buffer.find(_CRLF)) >= 0 and _is_control(self._buffer[:end]):
            self._buffered_line(skip_pong=True)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # --- reading -------------------------------------------------------------------------
    def _require(self) -> socket.socket:
        if self._sock is None:
            raise NatsError("not connected to NATS")
        return self._sock

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        sock = self._require()
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(_RECV_SIZE)
        except TimeoutError:
            return False
        if not chunk:
            raise NatsError("NATS closed the connection")
        self._buffer += chunk
        return True

    def _read_line(self, deadline: float, skip_pong: bool = True) -> bytes | None:
        """The next protocol line, control lines (PING, +OK, -ERR, INFO) handled on the way."""
        while True:
            line = self._buffered_line(skip_pong)
            if line is not None:
                return line
            if not self._fill(deadline):
                return None

    def _buffered_line(self, skip_pong: bool) -> bytes | None:
        while (end := self._buffer.find(_CRLF)) >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 2]
            if line == b"PING":
                self.send(b"PONG" + _CRLF)
            elif line.startswith(b"-ERR"):
                raise NatsError(f"NATS refused: {line[5:].decode(errors='replace').strip()}")
            elif line == b"+OK" or line.startswith(b"INFO ") or (skip_pong and line == b"PONG"):
                continue  # +OK is never asked for; INFO (cluster updates) is not needed here
            else:
                return line
        return None

    def _read_exact(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) < size:
            if not self._fill(deadline):
                raise TimeoutError("NATS message cut short")
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


def pub(subject: str, payload: bytes, reply: str | None = None) -> bytes:
    head = f"PUB {subject} {reply} {len(payload)}" if reply else f"PUB {subject} {len(payload)}"
    return head.encode() + _CRLF + payload + _CRLF


def _is_control(line: bytes | bytearray) -> bool:
    return line in (b"PING", b"PONG", b"+OK") or line.startswith((b"-ERR", b"INFO "))


def _reply(parts: list[bytes], with_reply: int) -> str | None:
    return parts[3].decode() if len(parts) == with_reply else None


def _status(headers: bytes) -> tuple[int | None, str]:
    first = headers.split(_CRLF, 1)[0].decode(errors="replace")
    _version, _, rest = first.partition(" ")
    code, _, description = rest.strip().partition(" ")
    return (int(code), description) if code.isdigit() else (None, "")
