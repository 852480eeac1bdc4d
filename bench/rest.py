"""REST benchmark of kdk-app against hand-written baselines, on SecantusDB and in memory.

    .venv/bin/python bench/rest.py [--rounds 4] [--round-seconds 2] [--connections 32]

Starts SecantusDB (in memory) and seeds 200 messages, then measures:

- raw pymongo in this process, one call at a time (``find_one`` by ``_id``; ``count_documents``
  + ``find().limit(10)``; ``insert_one``): the latency floor of each database call;
- raw pymongo at the HTTP scenarios' concurrency: 2 processes (as the 2 gunicorn workers) of
  connections/2 gevent greenlets each: what the database delivers with no HTTP in the loop;
- over HTTP with wrk, every app under gunicorn ``-k gevent -w 2`` (gunicorn.conf.py):
  kdk-app (``wsgi:app``) against a hand-written Flask view on pymongo, for GET by id, find with a
  filter and ``$limit=10``, and create; then kdk-app with ``messages`` on MemoryService against a
  hand-written Flask view on a dict, for the two reads. Framework and baseline alternate in
  short rounds, so background load or drift hits both alike; ratios are medians of the rounds.

Prints req/s, p50/p99 and the ratios against the targets, and ends with one line
``BENCH_RESULT {json}``. Needs ``wrk`` (Debian: ``apt-get install -y wrk``); without it the
script exits with status 2 and says so, rather than falling back to a Python load generator that
would take CPU from the servers under test. Every process it starts is stopped by PID.
See bench/README.md for the interpretation of the targets and recorded figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: bench/ is on sys.path, the repo is not
    sys.path.insert(0, str(REPO_ROOT))

import pymongo  # noqa: E402
from bson import ObjectId  # noqa: E402
from pymongo.collection import Collection  # noqa: E402

from bench.common import child_environment, percentile  # noqa: E402
from bench.rest_common import (  # noqa: E402
    COLLECTION,
    SEED_FILE_VARIABLE,
    raw_operation,
    seed_records,
)
from kdk_app.embedded import MEMORY_STORAGE, ManagedProcess, free_port, start_secantusdb  # noqa: E402

logger = logging.getLogger("bench.rest")

BENCH_DIR = Path(__file__).resolve().parent
WRK_SCRIPT = BENCH_DIR / "rest_wrk.lua"
WRK_INSTALL_HINT = "apt-get update && apt-get install -y wrk"
DATABASE = "bench"
WORKERS = 2
APP_START_TIMEOUT = 60.0
RAW_START_DELAY = 2.5  # seconds for the raw pymongo processes to import and connect
# Inherited variables that would point the apps at other servers or another configuration.

# The four HTTP servers: name -> gunicorn app.
APPS = {
    "kdk_mongo": "wsgi:app",
    "flask_mongo": "bench.rest_app_flask_mongo:app",
    "kdk_memory": "bench.rest_app_kdk_memory:app",
    "flask_dict": "bench.rest_app_flask_dict:app",
}
# (framework, baseline) pairs, compared round by round, and the modes each pair runs.
PAIRS = [
    (("kdk_mongo", "flask_mongo"), ("get", "find", "create")),
    (("kdk_memory", "flask_dict"), ("get", "find")),
]
TARGETS = {
    # target name: (ratio key, bound)
    "get_ge_0.9x_flask_view": ("kdk_get/flask_view_get", 0.9),
    # Our reading of "≥ 0.85 × raw pymongo": same database, concurrency and process layout.
    "get_ge_0.85x_raw_pymongo": ("kdk_get/raw_pymongo_get", 0.85),
    # The literal reading, against one in-process find_one loop: reported, not our target.
    "get_ge_0.85x_raw_pymongo_serial_literal": ("kdk_get/raw_pymongo_serial_get", 0.85),
    "memory_get_ge_0.8x_dict_view": ("kdk_memory_get/dict_view_get", 0.8),
    "memory_find_ge_0.8x_dict_view": ("kdk_memory_find/dict_view_find", 0.8),
}


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


# -- environment ---------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    wrk_lines = (wrk.stdout or wrk.stderr).splitlines()
    total_memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(total_memory / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": wrk_lines[0].split(" Copyright")[0] if wrk_lines else "",
        "pymongo": pymongo.version,
    }


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy over ``seconds`` (from /proc/stat; 0.0 where unavailable)."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def process_cpu_seconds(pids: list[int]) -> float:
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


def wait_until_idle(timeout: float, threshold: float = 0.15) -> float:
    """Wait up to ``timeout`` s for 3 consecutive seconds under ``threshold`` busy; last reading."""
    deadline = time.monotonic() + timeout
    quiet = 0
    busy = cpu_busy()
    while time.monotonic() < deadline and quiet < 3:
        quiet = quiet + 1 if busy < threshold else 0
        if quiet < 3:
            busy = cpu_busy()
    return busy


def code_state() -> dict[str, Any]:
    """The commit under test, and the paths where the working tree differs from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        return done.stdout.rstrip() if done.returncode == 0 else ""

    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if line[3:]]
    return {"commit": git("rev-parse", "--short", "HEAD"), "changed_paths": changed}


