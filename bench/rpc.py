"""Remote-call benchmark: a service called through a consumer instance against a local call.

    .venv/bin/python bench/rpc.py [--calls 2000] [--seconds 5] [--concurrency 8]

Starts a private Redis and SecantusDB (in memory), then two app processes (``kdk serve``,
gevent): A serves ``items`` (MemoryService, seeded) and C consumes it as a remote service.
Measures, over HTTP keep-alive from this process:

- latency: ``--calls`` sequential ``GET /items/<id>``, p50/p99, on A (local call) and on C
  (REST at C, call over Redis to A, reply back);
- throughput: ``--concurrency`` client threads for ``--seconds`` each, calls per second.

Ends with one line ``BENCH_RESULT {json}`` (``rpc_overhead_p50_ms`` is remote minus local
p50). Every process it starts is stopped by PID.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: bench/ is on sys.path, the repo is not
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import percentile  # noqa: E402
from kdk_app.embedded import ManagedProcess, free_port, start_redis, start_secantusdb  # noqa: E402

logger = logging.getLogger("bench.rpc")

SECRET = "bench-secret"
SEED = 100


def start_app(name: str, env: dict[str, str], log_dir: Path) -> tuple[ManagedProcess, int]:
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    full_env.update(env, PORT=str(port), KDK_ENV="bench", PYTHONUNBUFFERED="1")

    def ready() -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/healthcheck")
            connection.getresponse().read()
            return True
        except OSError:
            return False

    process = ManagedProcess(
        [sys.executable, "-m", "kdk_app", "--log-level", "WARNING", "serve", "--host", "127.0.0.1"],
        name=name,
        log_path=log_dir / f"{name}.log",
        env=full_env,
        cwd=REPO_ROOT,
        ready_check=ready,
        start_timeout=60,
    )
    process.start()
    return process, port


def wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError("condition not met in time")


def get_json(port: int, path: str) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def http_latency(port: int, paths: list[str]) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    timings = []
    try:
        for path in paths:
            started = time.perf_counter()
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            timings.append(time.perf_counter() - started)
            if response.status != 200:
                raise RuntimeError(f"GET {path} answered {response.status}")
    finally:
        connection.close()
    return timings


def http_throughput(port: int, paths: list[str], seconds: float, concurrency: int) -> dict[str, float]:
    counts = [0] * concurrency
    errors = [0] * concurrency
    stop_at = time.monotonic() + seconds

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            n = index
            while time.monotonic() < stop_at:
                connection.request("GET", paths[n % len(paths)])
                response = connection.getresponse()
                response.read()
                counts[index] += 1
                errors[index] += response.status != 200
                n += concurrency
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 15)
    elapsed = time.monotonic() - started
    return {"calls_per_second": round(sum(counts) / elapsed, 1), "calls": sum(counts), "errors": sum(errors)}


def summary(timings: list[float]) -> dict[str, float]:
    ms = [t * 1000 for t in timings]
    return {
        "p50_ms": round(percentile(sorted(ms), 50), 3),
        "p99_ms": round(percentile(sorted(ms), 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per latency run")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads in throughput runs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    log_dir = Path(tempfile.mkdtemp(prefix="kdk-bench-rpc-"))
    processes: list[ManagedProcess] = []
    try:
        redis_process, redis_url = start_redis(log_path=log_dir / "redis.log")
        processes.append(redis_process)
        mongo_process, mongo_url = start_secantusdb(":memory:", log_path=log_dir / "mongo.log")
        processes.append(mongo_process)
        key = f"bench-{uuid.uuid4().hex[:6]}"
        common = {
            "REDIS_URL": redis_url,
            "MONGO_URL": mongo_url,
            "KDK_DISTRIBUTION__KEY": key,
            "KDK_DISTRIBUTION__SECRET": SECRET,
        }
        seed = json.dumps({"adapter": "memory", "store": [{"text": f"m{i}"} for i in range(SEED)]})
        provider_env = {
            **common,
            "KDK_SERVICES__MESSAGES": "null",
            "KDK_SERVICES__ITEMS": seed,
            "KDK_DISTRIBUTION__SERVICES": '["items"]',
        }
        consumer_env = {
            **common,
            "KDK_SERVICES__MESSAGES": "null",
            "KDK_DISTRIBUTION__SERVICES": "[]",
            "KDK_SOCKETIO__CHANNEL": "bench-consumer",
            # /distribution/stats is for admins when authentication is on; the consumer only
            # proxies `items`, so it runs without authentication and its stats stay readable.
            "KDK_AUTHENTICATION__ENABLED": "false",
        }
        provider, provider_port = start_app("provider", provider_env, log_dir)
        processes.append(provider)
        consumer, consumer_port = start_app("consumer", consumer_env, log_dir)
        processes.append(consumer)
        wait_for(lambda: get_json(consumer_port, "/items/0")[0] == 200, 10)

        paths = [f"/items/{i % SEED}" for i in range(args.calls)]
        result: dict[str, Any] = {
            "benchmark": "rpc",
            "host": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "machine": platform.machine(),
            },
            "calls": args.calls,
            "seconds": args.seconds,
            "concurrency": args.concurrency,
        }
        for label, port in (("local", provider_port), ("remote", consumer_port)):
            http_latency(port, paths[:200])  # warm up
            result[f"http_{label}"] = {
                **summary(http_latency(port, paths)),
                **http_throughput(port, paths, args.seconds, args.concurrency),
            }
            logger.info("HTTP %-6s %s", label, result[f"http_{label}"])
        status, body = get_json(consumer_port, "/distribution/stats")
        result["consumer_stats"] = body.get("stats") if status == 200 else None
        local, remote = result["http_local"], result["http_remote"]
        result["remote_over_local"] = {
            "p50": round(remote["p50_ms"] / local["p50_ms"], 2),
            "p99": round(remote["p99_ms"] / local["p99_ms"], 2),
            "throughput": round(remote["calls_per_second"] / local["calls_per_second"], 2),
        }
        result["rpc_overhead_p50_ms"] = round(remote["p50_ms"] - local["p50_ms"], 3)
        sys.stdout.write("BENCH_RESULT " + json.dumps(result) + "\n")
        return 0
    finally:
        for process in reversed(processes):
            process.stop()


if __name__ == "__main__":
    sys.exit(main())
