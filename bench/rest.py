"""REST benchmark of kdk-app against the Node Feathers anchor and hand-written baselines.

    .venv/bin/python bench/rest.py --node-anchor DIR [--only memory|mongo] [--rounds 4]
        [--round-seconds 2] [--connections 32]

Two groups of scenarios (``--only`` runs one of them):

- ``memory`` (the framework alone, no database): kdk-app with ``messages`` on MemoryService
  against the Node Feathers anchor (STORE=memory, two processes on two ports, a wrk each with
  half the connections, rates summed, the worse p99) for GET by id, find with a filter and
  ``$limit=10``, and create; a hand-written Flask view on a dict for the two reads; and the floor
  of the stack: a bare WSGI callable under the same gunicorn gevent layout, and under
  gevent.pywsgi alone. Both memory apps hold the anchor's 200 seeded records (same ids, bodies).
- ``mongo``: SecantusDB (in memory), 200 messages. Raw pymongo in this process (one call at a
  time), raw pymongo at the HTTP scenarios' concurrency (2 processes of connections/2 gevent
  greenlets: what the database delivers with no HTTP in the loop), then kdk-app (``wsgi:app``)
  against a hand-written Flask view on pymongo for GET by id, find and create.

Every app runs under gunicorn ``-w 2`` with gunicorn.conf.py's worker (the fair gevent one). The
servers of a scenario alternate in short rounds, so background load or drift hits all alike;
ratios are medians of the rounds. Prints req/s, p50/p99, the ratios against the targets (met / not
met), and ends with one line ``BENCH_RESULT {json}``. Needs ``wrk`` (Debian: ``apt-get install -y
wrk``); without it the script exits with status 2 and says so, rather than falling back to a
Python load generator that would take CPU from the servers under test. The memory group needs
node, npm and the anchor's folder (``--node-anchor`` or ``$BENCH_NODE_ANCHOR``;
bench/node_anchor.py installs a copy outside the repo). A private Redis is started for the
anchor's feathers-sync. Every process it starts is stopped by PID. See bench/README.md for the
interpretation of the targets and recorded figures."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: bench/ is on sys.path, the repo is not
    sys.path.insert(0, str(REPO_ROOT))

import pymongo  # noqa: E402
from bson import ObjectId  # noqa: E402
from pymongo.collection import Collection  # noqa: E402

from bench import node_anchor  # noqa: E402
from bench.common import child_environment, percentile  # noqa: E402
from bench.rest_common import (  # noqa: E402
    COLLECTION,
    SEED_FILE_VARIABLE,
    raw_operation,
    seed_records,
)
from bench.rest_load import (  # noqa: E402, F401  (run_wrk: used by bench/outbox.py)
    WORKERS,
    Figures,
    Server,
    WrkRun,
    aggregate,
    alternate,
    check_wrk,
    http_call,
    load,
    process_cpu_seconds,
    run_wrk,
    start_floor_pywsgi,
    start_gunicorn,
    stop_all,
    wait_ready,
)
from bench.rest_report import check_targets, compute_cpu_ratios, compute_ratios, write_report  # noqa: E402
from kdk_app.embedded import MEMORY_STORAGE, ManagedProcess, start_redis, start_secantusdb  # noqa: E402

logger = logging.getLogger("bench.rest")

DATABASE = "bench"
RAW_START_DELAY = 2.5  # seconds for the raw pymongo processes to import and connect
GROUPS = ("memory", "mongo")

# gunicorn servers: name -> (group, module, is kdk-app). node_memory and floor_pywsgi are not
# gunicorn servers; they are started beside these.
GUNICORN_APPS = {
    "kdk_mongo": ("mongo", "wsgi:app", True),
    "flask_mongo": ("mongo", "bench.rest_app_flask_mongo:app", False),
    "kdk_memory": ("memory", "bench.rest_app_kdk_memory:app", True),
    "flask_dict": ("memory", "bench.rest_app_flask_dict:app", False),
    "floor_gunicorn": ("memory", "bench.rest_app_floor:app", False),
}
# (group, servers compared round by round, modes).
SCENARIOS = [
    ("memory", ("kdk_memory", "node_memory", "flask_dict"), ("get", "find")),
    ("memory", ("kdk_memory", "node_memory"), ("create",)),
    ("memory", ("floor_gunicorn", "floor_pywsgi"), ("get",)),
    ("mongo", ("kdk_mongo", "flask_mongo"), ("get", "find", "create")),
]


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

    def version(*args: str) -> str:
        try:
            done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=10)
        except OSError:
            return ""
        lines = (done.stdout or done.stderr).splitlines()
        return lines[0].split(" Copyright")[0] if lines else ""

    total_memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(total_memory / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": version("wrk", "--version"),
        "node": version("node", "--version"),
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


def write_memory_seed(workdir: Path) -> tuple[list[str], Path, Path]:
    """The Node anchor's 200 records, for the memory apps (seed file) and wrk (ids file)."""
    records = node_anchor.seed_records()
    ids = [str(r["_id"]) for r in records]
    ids_file = workdir / "memory_ids.txt"
    ids_file.write_text("".join(f"{i}\n" for i in ids))
    seed_file = workdir / "memory_seed.json"
    seed_file.write_text(json.dumps(records))
    return ids, ids_file, seed_file