# -- database ------------------------------------------------------------------------------------


def seed(collection: Collection, workdir: Path) -> tuple[list[ObjectId], Path, Path]:
    """Insert the 200 messages; write the ids file (wrk) and the seed file (memory apps)."""
    collection.drop()
    records = seed_records()
    for record in records:
        record["_id"] = ObjectId()
    collection.insert_many(records)
    collection.create_index("tag")  # the index kdk's MongoService declares for `messages`
    ids = [r["_id"] for r in records]
    ids_file = workdir / "ids.txt"
    ids_file.write_text("".join(f"{i}\n" for i in ids))
    seed_file = workdir / "seed.json"
    seed_file.write_text(json.dumps([{**r, "_id": str(r["_id"])} for r in records]))
    return ids, ids_file, seed_file


def remove_created(collection: Collection, seed_ids: list[ObjectId]) -> int:
    """Delete what a create scenario added, so every scenario sees the same 200 records."""
    return collection.delete_many({"_id": {"$nin": seed_ids}}).deleted_count


# -- raw pymongo ---------------------------------------------------------------------------------


def raw_serial(
    mode: str, collection: Collection, ids: list[ObjectId], duration: float, db_pid: int
) -> Figures:
    """One call at a time, in this process: ops/s and latency of the bare driver call."""
    op = raw_operation(mode, collection, ids)
    for i in range(200):  # warm-up
        op(i)
    latencies: list[float] = []
    cpu0, db0 = time.process_time(), process_cpu_seconds([db_pid])
    started = time.perf_counter()
    stop_at = started + duration
    i = 200
    while True:
        t0 = time.perf_counter()
        if t0 >= stop_at:
            break
        op(i)
        i += 1
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    cpu, db = time.process_time() - cpu0, process_cpu_seconds([db_pid]) - db0
    latencies.sort()
    count = max(1, len(latencies))
    return Figures(
        rps=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 50) * 1e3,
        p99_ms=percentile(latencies, 99) * 1e3,
        requests=len(latencies),
        app_cpu_us=cpu / count * 1e6,
        db_cpu_us=db / count * 1e6,
    )


