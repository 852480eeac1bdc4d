"""The receiving side of the fan-out bench: many minimal Socket.IO clients in one asyncio process.

    .venv/bin/python -m bench.fanout_client      (driven by bench/fanout.py over stdin/stdout)

python-socketio's client costs a thread pool and tens of kilobytes per connection; this one is an
``asyncio.Protocol`` per connection that speaks just enough of the protocols for the bench:

- WebSocket (RFC 6455) client: HTTP/1.1 upgrade, masked text frames out, unmasked frames in,
  ping -> pong, close;
- Engine.IO v4 over the websocket transport only: ``0{open}`` in, ``2`` (ping) -> ``3`` (pong);
- Socket.IO v5 on the default namespace: ``40`` out, ``40{"sid":..}`` in, ``42[event, data]`` in.

Every ``messages created`` event whose record carries ``t0`` (``time.time_ns()`` taken by the
load generator just before its REST call) is timestamped with ``time.time_ns()`` the moment its
bytes are handed to the protocol, so latency = receive - t0 on one machine and one clock.

Commands, one JSON object per line on stdin; one JSON answer per line on stdout:

- ``{"cmd": "connect", "host": h, "port": p, "total": n, "concurrency": c}``: open connections
  until ``n`` are up (never closes any);
- ``{"cmd": "status"}``: how many are alive, closed, and the pings each has answered;
- ``{"cmd": "collect", "tag": t}``: the latencies (microseconds) and per-sequence delivery
  counts of the events tagged ``t``, then forget them;
- ``{"cmd": "close"}``: close every connection and exit.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import resource
import sys
import time
from collections import defaultdict
from typing import Any

logger = logging.getLogger("bench.fanout_client")

EVENT_NAME = "messages created"
CONNECT_TIMEOUT = 20.0
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def raise_nofile_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE towards ``wanted`` (the hard limit too when allowed); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, 0x80 | length))
    elif length < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    mask = os.urandom(4)
    # XOR through big integers: fast enough for the few short frames a client sends.
    repeated = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")
    return header + mask + masked


class Recorder:
    """Deliveries of tagged events: latencies and per-sequence counts, kept until collected."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[int]] = defaultdict(list)
        self.counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.slowest: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.duplicates: dict[str, int] = defaultdict(int)
        self.untagged = 0
        self.bad = 0

    def collect(self, tag: str, clients: list[SocketIOClient]) -> dict[str, Any]:
        latencies = self.latencies.pop(tag, [])
        counts = self.counts.pop(tag, {})
        duplicates = self.duplicates.pop(tag, 0)
        slowest = self.slowest.pop(tag, {})
        for client in clients:
            client.seen.pop(tag, None)
        return {
            "lat_us": [round(ns / 1000) for ns in latencies],
            "counts": {str(seq): n for seq, n in counts.items()},
            "max_us": {str(seq): round(ns / 1000) for seq, ns in slowest.items()},
            "duplicates": duplicates,
        }


