"""Fuzz benchmark: 10,000 hostile REST requests and 10,000 hostile Socket.IO frames per seed.

    .venv/bin/python bench/fuzz.py [--url http://127.0.0.1:8081] [--requests 10000]
                                   [--frames 10000] [--seed 1 --seed 2]

Without ``--url`` it starts a private Redis and SecantusDB (in memory) and the app as
production runs it: ``KDK_ENV=production``, gunicorn with 2 gevent workers. It prints the
status counts per seed, whether any worker died, and as a baseline the rate of well-formed
``GET /messages`` calls on the same server in the same run, against which the fuzz rate is a
ratio. Ends with one line ``BENCH_RESULT {json}``. Every process it starts is stopped by PID.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: bench/ is on sys.path, the repo is not
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import child_environment  # noqa: E402
from kdk_app.embedded import ManagedProcess, free_port, start_redis, start_secantusdb  # noqa: E402
from kdk_app.fuzz import fuzz  # noqa: E402

logger = logging.getLogger("bench.fuzz")


def start_production_app(mongo_url: str, redis_url: str, log_dir: Path) -> tuple[ManagedProcess, str]:
    port = free_port()
    env = child_environment(
        {
            "KDK_ENV": "production",
            "JWT_SECRET": "bench-fuzz-" + "x" * 32,
            "MONGO_URL": mongo_url.rstrip("/") + "/fuzz",
            "REDIS_URL": redis_url,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "WEB_CONCURRENCY": "2",
        }
    )
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        name="kdk-app",
        log_path=log_dir / "app.log",
        env=env,
        cwd=REPO_ROOT,
        ready_check=lambda: status(url, "/healthcheck") == 200,
        start_timeout=60,
    )
    process.start()
    return process, url


def status(url: str, path: str) -> int | None:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=2)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        connection.close()


def well_formed_rate(url: str, count: int = 2000) -> float:
    """Sequential ``GET /messages?$limit=1`` per second over one keep-alive connection."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=10)
    started = time.perf_counter()
    for _ in range(count):
        connection.request("GET", "/messages?$limit=1")
        connection.getresponse().read()
    connection.close()
    return count / (time.perf_counter() - started)


def worker_pids(master_pid: int | None) -> list[int]:
    if master_pid is None:
        return []
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children")
    return sorted(int(pid) for pid in children.read_text().split()) if children.exists() else []


def run(url: str, master_pid: int | None, args: argparse.Namespace) -> dict[str, Any]:
    before = worker_pids(master_pid)
    baseline = well_formed_rate(url)
    runs = []
    for seed in args.seed or [1, 2]:
        started = time.perf_counter()
        result = fuzz(url, requests=args.requests, frames=args.frames, seed=seed)
        result["seconds"] = round(time.perf_counter() - started, 1)
        runs.append(result)
        rest, frames = result["rest"], result["frames"]
        sys.stdout.write(
            f"seed {seed}: {rest['sent']} requests {rest['statuses']}\n"
            f"        {frames['sent']} frames {frames['statuses']}\n"
            f"        5xx {rest['server_errors'] + frames['server_errors']}, unanswered "
            f"{frames['unanswered']}, dropped {rest['dropped'] + frames['dropped']}, "
            f"{result['seconds']} s, ok={result['ok']}\n"
        )
        for failure in rest["failures"] + frames["failures"]:
            sys.stdout.write(f"        ! {failure}\n")
    after = worker_pids(master_pid)
    inputs = sum(r["rest"]["sent"] + r["frames"]["sent"] for r in runs)
    rate = inputs / sum(r["seconds"] for r in runs)
    sys.stdout.write(
        f"baseline: {baseline:.0f} well-formed requests/s; fuzz: {rate:.0f} inputs/s "
        f"(ratio {rate / baseline:.2f}); workers before {before}, after {after}\n"
    )
    return {
        "ok": all(r["ok"] for r in runs) and before == after,
        "seeds": [r["seed"] for r in runs],
        "server_errors": sum(r["rest"]["server_errors"] + r["frames"]["server_errors"] for r in runs),
        "unanswered": sum(r["frames"]["unanswered"] for r in runs),
        "dropped": sum(r["rest"]["dropped"] + r["frames"]["dropped"] for r in runs),
        "workers_replaced": len(set(before) - set(after)),
        "inputs": inputs,
        "fuzz_inputs_per_s": round(rate),
        "baseline_requests_per_s": round(baseline),
        "ratio": round(rate / baseline, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="fuzz this server instead of starting one")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--seed", type=int, action="append", help="repeatable; default 1 and 2")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.url:
        summary = run(args.url, None, args)
    else:
        with tempfile.TemporaryDirectory(prefix="kdk-fuzz-") as scratch:
            log_dir = Path(scratch)
            mongo, mongo_url = start_secantusdb(":memory:", log_path=log_dir / "secantusdb.log")
            redis, redis_url = start_redis(log_path=log_dir / "redis.log")
            app = None
            try:
                app, url = start_production_app(mongo_url, redis_url, log_dir)
                summary = run(url, app.pid, args)
            finally:
                for process in (app, redis, mongo):
                    if process is not None:
                        process.stop()
    sys.stdout.write("BENCH_RESULT " + json.dumps(summary) + "\n")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