def raw_concurrent(
    mode: str,
    url: str,
    ids_file: Path,
    concurrency: int,
    duration: float,
    warmup: float,
    logdir: Path,
    db_pid: int,
) -> Figures:
    """``WORKERS`` processes of gevent greenlets making the driver call (rest_pymongo_load.py)."""
    start_at = time.time() + RAW_START_DELAY
    per_process = max(1, concurrency // WORKERS)
    processes: list[subprocess.Popen[str]] = []
    outputs: list[str] = []
    try:
        for index in range(WORKERS):
            args = [sys.executable, "-m", "bench.rest_pymongo_load", "--url", url]
            args += ["--ids-file", str(ids_file), "--mode", mode, "--greenlets", str(per_process)]
            args += ["--start-at", repr(start_at), "--warmup", str(warmup), "--duration", str(duration)]
            args += ["--offset", str(index * 10**8)]
            with open(logdir / f"rest_pymongo_load-{mode}-{index}.log", "w") as log:
                processes.append(
                    subprocess.Popen(
                        args,
                        cwd=REPO_ROOT,
                        stdout=subprocess.PIPE,
                        stderr=log,
                        text=True,
                        env=child_environment({}),
                    )
                )
        # The database's CPU over the measured window (the processes measure their own).
        time.sleep(max(0.0, start_at + warmup - time.time()))
        db0 = process_cpu_seconds([db_pid])
        time.sleep(max(0.0, start_at + warmup + duration - time.time()))
        db_cpu = process_cpu_seconds([db_pid]) - db0
        for process in processes:
            out, _ = process.communicate(timeout=start_at - time.time() + warmup + duration + 30)
            if process.returncode != 0:
                raise RuntimeError(f"rest_pymongo_load exited with {process.returncode}; see {logdir}")
            outputs.append(out)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()  # by PID, only the processes started here
                process.wait()
    results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    latencies = sorted(v for r in results for v in r["latencies_us"])
    count = max(1, len(latencies))
    return Figures(
        rps=len(latencies) / duration,
        p50_ms=percentile(latencies, 50) / 1e3,
        p99_ms=percentile(latencies, 99) / 1e3,
        requests=len(latencies),
        app_cpu_us=sum(r["cpu_s"] for r in results) / count * 1e6,
        db_cpu_us=db_cpu / count * 1e6,
    )


# -- HTTP ----------------------------------------------------------------------------------------


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


def start_apps(mongo_url: str, seed_file: Path, workdir: Path) -> dict[str, tuple[ManagedProcess, str]]:
    """Start every gunicorn server at once, then wait for each; stop them all if one fails."""
    servers: dict[str, tuple[ManagedProcess, str]] = {}
    jwt_secret = secrets.token_hex(32)  # as in production: one secret shared by the workers
    try:
        for name, module in APPS.items():
            port = free_port()
            env = child_environment(
                {
                    "PORT": str(port),
                    "HOST": "127.0.0.1",
                    "MONGO_URL": mongo_url,
                    "WEB_CONCURRENCY": str(WORKERS),
                    "KDK_ENV": "development",
                    "JWT_SECRET": jwt_secret,
                    "PYTHONUNBUFFERED": "1",
                    SEED_FILE_VARIABLE: str(seed_file),
                }
            )
            args = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
            # A control socket each: four servers must not share ~/.gunicorn/gunicorn.ctl.
            args += ["--control-socket", str(workdir / f"{name}.ctl")]
            args += ["-w", str(WORKERS), "-k", "gevent", module]
            process = ManagedProcess(
                args,
                name=f"gunicorn-{name}",
                log_path=workdir / "logs" / f"{name}.log",
                env=env,
                cwd=REPO_ROOT,
            )
            servers[name] = (process.start(), f"http://127.0.0.1:{port}")
        for process, base in servers.values():
            probe = f"{base}/messages?$limit=1"
            process.wait_ready(lambda probe=probe: http_call(probe)[0] == 200, APP_START_TIMEOUT)
    except BaseException:
        stop_apps(servers)
        raise
    return servers


def stop_apps(servers: dict[str, tuple[ManagedProcess, str]]) -> None:
    """Stop the servers in parallel (each takes a second or two to shut down gracefully)."""
    with ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
        for future in [pool.submit(process.stop, 10) for process, _ in servers.values()]:
            try:
                future.result()
            except Exception:
                logger.exception("could not stop an app server")


def smoke_check(servers: dict[str, tuple[ManagedProcess, str]], seed_ids: list[ObjectId]) -> None:
    """Framework and baseline must give the same answers, or the comparison means nothing."""
    some_id = str(seed_ids[7])
    for framework, baseline in (pair for pair, _ in PAIRS):
        answers = {}
        for name in (framework, baseline):
            base = servers[name][1]
            status_get, record = http_call(f"{base}/messages/{some_id}")
            status_find, page = http_call(f"{base}/messages?tag=t3&$limit=10")
            if status_get != 200 or status_find != 200:
                raise RuntimeError(f"{name}: GET {status_get}, find {status_find}")
            answers[name] = (record, {k: v for k, v in page.items() if k != "data"}, len(page["data"]))
        if answers[framework] != answers[baseline]:
            raise RuntimeError(f"{framework} and {baseline} disagree: {answers}")
    for name in ("kdk_mongo", "flask_mongo"):
        status, created = http_call(f"{servers[name][1]}/messages", "POST", {"text": "smoke", "n": 1})
        if status != 201 or created.get("text") != "smoke" or not created.get("_id"):
            raise RuntimeError(f"{name}: create answered {status} {created}")


def check_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.stderr.write(
            "bench/rest.py needs the wrk load generator, which is not on PATH.\n"
            f"Install it with: {WRK_INSTALL_HINT}\n"
            "(No Python fallback: a Python load generator would take CPU from the servers under "
            "test on a small machine and skew every ratio.)\n"
        )
        sys.exit(2)
    return wrk


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


def run_wrk(
    wrk: str, base: str, mode: str, seconds: int, connections: int, threads: int, ids_file: Path
) -> WrkRun:
    args = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    args += ["-s", str(WRK_SCRIPT), base]
    env = {**os.environ, "BENCH_MODE": mode, "BENCH_IDS_FILE": str(ids_file)}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=seconds + 30, check=False)
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