def start_servers(
    groups: list[str],
    mongo_url: str,
    seeds: dict[str, tuple[Path, Path]],
    logdir: Path,
    anchor: Path | None,
    redis_url: str | None,
) -> dict[str, Server]:
    """Every server of ``groups`` at once, then wait for each; stop them all if one fails.

    ``seeds``: group -> (seed file, ids file).
    """
    servers: dict[str, Server] = {}
    jwt_secret = secrets.token_hex(32)  # as in production: one secret shared by the workers
    try:
        for name, (group, module, kdk) in GUNICORN_APPS.items():
            if group not in groups:
                continue
            seed_file, ids_file = seeds[group]
            env = {
                "MONGO_URL": mongo_url,
                "KDK_ENV": "development",
                "JWT_SECRET": jwt_secret,
                SEED_FILE_VARIABLE: str(seed_file),
            }
            if name == "kdk_memory" and redis_url:
                # Events on Redis, as the anchor's feathers-sync: the Socket.IO queue and the sync
                # bus, whose outbox is in memory (at most once, as feathers-sync) rather than the
                # default MongoDB one, which would put a database write into every create.
                env.update(REDIS_URL=redis_url, KDK_SYNC__OUTBOX="memory")
            servers[name] = start_gunicorn(name, module, env, logdir, ids_file, kdk=kdk)
        if "memory" in groups:
            assert anchor is not None and redis_url is not None
            _, ids_file = seeds["memory"]
            servers["floor_pywsgi"] = start_floor_pywsgi("floor_pywsgi", logdir, ids_file)
            started = node_anchor.start_processes(node_anchor.prepare(anchor), redis_url, logdir)
            servers["node_memory"] = Server(
                "node_memory", [p for p, _ in started], [b for _, b in started], ids_file, gunicorn=False
            )
        for name, server in servers.items():
            wait_ready(server, "/" if name.startswith("floor") else "/messages?$limit=1")
    except BaseException:
        stop_all(list(servers.values()))
        raise
    return servers


def _same(name: str, reference: str, got: Any, expected: Any) -> None:
    if got != expected:
        raise RuntimeError(f"{name} and {reference} disagree:\n  {got}\n  {expected}")


def smoke_check_memory(servers: dict[str, Server], ids: list[str]) -> None:
    """kdk_memory, every Node process and the dict view answer the same bodies; a create by kdk
    and by the anchor has the same shape (then is removed, so every store keeps its 200)."""
    reference: Any = None
    for name in ("kdk_memory", "node_memory", "flask_dict"):
        for base in servers[name].bases:
            status_get, record = http_call(f"{base}/messages/{ids[7]}")
            status_find, page = http_call(f"{base}/messages?tag=t3&$limit=10")
            if status_get != 200 or status_find != 200:
                raise RuntimeError(f"{name} at {base}: GET {status_get}, find {status_find}")
            reference = reference or (record, page)
            _same(f"{name} at {base}", "kdk_memory", (record, page), reference)
    shapes: dict[str, list[str]] = {}
    for name in ("kdk_memory", "node_memory"):
        for base in servers[name].bases:
            body = {"text": "smoke", "n": 1, "tag": "t1"}
            status, created = http_call(f"{base}/messages", "POST", body)
            ok_id = (
                isinstance(created, dict)
                and isinstance(created.get("_id"), str)
                and len(created["_id"]) == 24
            )
            if status != 201 or not ok_id or {k: created[k] for k in body} != body:
                raise RuntimeError(f"{name} at {base}: create answered {status} {created}")
            shapes.setdefault(name, sorted(created))
            http_call(f"{base}/messages/{created['_id']}", "DELETE")
    _same("node_memory create", "kdk_memory create", shapes["node_memory"], shapes["kdk_memory"])
    floors = [
        http_call(f"{servers[n].bases[0]}/messages/{ids[7]}") for n in ("floor_gunicorn", "floor_pywsgi")
    ]
    if floors[0] != floors[1] or floors[0][0] != 200:
        raise RuntimeError(f"the floor servers answer {floors}")