class SocketIOClient(asyncio.Protocol):
    """One websocket connection speaking Engine.IO v4 / Socket.IO v5 to the default namespace."""

    def __init__(self, pool: ClientPool, host: str, port: int, path: str) -> None:
        self.pool = pool
        self.host = host
        self.port = port
        self.path = path
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.fragments: list[bytes] = []
        self.message_opcode = _OP_TEXT
        self.ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.close_reason = ""
        self.pings = 0
        self.seen: dict[str, set[int]] = {}

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {self.path}/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        transport.write(request.encode())

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()  # first thing: the delivery time of whatever these bytes complete
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[: self.buffer.find(b"\r\n")])
            if b" 101 " not in status:
                self._fail(f"upgrade refused: {status.decode(errors='replace')}")
                return
            del self.buffer[: end + 4]
            self.upgraded = True
        self._read_frames(now)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = self.close_reason or (repr(exc) if exc else "eof")
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(self.close_reason))

    # -- websocket -------------------------------------------------------------------------------
    def _read_frames(self, now: int) -> None:
        buf = self.buffer
        while len(buf) >= 2:
            first, second = buf[0], buf[1]
            length = second & 0x7F
            offset = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = int.from_bytes(buf[2:4], "big")
                offset = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = int.from_bytes(buf[2:10], "big")
                offset = 10
            mask = b""
            if second & 0x80:  # servers must not mask, but tolerate it
                if len(buf) < offset + 4:
                    return
                mask = bytes(buf[offset : offset + 4])
                offset += 4
            if len(buf) < offset + length:
                return
            payload = bytes(buf[offset : offset + length])
            del buf[: offset + length]
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            self._on_frame(first & 0x80 != 0, first & 0x0F, payload, now)
            if self.closed:
                return

    def _on_frame(self, fin: bool, opcode: int, payload: bytes, now: int) -> None:
        if opcode in (_OP_TEXT, _OP_BINARY, _OP_CONT):
            if opcode != _OP_CONT:
                self.fragments = []
                self.message_opcode = opcode
            self.fragments.append(payload)
            if fin:
                message = b"".join(self.fragments)
                self.fragments = []
                if self.message_opcode == _OP_TEXT:  # Engine.IO binary packets are not used here
                    self._on_message(message.decode("utf-8", "replace"), now)
        elif opcode == _OP_PING:
            self._send_frame(_OP_PONG, payload)
        elif opcode == _OP_CLOSE:
            self._send_frame(_OP_CLOSE, payload[:2])
            self._close("server closed the websocket")

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(opcode, payload))

    def send_text(self, text: str) -> None:
        self._send_frame(_OP_TEXT, text.encode())

    def _close(self, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = reason
        if self.transport is not None:
            self.transport.close()

    def _fail(self, reason: str) -> None:
        self.close_reason = reason
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
        self._close(reason)

    # -- Engine.IO / Socket.IO -------------------------------------------------------------------
    def _on_message(self, text: str, now: int) -> None:
        if not text:
            return
        kind = text[0]
        if kind == "4":  # Engine.IO message: a Socket.IO packet
            self._on_packet(text[1:], now)
        elif kind == "2":  # ping
            self.pings += 1
            self.send_text("3" + text[1:])
        elif kind == "0":  # open
            self.send_text("40")
        elif kind == "1":
            self._close("engine.io close")

    def _on_packet(self, packet: str, now: int) -> None:
        kind = packet[:1]
        if kind == "2":
            self._on_event(packet[1:], now)
        elif kind == "0":
            if not self.ready.done():
                self.ready.set_result(json.loads(packet[1:] or "{}").get("sid", ""))
        elif kind == "4":
            self._fail(f"connect refused: {packet[1:]}")
        elif kind == "1":
            self._close("socket.io disconnect")

    def _on_event(self, body: str, now: int) -> None:
        if body.startswith("/"):  # another namespace: "/ns,[...]"
            return
        start = body.find("[")  # skip an ack id, if any
        try:
            event = json.loads(body[start:])
        except ValueError:
            self.pool.recorder.bad += 1
            return
        if not event or event[0] != EVENT_NAME or len(event) < 2 or not isinstance(event[1], dict):
            return
        record = event[1]
        t0, tag, seq = record.get("t0"), record.get("tag"), record.get("n")
        if not isinstance(t0, int) or not isinstance(tag, str) or not isinstance(seq, int):
            self.pool.recorder.untagged += 1
            return
        recorder = self.pool.recorder
        seen = self.seen.setdefault(tag, set())
        if seq in seen:
            recorder.duplicates[tag] += 1
            return
        seen.add(seq)
        latency = now - t0
        recorder.latencies[tag].append(latency)
        recorder.counts[tag][seq] += 1
        slowest = recorder.slowest[tag]
        if latency > slowest[seq]:
            slowest[seq] = latency


class ClientPool:
    """All the connections of this process, and the command loop that drives them."""

    def __init__(self) -> None:
        self.clients: list[SocketIOClient] = []
        self.recorder = Recorder()
        self.connect_errors: dict[str, int] = defaultdict(int)

    async def _open_one(self, host: str, port: int, path: str) -> tuple[SocketIOClient | None, float]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        client: SocketIOClient | None = None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _, client = await loop.create_connection(
                    lambda: SocketIOClient(self, host, port, path), host, port
                )
                await client.ready
            return client, time.perf_counter() - started
        except (OSError, ConnectionError, TimeoutError) as exc:
            self.connect_errors[type(exc).__name__ + ": " + str(exc)[:80]] += 1
            if client is not None:
                client._close("connect failed")
            return None, time.perf_counter() - started

    async def connect(self, host: str, port: int, total: int, concurrency: int, path: str) -> dict[str, Any]:
        started = time.perf_counter()
        alive_before = self.alive()
        wanted = max(0, total - alive_before)
        gate = asyncio.Semaphore(max(1, concurrency))
        times: list[float] = []
        attempts = 0

        async def one() -> None:
            nonlocal attempts
            async with gate:
                for _ in range(3):  # a refused or timed-out connection is retried twice
                    attempts += 1
                    client, seconds = await self._open_one(host, port, path)
                    if client is not None:
                        self.clients.append(client)
                        times.append(seconds)
                        return
                    await asyncio.sleep(0.2)

        await asyncio.gather(*(one() for _ in range(wanted)))
        times.sort()
        return {
            "alive": self.alive(),
            "opened": len(times),
            "attempts": attempts,
            "seconds": round(time.perf_counter() - started, 3),
            "connect_ms_p50": round(1000 * times[len(times) // 2], 2) if times else None,
            "connect_ms_p99": round(1000 * times[int(len(times) * 0.99)], 2) if times else None,
            "connect_ms_max": round(1000 * times[-1], 2) if times else None,
            "errors": dict(self.connect_errors),
        }

    def alive(self) -> int:
        return sum(1 for c in self.clients if not c.closed)

    def status(self) -> dict[str, Any]:
        alive = [c for c in self.clients if not c.closed]
        reasons: dict[str, int] = defaultdict(int)
        for c in self.clients:
            if c.closed:
                reasons[c.close_reason[:80]] += 1
        return {
            "alive": len(alive),
            "closed": len(self.clients) - len(alive),
            "close_reasons": dict(reasons),
            "pings_min": min((c.pings for c in alive), default=0),
            "pings_total": sum(c.pings for c in alive),
            "untagged_events": self.recorder.untagged,
            "bad_frames": self.recorder.bad,
        }

    def close_all(self) -> None:
        for client in self.clients:
            if not client.closed:
                client._send_frame(_OP_CLOSE, (1000).to_bytes(2, "big"))
                client._close("closed by the bench")

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**24)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                self.close_all()
                return
            command = json.loads(line)
            name = command.get("cmd")
            try:
                if name == "connect":
                    answer = await self.connect(
                        command.get("host", "127.0.0.1"),
                        int(command["port"]),
                        int(command["total"]),
                        int(command.get("concurrency", 100)),
                        command.get("path", "/socket.io").rstrip("/"),
                    )
                elif name == "status":
                    answer = self.status()
                elif name == "collect":
                    answer = self.recorder.collect(command["tag"], self.clients)
                elif name == "close":
                    self.close_all()
                    await asyncio.sleep(0.5)
                    _answer({"closed": True})
                    return
                else:
                    answer = {"error": f"unknown command {name!r}"}
            except Exception as exc:  # report, never die silently: the driver waits for an answer
                logger.exception("command %s failed", name)
                answer = {"error": repr(exc)}
            _answer(answer)


def _answer(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="fanout_client: %(message)s", stream=sys.stderr)
    raise_nofile_limit(int(os.environ.get("FANOUT_CLIENT_NOFILE", "65536")))
    asyncio.run(ClientPool().serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