# -- report --------------------------------------------------------------------------------------


def compute_ratios(results: dict[str, Figures]) -> dict[str, float | None]:
    """Framework over baseline. Interleaved pairs: median of the per-round ratios."""

    def over(a: str, b: str) -> float | None:
        fa, fb = results.get(a), results.get(b)
        if fa is None or fb is None or not fb.rps:
            return None
        if fa.rounds_rps and len(fa.rounds_rps) == len(fb.rounds_rps):
            return round(
                statistics.median(x / y for x, y in zip(fa.rounds_rps, fb.rounds_rps, strict=True)), 3
            )
        return round(fa.rps / fb.rps, 3)

    return {
        "kdk_get/flask_view_get": over("kdk_mongo.get", "flask_mongo.get"),
        "kdk_get/raw_pymongo_get": over("kdk_mongo.get", "raw_pymongo.get"),
        "kdk_get/raw_pymongo_serial_get": over("kdk_mongo.get", "raw_pymongo_serial.get"),
        "flask_view_get/raw_pymongo_get": over("flask_mongo.get", "raw_pymongo.get"),
        "kdk_find/flask_view_find": over("kdk_mongo.find", "flask_mongo.find"),
        "kdk_find/raw_pymongo_find": over("kdk_mongo.find", "raw_pymongo.find"),
        "kdk_create/flask_view_create": over("kdk_mongo.create", "flask_mongo.create"),
        "kdk_create/raw_pymongo_create": over("kdk_mongo.create", "raw_pymongo.create"),
        "kdk_memory_get/dict_view_get": over("kdk_memory.get", "flask_dict.get"),
        "kdk_memory_find/dict_view_find": over("kdk_memory.find", "flask_dict.find"),
    }


CPU_PAIRS = {
    "kdk_get/flask_view_get": ("kdk_mongo.get", "flask_mongo.get"),
    "kdk_find/flask_view_find": ("kdk_mongo.find", "flask_mongo.find"),
    "kdk_create/flask_view_create": ("kdk_mongo.create", "flask_mongo.create"),
    "kdk_memory_get/dict_view_get": ("kdk_memory.get", "flask_dict.get"),
    "kdk_memory_find/dict_view_find": ("kdk_memory.find", "flask_dict.find"),
}


def compute_cpu_ratios(results: dict[str, Figures]) -> dict[str, dict[str, float | None]]:
    """Per pair: server CPU per request (app workers + database) of baseline over framework,
    i.e. the throughput ratio to expect when the servers are CPU-bound, and the framework's
    extra app CPU per request. Much less sensitive to other load on the machine than req/s."""
    out: dict[str, dict[str, float | None]] = {}
    for key, (a, b) in CPU_PAIRS.items():
        fa, fb = results.get(a), results.get(b)
        if fa is None or fb is None or fa.app_cpu_us is None or fb.app_cpu_us is None:
            continue
        total_a = fa.app_cpu_us + (fa.db_cpu_us or 0.0)
        total_b = fb.app_cpu_us + (fb.db_cpu_us or 0.0)
        out[key] = {
            "cpu_ratio": round(total_b / total_a, 3) if total_a else None,
            "extra_app_cpu_us": round(fa.app_cpu_us - fb.app_cpu_us, 1),
        }
    return out


