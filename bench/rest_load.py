"""The HTTP side of bench/rest.py and bench/scale.py: servers under test, and wrk runs on them.

A :class:`Server` is one app as the benches see it: one or more processes, the base URLs to load
(two for the Node anchor: two processes on two ports, no load balancer) and the PIDs whose CPU
time counts. :func:`run_wrk_split` drives every base URL with its own wrk and its share of the
connections at once, sums the rates and keeps the worse percentiles.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import child_environment
from kdk_app.embedded import ManagedProcess, free_port

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
WRK_SCRIPT = BENCH_DIR / "rest_wrk.lua"
WRK_INSTALL_HINT = "apt-get update && apt-get install -y wrk"
KDK_GUNICORN_CONF = "gunicorn.conf.py"
# The same settings for apps that are not kdk-app (its worker hook refuses them).
OTHER_GUNICORN_CONF = "bench/rest_gunicorn_conf.py"
WORKERS = 2
APP_START_TIMEOUT = 60.0


@dataclass
class Figures:
    """Throughput and latency of one scenario (aggregated over its rounds for HTTP)."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int = 0
    rounds_rps: list[float] = field(default_factory=list)
    # CPU time per request (µs) of the app's workers (or raw pymongo processes), and of the DB.
    app_cpu_us: float | None = None
    db_cpu_us: float | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "requests": self.requests,
            "errors": self.errors,
            "app_cpu_us": None if self.app_cpu_us is None else round(self.app_cpu_us, 1),
            "db_cpu_us": None if self.db_cpu_us is None else round(self.db_cpu_us, 1),
        }
        if self.rounds_rps:
            data["rounds_rps"] = [round(v, 1) for v in self.rounds_rps]
        return data


@dataclass
class WrkRun:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    seconds: float
    errors: int
    app_cpu_s: float = 0.0
    db_cpu_s: float = 0.0


# -- processes -----------------------------------------------------------------------------------


def process_cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (their threads included)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (the workers of a gunicorn master)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def rss_kib(pids: Sequence[int]) -> int:
    """Resident memory (VmRSS) of ``pids``, summed, in KiB."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total


@dataclass
class Server:
    """One app under test: its processes, the base URLs to load, and which PIDs do the work."""

    name: str
    processes: list[ManagedProcess]
    bases: list[str]
    ids_file: Path
    gunicorn: bool = True  # the work is done by the workers (children), not the master

    def work_pids(self) -> list[int]:
        pids = [p.pid for p in self.processes if p.pid]
        if self.gunicorn:
            return [c for pid in pids for c in child_pids(pid)]
        return pids

    def stop(self, timeout: float = 10) -> None:
        for process in self.processes:
            process.stop(timeout)


def http_call(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def start_gunicorn(
    name: str, module: str, env: dict[str, str], logdir: Path, ids_file: Path, kdk: bool = True
) -> Server:
    """``gunicorn -w 2 module`` (gunicorn.conf.py's worker) on a port of its own (not waited for:
    see wait_ready)."""
    port = free_port()
    environment = child_environment(
        {
            **env,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "WEB_CONCURRENCY": str(WORKERS),
            "PYTHONUNBUFFERED": "1",
        }
    )
    args = [sys.executable, "-m", "gunicorn", "-c", KDK_GUNICORN_CONF if kdk else OTHER_GUNICORN_CONF]
    # A control socket each: servers must not share ~/.gunicorn/gunicorn.ctl.
    args += ["--control-socket", str(logdir / f"{name}.ctl")]
    args += ["-w", str(WORKERS), module]
    process = ManagedProcess(
        args, name=f"gunicorn-{name}", log_path=logdir / f"{name}.log", env=environment, cwd=REPO_ROOT
    )
    return Server(name, [process.start()], [f"http://127.0.0.1:{port}"], ids_file)


def start_floor_pywsgi(name: str, logdir: Path, ids_file: Path) -> Server:
    """Two gevent.pywsgi processes serving the floor callable on one SO_REUSEPORT port."""
    port = free_port()
    processes = []
    for index in range(WORKERS):
        process = ManagedProcess(
            [sys.executable, "-m", "bench.rest_app_floor", "--port", str(port)],
            name=f"{name}-{index}",
            log_path=logdir / f"{name}-{index}.log",
            env=child_environment({"PYTHONUNBUFFERED": "1"}),
            cwd=REPO_ROOT,
        )
        processes.append(process.start())
    return Server(name, processes, [f"http://127.0.0.1:{port}"], ids_file, gunicorn=False)


def _answers_200(url: str) -> bool:
    return http_call(url)[0] == 200


def wait_ready(server: Server, path: str = "/messages?$limit=1") -> None:
    """Poll every base URL of ``server`` until it answers 200 (fails if its process exits)."""
    for base in server.bases:
        server.processes[0].wait_ready(functools.partial(_answers_200, f"{base}{path}"), APP_START_TIMEOUT)


def stop_all(servers: Sequence[Server]) -> None:
    for server in servers:
        try:
            server.stop()
        except Exception:
            logger.exception("could not stop %s", server.name)


# -- wrk -----------------------------------------------------------------------------------------


def check_wrk() -> str:
    """wrk's path; without it, exit with status 2 and the install command."""
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.stderr.write(
            "this bench needs the wrk load generator, which is not on PATH.\n"
            f"Install it with: {WRK_INSTALL_HINT}\n"
            "(No Python fallback: a Python load generator would take CPU from the servers under "
            "test on a small machine and skew every ratio.)\n"
        )
        sys.exit(2)
    return wrk


