"""Real-time fan-out benchmark: two kdk-app instances sharing Redis, socket clients on one of them.

    .venv/bin/python bench/fanout.py [--rate 200] [--duration 10] [--clients 4]
        [--steps 200,300,400,...] [--step-duration 5] [--broadcast-clients 1000]
        [--idle-clients 10000] [--hold 35] [--max-seconds 900] [--profile DIR]

Starts Redis, SecantusDB (in memory) and two instances, A and B, each ``gunicorn -c
gunicorn.conf.py -w 1 wsgi:app`` (gevent) on loopback, sharing Redis (the Socket.IO message queue
and the sync stream) and the database. The clients are minimal Engine.IO v4 / Socket.IO v5
websocket clients in one asyncio process (``bench/fanout_client.py``), all connected to B. Records
are created through A's REST API (``POST /messages``) by an open-loop load generator: a dispatcher
thread releases creates on a fixed schedule to a pool of keep-alive ``http.client`` connections.
Each record carries ``t0 = time.time_ns()`` taken just before its REST call; the client process
timestamps the ``messages created`` event on arrival, so latency is "REST call start on A ->
delivery by B" on one clock. Phases:

1. ``target``: ``--rate`` creates/s for ``--duration`` s with ``--clients`` clients, ``--target-runs``
   times (the median run by p99 counts): p50/p99/max, lost events (expected = successful creates x
   live clients), REST latency, sender lag. Then ``hop``: the same rate published straight to the
   Socket.IO queue on Redis (no REST, no database), the fan-out path alone.
2. ``steps``: the same at increasing rates, ``--step-duration`` s each, until a step loses an event,
   falls below 95 % of its rate, or its p99 exceeds ``--step-p99-bound-ms``; the last good step is
   the highest sustained rate.
3. ``broadcast``: ``--broadcast-clients`` connections on B; ``--broadcast-events`` creates spaced
   ``--broadcast-interval`` s apart; latency of every delivery and time for each event to reach all.
4. ``idle``: ``--idle-clients`` connections on B (one gevent worker), held ``--hold`` s (longer
   than the 25 s ping interval, so every client answers at least one ping); then a few broadcasts
   prove that all are alive and time the delivery to all of them. B's worker RSS (VmRSS) before
   and after gives the memory per connection. Last, every client closes at once, and the bench
   times how long B stays busy with the disconnects.

SecantusDB is restarted (same port, in memory) before each rate run: it slows down after about
10,000 writes per process. ``--adapter memory`` serves ``bench/fanout_wsgi.py`` (messages in
memory) to take the database out of the path. Before each measured phase the bench waits up to
``--quiet-wait`` s for other work on the machine to fall below ``--quiet-threshold`` cores.

CPU use of every process is sampled per phase, together with the whole machine's, so CPU taken by
other work on the machine (noise) shows as ``others_cores``. Prints a summary and ends with one line
``BENCH_RESULT {json}``. Every process it starts is stopped by PID; file-descriptor limits are
raised in this process (children inherit them). Needs no package beyond the app's own; ``--profile``
needs ``py-spy`` (``pip install py-spy``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import logging
import math
import os
import platform
import queue
import secrets
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: bench/ is on sys.path, the repo is not
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import child_environment, percentile  # noqa: E402
from bench.fanout_client import raise_nofile_limit  # noqa: E402
from kdk_app.embedded import ManagedProcess, free_port, start_redis, start_secantusdb  # noqa: E402
from kdk_app.transports.queues import queue_emitter  # noqa: E402

logger = logging.getLogger("bench.fanout")

DATABASE = "fanout"
BENCH_JWT_SECRET = secrets.token_hex(32)
SOCKETIO_CHANNEL = "kdk-socketio"  # config/default.py socketio.channel
APP_START_TIMEOUT = 60.0
NOFILE = 65536
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Inherited variables that would point the apps at other servers or another configuration.
APP_MODULES = {"mongodb": "wsgi:app", "memory": "bench.fanout_wsgi:app"}
DEFAULT_STEPS = "200,300,400,500,600,800,1000,1200,1600,2000"

# Targets of the issue.
TARGET_RATE = 200
TARGET_P99_MS = 15.0
TARGET_IDLE_CONNECTIONS = 10_000
TARGET_BROADCAST_CLIENTS = 1_000
TARGET_BROADCAST_P99_MS = 250.0


# -- processes -----------------------------------------------------------------------------------


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthcheck", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_instance(
    name: str,
    mongo_url: str,
    redis_url: str,
    logdir: Path,
    app: str = "wsgi:app",
    worker_class: str | None = None,
    pythonpath: str | None = None,
) -> tuple[ManagedProcess, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = child_environment(
        {
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "MONGO_URL": f"{mongo_url.rstrip('/')}/{DATABASE}",
            "REDIS_URL": redis_url,
            "KDK_ENV": "production",
            "JWT_SECRET": BENCH_JWT_SECRET,  # production refuses to start without one
            "KDK_LOG_LEVEL": "warning",
            "KDK_WORKER_CONNECTIONS": "20000",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if pythonpath:  # e.g. a folder holding gevent-websocket, for an experiment
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    # gunicorn 27's default control socket (~/.gunicorn/gunicorn.ctl) is shared by every server
    # on the machine: each start would replace (and each stop unlink) the others'.
    extra = ["--no-control-socket", *(["-k", worker_class] if worker_class else [])]
    process = ManagedProcess(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-w", "1", *extra, app],
        name=f"instance-{name}",
        log_path=logdir / f"instance-{name}.log",
        env=env,
        cwd=REPO_ROOT,
        ready_check=lambda: healthy(url),
        start_timeout=APP_START_TIMEOUT,
    )
    process.start()
    return process, url


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def descendants(pid: int) -> list[int]:
    out = [pid]
    for child in children_of(pid):
        out.extend(descendants(child))
    return out


def worker_pid(master: int, timeout: float = 10.0) -> int:
    """The single gunicorn worker of ``master``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = children_of(master)
        if len(children) == 1:
            return children[0]
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn master {master} has no single worker: {children_of(master)}")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def system_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class CpuMeter:
    """CPU used by each watched process tree and by the whole machine between two snapshots."""

    def __init__(self, trees: dict[str, int], single: Iterable[str] = ()) -> None:
        self.trees = trees
        self.single = set(single)  # names counted without their children (this process)
        self._snapshot = self._take()

    def _take(self) -> tuple[float, dict[str, float], tuple[int, int]]:
        per = {
            name: sum(cpu_seconds(p) for p in ([pid] if name in self.single else descendants(pid)))
            for name, pid in self.trees.items()
        }
        return time.monotonic(), per, system_jiffies()

    def lap(self) -> dict[str, float]:
        """Cores used (1.0 = one core busy) since the previous lap, per tree, ours and others."""
        before, now = self._snapshot, self._take()
        self._snapshot = now
        seconds = max(1e-6, now[0] - before[0])
        cores = {name: round((now[1][name] - before[1][name]) / seconds, 3) for name in self.trees}
        busy = (now[2][0] - before[2][0]) / CLK_TCK / seconds
        ours = sum(cores.values())
        cores["machine_busy_cores"] = round(busy, 3)
        cores["others_cores"] = round(max(0.0, busy - ours), 3)
        cores["window_s"] = round(seconds, 3)
        return cores