def check_targets(ratios: dict[str, float | None]) -> dict[str, bool]:
    targets = {}
    for name, (key, bound) in TARGETS.items():
        value = ratios.get(key)
        targets[name] = value is not None and value >= bound
    targets["framework_reads_ge_0.8x_dict_view"] = (
        targets["memory_get_ge_0.8x_dict_view"] and targets["memory_find_ge_0.8x_dict_view"]
    )
    return targets


def write_report(result: dict[str, Any], results: dict[str, Figures]) -> None:
    out = sys.stdout.write
    settings, machine, code = result["settings"], result["machine"], result["code"]
    out(f"\nkdk-app REST benchmark, {result['date']}\n")
    out(
        f"machine: {machine['cpus']} CPU ({machine['cpu_model']}), {machine['memory_gb']} GB, "
        f"Python {machine['python']}, {machine['wrk']}\n"
    )
    dirty = f" + {len(code['changed_paths'])} changed paths" if code["changed_paths"] else ""
    out(f"code: commit {code['commit']}{dirty}\n")
    out(
        f"settings: gunicorn -k gevent -w {WORKERS}; "
        f"wrk -t{settings['threads']} -c{settings['connections']}, "
        f"{settings['rounds']} rounds x {settings['round_seconds']}s per scenario after "
        f"{settings['warmup_s']}s warm-up; SecantusDB in memory, {settings['seed']} messages\n"
    )
    busy = result["cpu_busy_before"]
    out(f"CPU busy before the run: {busy:.0%}; load average after: {result['load_average_after']:.2f}\n")
    if busy > 0.15:
        out(
            "WARNING: other processes were using the CPUs when the run started. Ratios are "
            "per-round medians of interleaved runs; absolute figures are not comparable.\n"
        )
    out(
        f"\n{'scenario':<26}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}{'errors':>7}"
        f"{'app CPU µs/req':>16}{'DB CPU µs/req':>15}\n"
    )
    for name, figures in results.items():
        app_cpu = "" if figures.app_cpu_us is None else f"{figures.app_cpu_us:.0f}"
        db_cpu = "" if figures.db_cpu_us is None else f"{figures.db_cpu_us:.0f}"
        out(
            f"{name:<26}{figures.rps:>8.0f}{figures.p50_ms:>9.2f}{figures.p99_ms:>9.2f}"
            f"{figures.requests:>10}{figures.errors:>7}{app_cpu:>16}{db_cpu:>15}\n"
        )
    out("\nratios (req/s over req/s; interleaved pairs: median of rounds)\n")
    for key, value in result["ratios"].items():
        out(f"  {key:<36}{'n/a' if value is None else f'{value:.3f}':>8}\n")
    out("\nCPU per request, baseline over framework (app + DB), and the framework's extra app CPU\n")
    for key, value in result["cpu_ratios"].items():
        out(f"  {key:<36}{value['cpu_ratio']:>8.3f}{value['extra_app_cpu_us']:>+10.0f} µs\n")
    out("\ntargets (req/s ratios)\n")
    for key, ok in result["targets"].items():
        out(f"  {key:<44}{'PASS' if ok else 'MISS':>6}\n")
    out("\n")


