"""What durable events cost a create: the MongoDB outbox against the memory outbox and change streams.

Three set-ups of one app (gunicorn, 2 gevent workers, `messages` on SecantusDB, a private Redis),
each loaded with ``POST /messages`` by wrk, in alternating rounds so that drift hits all alike:

- ``memory``: the sync bus with its outbox in memory (lost when the process dies);
- ``mongodb``: the durable outbox, one insert per event before the call returns, deleted in
  batches once Redis has it (the default);
- ``changestream``: no sync bus; two change-stream watchers on the collection in this process,
  the work MongoDB would do if its change streams were the source of the events instead.

Ends with one line ``BENCH_RESULT {json}``: creates/s and p99 per set-up, and each one's ratio to
``memory``. Everything runs on 127.0.0.1 and is stopped by PID.

    .venv/bin/python bench/outbox.py [--rounds 3] [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: bench/ is on sys.path, the repo is not
    sys.path.insert(0, str(REPO_ROOT))

import pymongo  # noqa: E402
import requests  # noqa: E402

from bench.common import child_environment  # noqa: E402
from bench.rest import run_wrk  # noqa: E402
from kdk_app.embedded import ManagedProcess, free_port, start_redis, start_secantusdb  # noqa: E402

logger = logging.getLogger("bench.outbox")

WORKERS = 2
SETUPS = {
    "memory": {"KDK_SYNC__OUTBOX": "memory"},
    "mongodb": {"KDK_SYNC__OUTBOX": "mongodb"},
    "changestream": {"KDK_SYNC__ENABLED": "false"},
}


def start_app(name: str, env: dict[str, str], workdir: Path) -> tuple[ManagedProcess, str]:
    port = free_port()
    args = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-w", str(WORKERS)]
    args += ["--control-socket", str(workdir / f"{name}.ctl"), "wsgi:app"]
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(
        args,
        name=f"gunicorn-{name}",
        env=child_environment({**env, "PORT": str(port), "HOST": "127.0.0.1", "KDK_ENV": "development"}),
        cwd=REPO_ROOT,
        log_path=workdir / f"{name}.log",
        ready_check=lambda: requests.get(url + "/healthcheck", timeout=1).status_code == 200,
        start_timeout=60,
    )
    process.start()
    return process, url


class Watchers:
    """Change streams on the collection, drained as fast as they come (the change-stream design)."""

    def __init__(self, mongo_url: str, database: str, count: int) -> None:
        self.client = pymongo.MongoClient(mongo_url)
        self.collection = self.client[database]["messages"]
        self.seen = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._watch, daemon=True) for _ in range(count)]
        for thread in self._threads:
            thread.start()

    def _watch(self) -> None:
        with self.collection.watch(max_await_time_ms=200) as stream:
            while not self._stop.is_set():
                if stream.try_next() is not None:
                    self.seen += 1

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self.client.close()


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    wrk = "wrk"
    redis_process, redis_url = start_redis()
    mongo_process, mongo_url = start_secantusdb()
    apps: dict[str, tuple[ManagedProcess, str]] = {}
    watchers = None
    try:
        database = f"outbox_{uuid.uuid4().hex[:8]}"
        for name, extra in SETUPS.items():
            env = {
                "REDIS_URL": redis_url,
                "MONGO_URL": mongo_url,
                "KDK_MONGO__DATABASE": f"{database}_{name}",
            }
            apps[name] = start_app(name, {**env, **extra}, workdir)
        watchers = Watchers(mongo_url, f"{database}_changestream", 2)
        runs: dict[str, list[Any]] = {name: [] for name in SETUPS}
        for round_number in range(args.rounds):
            for name, (_process, url) in apps.items():
                run = run_wrk(wrk, url, "create", args.seconds, args.connections, 2, workdir / "no-ids")
                runs[name].append(run)
                logger.info(
                    "round %d %-12s %7.0f creates/s p99 %.1f ms", round_number + 1, name, run.rps, run.p99_ms
                )
        figures = {
            name: {
                "creates_per_s": round(sum(r.requests for r in rs) / sum(r.seconds for r in rs), 1),
                "p99_ms": round(statistics.median(r.p99_ms for r in rs), 1),
                "errors": sum(r.errors for r in rs),
            }
            for name, rs in runs.items()
        }
        baseline = figures["memory"]["creates_per_s"]
        for values in figures.values():
            values["ratio_to_memory"] = round(values["creates_per_s"] / baseline, 3)
        return {
            "setups": figures,
            "rounds": args.rounds,
            "seconds": args.seconds,
            "connections": args.connections,
        }
    finally:
        if watchers is not None:
            watchers.close()
        for process, _url in apps.values():
            process.stop()
        mongo_process.stop()
        redis_process.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 11))
    parser.add_argument("--seconds", type=int, default=5, choices=range(1, 31))
    parser.add_argument("--connections", type=int, default=32, choices=range(1, 257))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="kdk-bench-outbox-") as tmp:
        workdir = Path(tmp)
        (workdir / "no-ids").write_text("")
        result = measure(args, workdir)
    lines = ["| set-up | creates/s | p99 ms | ratio to memory |", "|---|---:|---:|---:|"]
    for name, values in result["setups"].items():
        rate, p99, ratio = values["creates_per_s"], values["p99_ms"], values["ratio_to_memory"]
        lines.append(f"| {name} | {rate:.0f} | {p99:.1f} | {ratio:.2f} |")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.write("BENCH_RESULT " + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
