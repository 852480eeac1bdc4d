"""Traffic of the fault bench: open-loop creates on A, and the consumers of their events.

Every create carries ``tag`` (the run) and ``n`` (its sequence number, < 0 for warm-up probes),
so each consumer's events can be matched to the creates one by one. Times are wall-clock
(``time.time()``) everywhere, because the listener files are written by other processes.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import socketio

logger = logging.getLogger("bench.faults")

# A keep-alive connection idle longer than this is replaced before use: gunicorn closes idle
# ones after its 5 s keepalive, and a request on a connection it just closed would fail for a
# reason that has nothing to do with the fault.
IDLE_RECONNECT = 2.0
EVENT = "messages created"


@dataclass
class Create:
    n: int
    due: float  # when the schedule released it
    sent: float  # when its request started
    done: float  # when its answer (or failure) came
    status: int  # HTTP status; 0 without an answer
    outcome: str  # "answered", "timeout" (no answer within the client timeout) or "error"
    error: str = ""

    @property
    def latency(self) -> float:
        return self.done - self.sent

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Load:
    """Creates on A at a fixed rate (open loop), each on a keep-alive connection of a thread pool.

    A slow answer never delays the next create: the pool grows (up to ``rate * timeout`` threads
    plus some) instead, so the schedule holds through a hang as a crowd of real clients would.
    """

    def __init__(self, port: int, tag: str, rate: float, timeout: float) -> None:
        self.port = port
        self.tag = tag
        self.rate = rate
        self.timeout = timeout
        self.creates: list[Create] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=math.ceil(rate * timeout) + 16, thread_name_prefix="load")
        self._dispatcher = threading.Thread(target=self._dispatch, name="load-dispatch", daemon=True)

    def start(self) -> None:
        self._dispatcher.start()

    def stop(self) -> list[Create]:
        """Stop releasing creates, wait for those in flight (each bounded by the timeout)."""
        self._stop.set()
        if self._dispatcher.ident is not None:  # started
            self._dispatcher.join(5)
        self._pool.shutdown(wait=True)
        with self._lock:
            return sorted(self.creates, key=lambda c: c.n)

    def _dispatch(self) -> None:
        start = time.time()
        n = 0
        while not self._stop.is_set():
            due = start + n / self.rate
            if self._stop.wait(max(0.0, due - time.time())):
                return
            self._pool.submit(self._create, n, due)
            n += 1

    def _connection(self) -> http.client.HTTPConnection:
        local = self._local
        conn: http.client.HTTPConnection | None = getattr(local, "conn", None)
        if conn is not None and time.monotonic() - local.used > IDLE_RECONNECT:
            conn.close()
            conn = None
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def _create(self, n: int, due: float) -> None:
        body = json.dumps({"text": f"fault {self.tag} {n}", "n": n, "tag": self.tag})
        conn = self._connection()
        sent = time.time()
        status, outcome, error = 0, "answered", ""
        try:
            conn.request("POST", "/messages", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            status = response.status
            if response.will_close:
                self._drop_connection()
        except TimeoutError:
            outcome, error = "timeout", "timeout"
            self._drop_connection()
        except (OSError, http.client.HTTPException) as exc:
            outcome, error = "error", type(exc).__name__
            self._drop_connection()
        self._local.used = time.monotonic()
        with self._lock:
            self.creates.append(Create(n, due, sent, time.time(), status, outcome, error))


def probe(port: int, tag: str, n: int, timeout: float = 5.0) -> int:
    """One create outside the measured load (warm-up); its HTTP status, 0 without an answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        body = json.dumps({"text": f"probe {tag} {n}", "n": n, "tag": tag})
        conn.request("POST", "/messages", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


class Consumer:
    """Something that receives ``messages created`` events; ``arrivals()`` maps n to arrival times."""

    name: str

    def arrivals(self) -> dict[int, list[float]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the consumer holds."""


class SocketConsumer(Consumer):
    """A python-socketio client in the Feathers protocol (websocket only, as with 2 workers)."""

    def __init__(self, name: str, url: str, tag: str) -> None:
        self.name = name
        self.tag = tag
        self.disconnects: list[float] = []
        self.connects: list[float] = []  # the first connection, then every reconnection
        self._events: dict[int, list[float]] = defaultdict(list)
        self._lock = threading.Lock()
        self.client = socketio.Client(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1)
        self.client.on(EVENT, self._record)
        self.client.on("connect", lambda *args: self.connects.append(time.time()))
        self.client.on("disconnect", self._disconnected)
        self.client.connect(url, transports=["websocket"], wait_timeout=10)

    def _record(self, data: Any) -> None:
        if isinstance(data, dict) and data.get("tag") == self.tag and isinstance(data.get("n"), int):
            with self._lock:
                self._events[data["n"]].append(time.time())

    def _disconnected(self, *args: Any) -> None:
        self.disconnects.append(time.time())

    def local_port(self) -> int | None:
        """This client's end of its websocket, to find the worker that holds the other end."""
        try:
            return int(self.client.eio.ws.sock.getsockname()[1])
        except (AttributeError, OSError):
            return None

    def arrivals(self) -> dict[int, list[float]]:
        with self._lock:
            return {n: list(times) for n, times in self._events.items()}

    def close(self) -> None:
        try:
            self.client.disconnect()
        except Exception:  # noqa: BLE001 - closing after a fault: whatever state the client is in
            logger.debug("closing %s", self.name, exc_info=True)


class ListenerFile(Consumer):
    """The server-side listener of one worker of B, read from the file it appends to."""

    def __init__(self, name: str, path: Path, tag: str) -> None:
        self.name = name
        self.path = path
        self.tag = tag

    def arrivals(self) -> dict[int, list[float]]:
        events: dict[int, list[float]] = defaultdict(list)
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == self.tag:  # a torn last line is skipped
                try:
                    events[int(parts[1])].append(float(parts[2]))
                except ValueError:
                    continue
        return dict(events)