def _wrk_args(wrk: str, base: str, seconds: int, connections: int, threads: int) -> list[str]:
    threads = max(1, min(threads, connections))
    args = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    return args + ["-s", str(WRK_SCRIPT), base]


def _parse(done: subprocess.CompletedProcess[str]) -> WrkRun:
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    result = json.loads(line.removeprefix("WRK_JSON "))
    elapsed = result["duration_us"] / 1e6
    return WrkRun(
        rps=result["requests"] / elapsed,
        p50_ms=result["p50_us"] / 1e3,
        p99_ms=result["p99_us"] / 1e3,
        requests=result["requests"],
        seconds=elapsed,
        errors=sum(result["errors"].values()),
    )


def run_wrk(
    wrk: str, base: str, mode: str, seconds: int, connections: int, threads: int, ids_file: Path
) -> WrkRun:
    """One wrk run of ``mode`` (rest_wrk.lua: get | find | create) against ``base``."""
    return run_wrk_split(wrk, [base], mode, seconds, connections, threads, ids_file)


def split(total: int, parts: int) -> list[int]:
    """``total`` connections shared out over ``parts`` servers (none with zero)."""
    shares = [total // parts + (1 if i < total % parts else 0) for i in range(parts)]
    return [s for s in shares if s > 0]


def run_wrk_split(
    wrk: str,
    bases: Sequence[str],
    mode: str,
    seconds: int,
    connections: int,
    threads: int,
    ids_file: Path,
) -> WrkRun:
    """One wrk per base URL at once, each with its share of connections and threads.

    The rates are summed; p50 and p99 are the worse of the runs (the anchor's README rule).
    """
    env = {**os.environ, "BENCH_MODE": mode, "BENCH_IDS_FILE": str(ids_file)}
    shares = split(connections, len(bases))
    thread_shares = split(max(threads, len(shares)), len(shares))
    running = [
        subprocess.Popen(
            _wrk_args(wrk, base, seconds, share, thread_share),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for base, share, thread_share in zip(bases, shares, thread_shares, strict=False)
    ]
    runs = []
    try:
        for popen in running:
            out, err = popen.communicate(timeout=seconds + 30)
            runs.append(_parse(subprocess.CompletedProcess(popen.args, popen.returncode, out, err)))
    finally:
        for popen in running:
            if popen.poll() is None:
                popen.kill()  # by PID, only the wrk processes started here
                popen.wait()
    if len(runs) == 1:
        return runs[0]
    rps = sum(r.rps for r in runs)
    requests = sum(r.requests for r in runs)
    return WrkRun(
        rps=rps,
        p50_ms=max(r.p50_ms for r in runs),
        p99_ms=max(r.p99_ms for r in runs),
        requests=requests,
        seconds=requests / rps if rps else statistics.mean(r.seconds for r in runs),
        errors=sum(r.errors for r in runs),
    )


def load(
    server: Server,
    wrk: str,
    mode: str,
    seconds: int,
    connections: int,
    threads: int,
    db_pid: int | None = None,
) -> WrkRun:
    """One wrk run on ``server``, with the CPU time its workers (and the database) spent on it."""
    pids = server.work_pids()
    db_pids = [db_pid] if db_pid else []
    app0, db0 = process_cpu_seconds(pids), process_cpu_seconds(db_pids)
    run = run_wrk_split(wrk, server.bases, mode, seconds, connections, threads, server.ids_file)
    run.app_cpu_s = process_cpu_seconds(pids) - app0
    run.db_cpu_s = process_cpu_seconds(db_pids) - db0
    return run


def aggregate(runs: list[WrkRun]) -> Figures:
    """Rounds of one scenario: total requests over total time; median p50 and p99 of the rounds."""
    requests = max(1, sum(r.requests for r in runs))
    return Figures(
        rps=sum(r.requests for r in runs) / sum(r.seconds for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        requests=sum(r.requests for r in runs),
        errors=sum(r.errors for r in runs),
        rounds_rps=[r.rps for r in runs],
        app_cpu_us=sum(r.app_cpu_s for r in runs) / requests * 1e6,
        db_cpu_us=sum(r.db_cpu_s for r in runs) / requests * 1e6,
    )


def alternate(
    servers: Sequence[Server],
    rounds: int,
    round_seconds: int,
    warmup: int,
    run_one: Callable[[Server, int], WrkRun],
    after_each: Callable[[], None] | None = None,
) -> dict[str, list[WrkRun]]:
    """Short rounds of every server in turn, the order reversed every other round (ABBA…), so
    background load and drift hit all alike. ``run_one(server, seconds)``; warm-up discarded."""
    if warmup:
        for server in servers:
            run_one(server, warmup)
            if after_each:
                after_each()
    runs: dict[str, list[WrkRun]] = {s.name: [] for s in servers}
    for index in range(rounds):
        for server in servers if index % 2 == 0 else list(reversed(servers)):
            runs[server.name].append(run_one(server, round_seconds))
            if after_each:
                after_each()
    return runs