def smoke_check_mongo(servers: dict[str, Server], seed_ids: list[ObjectId]) -> None:
    """Framework and baseline must give the same answers, or the comparison means nothing."""
    some_id = str(seed_ids[7])
    answers = {}
    for name in ("kdk_mongo", "flask_mongo"):
        base = servers[name].bases[0]
        status_get, record = http_call(f"{base}/messages/{some_id}")
        status_find, page = http_call(f"{base}/messages?tag=t3&$limit=10")
        if status_get != 200 or status_find != 200:
            raise RuntimeError(f"{name}: GET {status_get}, find {status_find}")
        answers[name] = (record, {k: v for k, v in page.items() if k != "data"}, len(page["data"]))
    _same("kdk_mongo", "flask_mongo", answers["kdk_mongo"], answers["flask_mongo"])
    for name in ("kdk_mongo", "flask_mongo"):
        status, created = http_call(f"{servers[name].bases[0]}/messages", "POST", {"text": "smoke", "n": 1})
        if status != 201 or created.get("text") != "smoke" or not created.get("_id"):
            raise RuntimeError(f"{name}: create answered {status} {created}")


# -- main ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    wrk = check_wrk()
    groups = [args.only] if args.only else list(GROUPS)
    anchor = node_anchor.anchor_source(args.node_anchor)
    if "memory" in groups and anchor is None:
        sys.stderr.write(
            "the memory group compares kdk-app with the Node Feathers anchor: give its folder with "
            f"--node-anchor DIR or ${node_anchor.ANCHOR_VARIABLE} (or run --only mongo)\n"
        )
        sys.exit(2)
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
    # kdk_memory's other services (users, notes) stay on MongoDB: it needs a database to start.
    db_process, db_url = start_secantusdb(MEMORY_STORAGE, log_path=logdir / "secantusdb.log")
    db_pid = db_process.pid or 0
    redis: ManagedProcess | None = None
    servers: dict[str, Server] = {}
    seed_ids: list[ObjectId] = []
    failed = True
    try:
        mongo_url = f"{db_url}{DATABASE}"
        client: pymongo.MongoClient = pymongo.MongoClient(mongo_url, tz_aware=False)
        collection = client[DATABASE][COLLECTION]
        seed_ids, ids_file, seed_file = seed(collection, workdir)
        memory_ids, memory_ids_file, memory_seed_file = write_memory_seed(workdir)
        redis_url = None
        if "memory" in groups:
            redis, redis_url = start_redis(log_path=logdir / "redis.log")  # the anchor's feathers-sync
        seeds = {"mongo": (seed_file, ids_file), "memory": (memory_seed_file, memory_ids_file)}
        logger.info("starting the servers of %s", ", ".join(groups))
        servers = start_servers(groups, mongo_url, seeds, logdir, anchor, redis_url)
        if "memory" in groups:
            smoke_check_memory(servers, memory_ids)
        if "mongo" in groups:
            smoke_check_mongo(servers, seed_ids)
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

        for group, names, modes in SCENARIOS:
            if group not in groups:
                continue
            on_db = db_pid if group == "mongo" else None
            for mode in modes:
                logger.info("%s, %s: %d rounds", " vs ".join(names), mode, args.rounds)

                def run_one(
                    server: Server, seconds: int, mode: str = mode, on_db: int | None = on_db
                ) -> WrkRun:
                    return load(server, wrk, mode, seconds, args.connections, args.threads, on_db)

                def cleanup() -> None:
                    remove_created(collection, seed_ids)

                after = cleanup if (group == "mongo" and mode == "create") else None
                runs = alternate(
                    [servers[n] for n in names], args.rounds, args.round_seconds, args.warmup, run_one, after
                )
                for name in names:
                    results[f"{name}.{mode}"] = aggregate(runs[name])
        client.close()
        failed = False
    finally:
        stop_all(list(servers.values()))
        if redis is not None:
            redis.stop()
        db_process.stop()
        if failed or args.keep_logs:
            logger.warning("logs kept in %s", logdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    ratios = compute_ratios(results)
    result = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine_info(),
        "code": code_state(),
        "settings": {
            "only": groups,
            "workers": WORKERS,
            "worker_class": "kdk_app.gunicorn_worker.FairGeventWorker",
            "node_processes": 2,
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
        "targets": check_targets(ratios, results),
    }
    write_report(result, results)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=GROUPS, help="run one group of scenarios only")
    parser.add_argument(
        "--node-anchor", help=f"the Node Feathers anchor's folder (default ${node_anchor.ANCHOR_VARIABLE})"
    )
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per HTTP scenario")
    parser.add_argument("--round-seconds", type=int, default=2, help="seconds of load per round")
    parser.add_argument("--warmup", type=int, default=1, help="discarded seconds per app and scenario")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections / raw greenlets")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (in total)")
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
        and 2 <= args.connections <= 256
        and 0 < args.serial_seconds <= 30
        and 0 <= args.wait_idle <= 3600
    ):
        parser.error("bounded load only: rounds 1-10, 1-30 s each, warm-up 0-10 s, 2-256 connections")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    result = run(args)
    sys.stdout.write("BENCH_RESULT " + json.dumps(result, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