# -- main ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    wrk = check_wrk()
    if args.wait_idle:
        logger.info("waiting up to %ss for the machine to be idle", args.wait_idle)
    busy_before = wait_until_idle(args.wait_idle) if args.wait_idle else cpu_busy()
    if busy_before > 0.15:
        logger.warning("%.0f%% of the CPUs are busy before the run: figures will be noisy", busy_before * 100)
    workdir = Path(tempfile.mkdtemp(prefix="kdk-bench-rest-"))
    logdir = workdir / "logs"
    logdir.mkdir()
    results: dict[str, Figures] = {}
    started = time.monotonic()
    raw_seconds = args.rounds * args.round_seconds
    db_process, db_url = start_secantusdb(MEMORY_STORAGE, log_path=logdir / "secantusdb.log")
    db_pid = db_process.pid or 0
    servers: dict[str, tuple[ManagedProcess, str]] = {}
    failed = True
    try:
        mongo_url = f"{db_url}{DATABASE}"
        client: pymongo.MongoClient = pymongo.MongoClient(mongo_url, tz_aware=False)
        collection = client[DATABASE][COLLECTION]
        seed_ids, ids_file, seed_file = seed(collection, workdir)
        logger.info("seeded %d messages; starting %d app servers", len(seed_ids), len(APPS))
        servers = start_apps(mongo_url, seed_file, workdir)
        smoke_check(servers, seed_ids)
        remove_created(collection, seed_ids)

        for mode in ("get", "find", "create"):
            logger.info("raw pymongo %s: serial, then %d concurrent", mode, args.connections)
            results[f"raw_pymongo_serial.{mode}"] = raw_serial(
                mode, collection, seed_ids, args.serial_seconds, db_pid
            )
            remove_created(collection, seed_ids)
            results[f"raw_pymongo.{mode}"] = raw_concurrent(
                mode, mongo_url, ids_file, args.connections, raw_seconds, args.warmup, logdir, db_pid
            )
            remove_created(collection, seed_ids)

        def load(name: str, mode: str, seconds: int) -> WrkRun:
            """One wrk run, with the CPU time the app's workers and the database spent on it."""
            process, base = servers[name]
            workers = child_pids(process.pid or 0)
            app0, db0 = process_cpu_seconds(workers), process_cpu_seconds([db_pid])
            run = run_wrk(wrk, base, mode, seconds, args.connections, args.threads, ids_file)
            run.app_cpu_s = process_cpu_seconds(workers) - app0
            run.db_cpu_s = process_cpu_seconds([db_pid]) - db0
            return run

        for pair, modes in PAIRS:
            for mode in modes:
                logger.info("%s vs %s, %s: %d rounds", *pair, mode, args.rounds)
                if args.warmup:
                    for name in pair:
                        load(name, mode, args.warmup)
                runs: dict[str, list[WrkRun]] = {name: [] for name in pair}
                for index in range(args.rounds):
                    # Alternate who goes first, so neither always follows the other's writes.
                    for name in pair if index % 2 == 0 else reversed(pair):
                        runs[name].append(load(name, mode, args.round_seconds))
                        if mode == "create":
                            remove_created(collection, seed_ids)
                for name in pair:
                    results[f"{name}.{mode}"] = aggregate(runs[name])
        client.close()
        failed = False
    finally:
        stop_apps(servers)
        db_process.stop()
        if failed or args.keep_logs:
            logger.warning("logs kept in %s", logdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    ratios = compute_ratios(results)
    machine = machine_info()
    result = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine,
        "code": code_state(),
        "settings": {
            "workers": WORKERS,
            "worker_class": "gevent",
            "connections": args.connections,
            "threads": args.threads,
            "rounds": args.rounds,
            "round_seconds": args.round_seconds,
            "warmup_s": args.warmup,
            "serial_seconds": args.serial_seconds,
            "seed": len(seed_ids),
            "database": "SecantusDB (:memory:)",
        },
        "cpu_busy_before": round(busy_before, 3),
        "load_average_after": round(os.getloadavg()[0], 2),
        "elapsed_s": round(time.monotonic() - started, 1),
        "results": {k: v.to_json() for k, v in results.items()},
        "ratios": ratios,
        "cpu_ratios": compute_cpu_ratios(results),
        "targets": check_targets(ratios),
    }
    write_report(result, results)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per HTTP scenario")
    parser.add_argument("--round-seconds", type=int, default=2, help="seconds of load per round")
    parser.add_argument("--warmup", type=int, default=1, help="discarded seconds per app and scenario")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections / raw greenlets")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--serial-seconds", type=float, default=2.0, help="seconds per serial loop")
    parser.add_argument(
        "--wait-idle", type=float, default=0, help="wait up to this many seconds for an idle machine"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the server logs")
    args = parser.parse_args(argv)
    if not (
        1 <= args.rounds <= 10
        and 1 <= args.round_seconds <= 30
        and 0 <= args.warmup <= 10
        and 1 <= args.connections <= 256
        and 0 < args.serial_seconds <= 30
        and 0 <= args.wait_idle <= 3600
    ):
        parser.error("bounded load only: rounds 1-10, 1-30 s each, warm-up 0-10 s, 1-256 connections")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    result = run(args)
    sys.stdout.write("BENCH_RESULT " + json.dumps(result, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