class Receiver:
    """The client process (bench/fanout_client.py), driven by one JSON line per command."""

    def __init__(self, logdir: Path) -> None:
        self.log = open(logdir / "clients.log", "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "bench.fanout_client"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=REPO_ROOT,
            env=child_environment({"FANOUT_CLIENT_NOFILE": str(NOFILE)}),
            start_new_session=True,
        )
        self.pid = self.popen.pid

    def request(self, command: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        assert self.popen.stdin is not None and self.popen.stdout is not None
        self.popen.stdin.write((json.dumps(command) + "\n").encode())
        self.popen.stdin.flush()
        answer = _read_line(self.popen.stdout, timeout)
        if answer is None:
            raise RuntimeError(f"client process gave no answer to {command.get('cmd')} in {timeout:g}s")
        result = json.loads(answer)
        if "error" in result:
            raise RuntimeError(f"client process: {result['error']}")
        return result

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                self.request({"cmd": "close"}, timeout=15)
            except (RuntimeError, OSError, ValueError):
                pass
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()  # by PID: this Popen object only
                self.popen.wait()
        self.log.close()


def _read_line(stream: IO[bytes], timeout: float) -> bytes | None:
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            return None
    return stream.readline() or None


# -- load generator ------------------------------------------------------------------------------


@dataclass
class Send:
    seq: int
    t0_ns: int  # time.time_ns() just before the REST call: also in the record
    done_ns: int
    status: int
    lag_ns: int  # how late the call started against its schedule


class LoadGenerator:
    """Open loop: creates released on a fixed schedule to keep-alive HTTP connections in threads."""

    def __init__(self, url: str, connections: int) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.connections = connections

    def run(self, tag: str, rate: float, count: int, seq_start: int = 0) -> list[Send]:
        tasks: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        sends: list[Send] = []
        # About one connection per 25 creates/s: idle keep-alive connections would be closed by
        # gunicorn after its 5 s keepalive at low rates.
        threads = [
            threading.Thread(target=self._worker, args=(tag, tasks, sends), daemon=True)
            for _ in range(max(1, min(self.connections, count, math.ceil(rate / 25))))
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.05)
        start = time.monotonic()
        start_wall = time.time_ns()
        for i in range(count):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            tasks.put((seq_start + i, start_wall + int(i * 1e9 / rate)))
        for _ in threads:
            tasks.put(None)
        deadline = time.monotonic() + 60
        for thread in threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        return sorted(sends, key=lambda s: s.seq)

    def _worker(self, tag: str, tasks: queue.SimpleQueue[tuple[int, int] | None], sends: list[Send]) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        headers = {"Content-Type": "application/json"}
        while True:
            task = tasks.get()
            if task is None:
                break
            seq, due_ns = task
            for attempt in range(2):  # a keep-alive connection the server closed is retried once
                t0 = time.time_ns()
                body = json.dumps({"text": "fanout bench", "tag": tag, "n": seq, "t0": t0}).encode()
                try:
                    conn.request("POST", "/messages", body, headers)
                    response = conn.getresponse()
                    response.read()
                    status = response.status
                    break
                except (OSError, http.client.HTTPException) as exc:
                    status = 0
                    conn.close()
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                    stale = isinstance(exc, (ConnectionResetError, BrokenPipeError))
                    if not stale or attempt:
                        break
            sends.append(Send(seq, t0, time.time_ns(), status, t0 - due_ns))
        conn.close()


def publish_run(emit: Any, tag: str, rate: float, count: int, seq_start: int = 0) -> list[Send]:
    """Like ``LoadGenerator.run`` but straight into the Socket.IO message queue on Redis (no REST,
    no database): what the fan-out hop alone costs, Redis -> B -> clients."""
    sends: list[Send] = []
    start = time.monotonic()
    start_wall = time.time_ns()
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t0 = time.time_ns()
        record = {
            "_id": f"hop{seq_start + i}",
            "text": "fanout bench",
            "tag": tag,
            "n": seq_start + i,
            "t0": t0,
        }
        try:
            emit("messages created", record, ["anonymous", "authenticated"])
            status = 200
        except Exception:  # a failed publish counts as a failed send
            status = 0
        sends.append(Send(seq_start + i, t0, time.time_ns(), status, t0 - start_wall - int(i * 1e9 / rate)))
    return sends


# -- figures -------------------------------------------------------------------------------------


def _ms(values: Sequence[float], q: float) -> float:
    return round(percentile(values, q), 2)


def delivery_figures(
    sends: list[Send], collected: dict[str, Any], clients: int, seconds: float
) -> dict[str, Any]:
    ok = [s for s in sends if 200 <= s.status < 300]
    counts = collected["counts"]
    received = sum(counts.get(str(s.seq), 0) for s in ok)
    expected = len(ok) * clients
    latencies = sorted(us / 1000 for us in collected["lat_us"])
    rest = sorted((s.done_ns - s.t0_ns) / 1e6 for s in ok)
    lag = sorted(s.lag_ns / 1e6 for s in sends)
    reach_all = sorted(us / 1000 for seq, us in collected["max_us"].items() if counts.get(seq) == clients)
    span = (max(s.done_ns for s in sends) - min(s.t0_ns for s in sends)) / 1e9 if sends else 0.0
    return {
        "clients": clients,
        "sent": len(sends),
        "rest_errors": len(sends) - len(ok),
        "offered_rate": round(len(sends) / seconds, 1) if seconds else None,
        "achieved_rate": round(len(ok) / span, 1) if span else 0.0,
        "expected": expected,
        "delivered": received,
        "lost": expected - received,
        "duplicates": collected["duplicates"],
        "p50_ms": _ms(latencies, 50),
        "p90_ms": _ms(latencies, 90),
        "p99_ms": _ms(latencies, 99),
        "max_ms": round(latencies[-1], 2) if latencies else None,
        "rest_p50_ms": _ms(rest, 50),
        "rest_p99_ms": _ms(rest, 99),
        "sender_lag_p99_ms": _ms(lag, 99),
        "sender_lag_max_ms": round(lag[-1], 2) if lag else None,
        "events_reaching_all": len(reach_all),
        "reach_all_p50_ms": _ms(reach_all, 50),
        "reach_all_max_ms": round(reach_all[-1], 2) if reach_all else None,
    }


def machine_info() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    total_memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    versions = {}
    for package in ("gunicorn", "gevent", "python-socketio", "python-engineio", "simple-websocket", "redis"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    git = subprocess.run(
        ["git", "log", "-1", "--format=%h"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(total_memory / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "git": git + ("+dirty" if dirty else ""),
    }


def loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


# -- the bench -----------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, logdir: Path) -> None:
        self.args = args
        self.logdir = logdir
        self.processes: list[ManagedProcess] = []
        self.receiver: Receiver | None = None
        self.profiles: list[subprocess.Popen[bytes]] = []
        self.deadline = time.monotonic() + args.max_seconds
        self.seq = 0

    # -- lifecycle --
    def start(self) -> None:
        redis_process, self.redis_url = start_redis(log_path=self.logdir / "redis.log")
        self.processes.append(redis_process)
        mongo_process, mongo_url = start_secantusdb(log_path=self.logdir / "secantusdb.log")
        self.processes.append(mongo_process)
        self.mongo_process = mongo_process
        self.mongo_port = int(mongo_url.rstrip("/").rsplit(":", 1)[1])
        app = APP_MODULES[self.args.adapter]
        options = {"worker_class": self.args.worker_class, "pythonpath": self.args.server_pythonpath}
        a_process, self.a_url = start_instance("A", mongo_url, self.redis_url, self.logdir, app, **options)
        self.processes.append(a_process)
        b_process, self.b_url = start_instance("B", mongo_url, self.redis_url, self.logdir, app, **options)
        self.processes.append(b_process)
        assert a_process.pid and b_process.pid and redis_process.pid and mongo_process.pid
        self.a_master, self.b_master = a_process.pid, b_process.pid
        self.a_worker, self.b_worker = worker_pid(a_process.pid), worker_pid(b_process.pid)
        self.b_port = int(self.b_url.rsplit(":", 1)[1])
        self.receiver = Receiver(self.logdir)
        self.load = LoadGenerator(self.a_url, self.args.connections)
        self.emit = queue_emitter(self.redis_url, SOCKETIO_CHANNEL)
        self.cpu = CpuMeter(
            {
                "A_worker": self.a_worker,
                "B_worker": self.b_worker,
                "redis": redis_process.pid,
                "secantusdb": mongo_process.pid,
                "clients": self.receiver.pid,
                "bench": os.getpid(),
            },
            single=["bench"],
        )

    def stop(self) -> None:
        for profiler in self.profiles:
            if profiler.poll() is None:
                profiler.terminate()  # by PID
                try:
                    profiler.wait(10)
                except subprocess.TimeoutExpired:
                    profiler.kill()
                    profiler.wait()
        if self.receiver is not None:
            self.receiver.stop()
        for process in reversed(self.processes):
            try:
                process.stop(10)
            except Exception:
                logger.exception("could not stop %r", process)

    def fresh_database(self) -> None:
        """Restart SecantusDB (in memory) on its port, then re-warm A's connection pool.

        SecantusDB's inserts slow down from ~1-2 ms to 10-20 ms after about 10,000 writes in one
        process (dropping or emptying the collection does not help), which would measure the
        embedded database rather than the app; production runs MongoDB.
        """
        if self.args.adapter != "mongodb" or not self.args.fresh_db:
            return
        self.mongo_process.stop()
        index = self.processes.index(self.mongo_process)
        self.mongo_process, _ = start_secantusdb(
            port=self.mongo_port, log_path=self.logdir / "secantusdb.log"
        )
        self.processes[index] = self.mongo_process
        assert self.mongo_process.pid
        self.cpu.trees["secantusdb"] = self.mongo_process.pid
        assert self.receiver is not None
        self.load.run("rewarm", 50, 50, self.seq)  # the first calls reconnect pymongo; errors ignored
        self.seq += 50
        time.sleep(0.5)
        self.receiver.request({"cmd": "collect", "tag": "rewarm"})

    def wait_quiet(self) -> dict[str, Any]:
        """Wait (at most --quiet-wait s) until other work on the machine uses little CPU."""
        if self.args.quiet_wait <= 0:
            return {}
        meter = CpuMeter(dict(self.cpu.trees), single=["bench"])
        started = time.monotonic()
        while True:
            time.sleep(1.0)
            others = meter.lap()["others_cores"]
            waited = time.monotonic() - started
            if others <= self.args.quiet_threshold or waited >= self.args.quiet_wait:
                return {"waited_s": round(waited, 1), "others_cores_before": others}

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def workers_unchanged(self) -> bool:
        return children_of(self.a_master) == [self.a_worker] and children_of(self.b_master) == [self.b_worker]

    # -- helpers --
    def connect(self, total: int) -> dict[str, Any]:
        assert self.receiver is not None
        return self.receiver.request(
            {
                "cmd": "connect",
                "port": self.b_port,
                "total": total,
                "concurrency": self.args.connect_concurrency,
            },
            timeout=max(60.0, total / 20),
        )

    def status(self) -> dict[str, Any]:
        assert self.receiver is not None
        return self.receiver.request({"cmd": "status"})

    def profile(self, pid: int, name: str, seconds: float) -> None:
        if not self.args.profile:
            return
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not os.path.exists(spy):
            logger.warning("--profile: py-spy is not installed (pip install py-spy)")
            return
        out = Path(self.args.profile) / f"{name}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        self.profiles.append(
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(int(seconds)),
                    "--rate",
                    "250",
                    "--format",
                    "raw",
                    "--output",
                    str(out),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=open(self.logdir / f"py-spy-{name}.log", "ab"),  # noqa: SIM115
                start_new_session=True,
            )
        )

    def wait_profiles(self) -> None:
        for profiler in self.profiles:
            try:
                profiler.wait(30)
            except subprocess.TimeoutExpired:
                profiler.terminate()
                profiler.wait()
        self.profiles = []

    def measure(
        self,
        tag: str,
        rate: float,
        count: int,
        drain: float,
        via_redis: bool = False,
        profile: Sequence[tuple[int, str]] = (),
    ) -> dict[str, Any]:
        """Send ``count`` creates at ``rate``/s through A (or publish them straight to the message
        queue when ``via_redis``), wait ``drain`` s, collect the deliveries. ``profile``: (pid,
        name) of processes to sample with py-spy while sending."""
        assert self.receiver is not None
        quiet = self.wait_quiet()
        before = self.status()["alive"]
        for pid, name in profile:
            self.profile(pid, name, count / rate)
        self.cpu.lap()
        if via_redis:
            sends = publish_run(self.emit, tag, rate, count, self.seq)
        else:
            sends = self.load.run(tag, rate, count, self.seq)
        self.seq += count
        time.sleep(drain)
        self.wait_profiles()
        cpu = self.cpu.lap()
        collected = self.receiver.request({"cmd": "collect", "tag": tag})
        after = self.status()["alive"]
        figures = delivery_figures(sends, collected, min(before, after), count / rate)
        window = cpu.pop("window_s")
        figures.update(
            rate=rate, cpu_cores=cpu, clients_alive_before=before, clients_alive_after=after, quiet=quiet
        )
        # CPU per unit of work: far less sensitive to other load on the machine than latency.
        ok = len(sends) - figures["rest_errors"]
        figures["a_cpu_us_per_create"] = round(cpu["A_worker"] * window * 1e6 / ok, 1) if ok else None
        delivered = figures["delivered"]
        figures["b_cpu_us_per_delivery"] = (
            round(cpu["B_worker"] * window * 1e6 / delivered, 1) if delivered else None
        )
        return figures

    # -- phases --
    def run(self) -> dict[str, Any]:
        args = self.args
        result: dict[str, Any] = {"loadavg_start": loadavg()}
        self.start()
        log = self.log
        log(
            f"instances A={self.a_url} (worker {self.a_worker}), B={self.b_url} (worker {self.b_worker}), "
            f"redis={self.redis_url}; logs in {self.logdir}"
        )

        # Warm-up: wiring check, caches, connections.
        connected = self.connect(args.clients)
        if connected["alive"] < args.clients:
            raise RuntimeError(f"could not connect {args.clients} clients to B: {connected}")
        warm = self.measure("warmup", 100, 200, 1.0)
        if warm["delivered"] == 0:
            raise RuntimeError(f"no event reached the clients on B: {warm}; see {self.logdir}")
        log(f"warm-up: {warm['delivered']}/{warm['expected']} delivered, p99 {warm['p99_ms']} ms")

        # 1. the target rate, run several times: the median run (by p99) stands for the phase
        runs = []
        for run in range(max(1, args.target_runs)):
            count = int(args.rate * args.duration)
            self.fresh_database()
            runs.append(self.measure(f"target{run}", args.rate, count, args.drain))
            log(f"target {args.rate:g}/s x {args.duration:g}s, {args.clients} clients: " + _short(runs[-1]))
            time.sleep(1.0)
        target = dict(sorted(runs, key=lambda r: r["p99_ms"])[len(runs) // 2])
        target["runs"] = len(runs)
        target["lost_all_runs"] = sum(r["lost"] for r in runs)
        target["rest_errors_all_runs"] = sum(r["rest_errors"] for r in runs)
        target["p99_ms_each_run"] = [r["p99_ms"] for r in runs]
        target["others_cores_each_run"] = [r["cpu_cores"]["others_cores"] for r in runs]
        quietest = min(runs, key=lambda r: r["cpu_cores"]["others_cores"])
        target["quietest_run"] = {
            k: quietest[k]
            for k in ("p50_ms", "p99_ms", "max_ms", "lost", "rest_p99_ms", "a_cpu_us_per_create")
        } | {"others_cores": quietest["cpu_cores"]["others_cores"]}
        result["target"] = target
        if args.profile:  # an extra run under py-spy, left out of the figures (the sampler costs CPU)
            self.fresh_database()
            count = int(args.rate * args.duration)
            workers = [(self.a_worker, "target-A"), (self.b_worker, "target-B")]
            profiled = self.measure("target-profiled", args.rate, count, args.drain, profile=workers)
            log("(profiled run, not counted) " + _short(profiled))

        # 1b. the fan-out hop alone: publish to the message queue on Redis, no REST, no database
        hop = self.measure("hop", args.rate, int(args.rate * args.duration), args.drain, via_redis=True)
        result["hop"] = hop
        log(f"hop only (Redis -> B -> clients) {args.rate:g}/s: " + _short(hop))

        # 2. rate steps
        steps = []
        sustained = 0
        meets_p99 = 0
        for rate in [int(r) for r in args.steps.split(",") if r.strip()]:
            if self.time_left() < args.step_duration + 120 + args.hold:
                log("steps: out of time budget, stopping")
                break
            for attempt in range(1 + max(0, args.step_retries)):  # noise: a failed step is retried
                count = int(rate * args.step_duration)
                self.fresh_database()
                step = self.measure(f"step{rate}-{attempt}", rate, count, args.drain)
                good = (
                    step["lost"] == 0
                    and step["rest_errors"] == 0
                    and step["achieved_rate"] >= 0.95 * rate
                    and step["p99_ms"] <= args.step_p99_bound_ms
                )
                step["sustained"] = good
                step["attempt"] = attempt + 1
                steps.append(step)
                log(f"step {rate}/s: " + _short(step) + ("" if good else "  <- not sustained"))
                if good:
                    break
                time.sleep(1.0)
            if step["lost"] == 0 and step["p99_ms"] <= TARGET_P99_MS and step["achieved_rate"] >= 0.95 * rate:
                meets_p99 = max(meets_p99, rate)
            if not good:
                break
            sustained = rate
            time.sleep(1.0)
        result["steps"] = steps
        result["highest_sustained_rate"] = sustained if steps else None
        result["highest_rate_meeting_p99_target"] = meets_p99 if steps else None

        # 3. one event to N clients, N = --broadcast-clients
        rss_base = rss_kb(self.b_worker)
        if args.broadcast_clients <= 0:
            result["workers_restarted"] = not self.workers_unchanged()
            result["loadavg_end"] = loadavg()
            return result
        connected = self.connect(args.broadcast_clients)
        log(
            f"connected {connected['alive']} clients to B in {connected['seconds']} s "
            f"(connect p99 {connected['connect_ms_p99']} ms, errors {connected['errors']})"
        )
        time.sleep(2.0)
        rss_broadcast = rss_kb(self.b_worker)
        rate = 1 / args.broadcast_interval
        broadcast = self.measure("broadcast", rate, args.broadcast_events, args.drain)
        log(f"broadcast to {connected['alive']}: " + _short(broadcast))
        if args.profile:
            worker = [(self.b_worker, "broadcast-B")]
            profiled = self.measure(
                "broadcast-profiled", rate, args.broadcast_events, args.drain, profile=worker
            )
            log("(profiled run, not counted) " + _short(profiled))
        broadcast["connect"] = connected
        broadcast["b_worker_rss_kb"] = rss_broadcast
        result["broadcast"] = broadcast

        # 4. idle connections on one gevent worker
        idle: dict[str, Any] = {"target_connections": args.idle_clients, "b_worker_rss_kb_base": rss_base}
        result["idle"] = idle
        if args.idle_clients <= args.broadcast_clients:
            log("idle: skipped (--idle-clients <= --broadcast-clients)")
        elif self.time_left() < args.hold + 60:
            log("idle: out of time budget, skipped")
        else:
            connected = self.connect(args.idle_clients)
            idle["connect"] = connected
            log(
                f"connected {connected['alive']} clients to B in {connected['seconds']} s "
                f"(connect p50 {connected['connect_ms_p50']} ms, p99 {connected['connect_ms_p99']} ms, "
                f"errors {connected['errors']})"
            )
            time.sleep(2.0)
            idle["b_worker_rss_kb_connected"] = rss_kb(self.b_worker)
            idle["b_worker_fds"] = fd_count(self.b_worker)
            self.cpu.lap()
            samples = []
            hold_end = time.monotonic() + args.hold
            while time.monotonic() < hold_end:
                time.sleep(min(5.0, max(0.0, hold_end - time.monotonic())))
                samples.append({"rss_kb": rss_kb(self.b_worker), "alive": self.status()["alive"]})
            idle["hold_seconds"] = args.hold
            idle["hold_cpu_cores"] = self.cpu.lap()
            idle["hold_samples"] = samples
            status = self.status()
            idle["status_after_hold"] = status
            idle["b_worker_rss_kb_held"] = rss_kb(self.b_worker)
            rate, drain = 1 / args.idle_interval, max(args.drain, 5.0)
            events = self.measure("idle", rate, args.idle_events, drain)
            if args.profile:
                worker = [(self.b_worker, "idle-broadcast-B")]
                profiled = self.measure("idle-profiled", rate, args.idle_events, drain, profile=worker)
                log("(profiled run, not counted) " + _short(profiled))
            idle["broadcast"] = events
            idle["alive"] = events["clients_alive_after"]
            n = max(1, connected["alive"] - args.clients)
            idle["rss_per_connection_kb"] = round((idle["b_worker_rss_kb_held"] - rss_base) / n, 1)
            idle["rss_per_connection_kb_at_connect"] = round(
                (idle["b_worker_rss_kb_connected"] - rss_base) / n, 1
            )
            log(
                f"idle: {status['alive']} alive after {args.hold:g}s "
                f"(each answered >= {status['pings_min']} pings), "
                f"B worker RSS {rss_base / 1024:.0f} -> {idle['b_worker_rss_kb_held'] / 1024:.0f} MiB "
                f"= {idle['rss_per_connection_kb']} KiB/connection; hold CPU {idle['hold_cpu_cores']}"
            )
            log(f"broadcast to {status['alive']}: " + _short(events))

            # How long B is busy tearing down every connection when all clients leave at once (a
            # reconnect storm starts like this): until its sockets are released and its CPU settles.
            assert self.receiver is not None
            fds_before = fd_count(self.b_worker)
            cpu_start = cpu_seconds(self.b_worker)
            started = time.monotonic()
            self.receiver.request({"cmd": "close"}, timeout=60)
            released = None
            busy_until = started
            last = (started, cpu_start)
            while time.monotonic() - started < 60:
                time.sleep(0.5)
                now = (time.monotonic(), cpu_seconds(self.b_worker))
                if released is None and fd_count(self.b_worker) <= fds_before - connected["alive"] + 20:
                    released = now[0] - started
                if (now[1] - last[1]) / (now[0] - last[0]) > 0.1:  # still more than 10 % busy
                    busy_until = now[0]
                elif released is not None:
                    break
                last = now
            idle["disconnect_fds_released_s"] = round(released, 2) if released is not None else None
            idle["disconnect_busy_s"] = round(busy_until - started, 2)
            idle["disconnect_b_cpu_s"] = round(cpu_seconds(self.b_worker) - cpu_start, 2)
            log(
                f"all {connected['alive']} clients closed: B released the sockets in "
                f"{idle['disconnect_fds_released_s']} s, stayed busy {idle['disconnect_busy_s']} s "
                f"({idle['disconnect_b_cpu_s']} s CPU)"
            )

        result["workers_restarted"] = not self.workers_unchanged()
        result["loadavg_end"] = loadavg()
        return result

    @staticmethod
    def log(message: str) -> None:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()


def _short(f: dict[str, Any]) -> str:
    return (
        f"p50 {f['p50_ms']} / p99 {f['p99_ms']} / max {f['max_ms']} ms, lost {f['lost']}/{f['expected']}, "
        f"achieved {f['achieved_rate']}/s, REST p50 {f['rest_p50_ms']} / p99 {f['rest_p99_ms']} ms, "
        f"sender lag p99 {f['sender_lag_p99_ms']} ms, reach-all p50 {f['reach_all_p50_ms']} / max "
        f"{f['reach_all_max_ms']} ms, CPU/create A {f.get('a_cpu_us_per_create')} us, CPU/delivery B "
        f"{f.get('b_cpu_us_per_delivery')} us, cores {_cores(f['cpu_cores'])}"
    )


def _cores(cpu: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.2f}" for k, v in cpu.items() if v >= 0.01 and k != "window_s")


def verdicts(result: dict[str, Any], args: argparse.Namespace) -> dict[str, bool | None]:
    """One boolean per target of the issue; None when its phase did not run."""
    target = result.get("target")
    broadcast = result.get("broadcast")
    idle_events = (result.get("idle") or {}).get("broadcast")
    verdict: dict[str, bool | None] = dict.fromkeys(
        ("rate_p99_le_15ms", "rate_zero_lost", "idle_10000_held", "broadcast_1000_p99_le_250ms")
    )
    if target:
        verdict["rate_p99_le_15ms"] = args.rate >= TARGET_RATE and target["p99_ms"] <= TARGET_P99_MS
        verdict["rate_zero_lost"] = target["lost_all_runs"] == 0 and target["rest_errors_all_runs"] == 0
    if idle_events:
        verdict["idle_10000_held"] = (
            result["idle"].get("alive", 0) >= TARGET_IDLE_CONNECTIONS and idle_events["lost"] == 0
        )
    if broadcast:
        verdict["broadcast_1000_p99_le_250ms"] = (
            broadcast["clients"] >= TARGET_BROADCAST_CLIENTS
            and broadcast["lost"] == 0
            and broadcast["p99_ms"] <= TARGET_BROADCAST_P99_MS
        )
    return verdict


def parse_args(argv: Iterable[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="creates/s of the target phase")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of the target phase")
    parser.add_argument("--target-runs", type=int, default=3, help="runs of the target phase")
    parser.add_argument("--clients", type=int, default=4, help="clients on B during the rate phases")
    parser.add_argument("--connections", type=int, default=16, help="HTTP connections of the load generator")
    parser.add_argument("--steps", default=DEFAULT_STEPS, help="comma-separated rates of the step phase")
    parser.add_argument("--step-duration", type=float, default=5.0)
    parser.add_argument(
        "--step-p99-bound-ms",
        type=float,
        default=100.0,
        help="a step whose p99 exceeds this is not sustained",
    )
    parser.add_argument("--step-retries", type=int, default=1, help="re-runs of a failed step")
    parser.add_argument("--drain", type=float, default=2.0, help="seconds to wait for late events")
    parser.add_argument("--broadcast-clients", type=int, default=TARGET_BROADCAST_CLIENTS)
    parser.add_argument("--broadcast-events", type=int, default=20)
    parser.add_argument("--broadcast-interval", type=float, default=0.5)
    parser.add_argument("--idle-clients", type=int, default=TARGET_IDLE_CONNECTIONS)
    parser.add_argument("--idle-events", type=int, default=5)
    parser.add_argument("--idle-interval", type=float, default=2.0)
    parser.add_argument("--hold", type=float, default=35.0, help="seconds the idle connections are held")
    parser.add_argument("--connect-concurrency", type=int, default=100)
    parser.add_argument(
        "--adapter",
        choices=sorted(APP_MODULES),
        default="mongodb",
        help="messages on SecantusDB (the app as configured) or in memory (no database in the path)",
    )
    parser.add_argument(
        "--no-fresh-db",
        dest="fresh_db",
        action="store_false",
        help="do not restart SecantusDB before each rate run (it slows down after ~10k writes)",
    )
    parser.add_argument("--worker-class", help="gunicorn -k for both instances (experiments)")
    parser.add_argument("--server-pythonpath", help="prepended to the instances' PYTHONPATH (experiments)")
    parser.add_argument("--quiet-wait", type=float, default=20.0, help="max s to wait for a quiet machine")
    parser.add_argument(
        "--quiet-threshold", type=float, default=0.3, help="others' cores that count as quiet"
    )
    parser.add_argument("--max-seconds", type=float, default=900.0, help="overall time budget")
    parser.add_argument("--logdir", help="keep server logs here (default: a temporary folder, removed)")
    parser.add_argument("--profile", metavar="DIR", help="py-spy raw profiles of the workers into DIR")
    return parser.parse_args(list(argv) if argv is not None else None)


def main(argv: Iterable[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    nofile = raise_nofile_limit(NOFILE)  # inherited by the servers and the client process
    if nofile < args.idle_clients + 1000:
        logger.warning("RLIMIT_NOFILE is %d: too low for %d connections", nofile, args.idle_clients)
    keep = args.logdir is not None
    logdir = Path(args.logdir) if keep else Path(tempfile.mkdtemp(prefix="kdk-fanout-"))
    logdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result: dict[str, Any] = {
        "bench": "fanout",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine_info(),
        "nofile": nofile,
        "settings": {k: v for k, v in vars(args).items() if k not in ("logdir", "profile")},
    }
    bench = Bench(args, logdir)
    status = 0
    try:
        result.update(bench.run())
    except Exception as exc:
        logger.exception("fanout bench failed")
        result["error"] = repr(exc)
        status = 1
    finally:
        bench.stop()
        if not keep and status == 0:
            shutil.rmtree(logdir, ignore_errors=True)
    result["seconds"] = round(time.monotonic() - started, 1)
    result["targets"] = verdicts(result, args)
    sys.stdout.write("BENCH_RESULT " + json.dumps(result, separators=(",", ":")) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
