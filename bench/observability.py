"""What metrics and request ids cost a REST call, in process.

    .venv/bin/python bench/observability.py [--calls 5000] [--rounds 5]

Builds two apps on the same MemoryService (100 records, no MongoDB or Redis): one with every
part, the other with the ``metrics`` and ``request_id`` parts left out. Both answer the same
``GET /items/<id>`` through Flask's test client (the whole WSGI stack, no sockets), in
alternating rounds, so drift hits both alike. Prints the µs per call of each, the difference
and the ratio (the median of the rounds), and ends with one line ``BENCH_RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import Flask  # noqa: E402

from kdk_app import KDK  # noqa: E402
from kdk_app.extension import DEFAULT_PARTS  # noqa: E402
from kdk_app.services import MemoryService  # noqa: E402

logger = logging.getLogger("bench.observability")
OBSERVING = {"metrics", "request_id"}
RECORDS = 100


def items(app: Any) -> None:
    app.use("items", MemoryService([{"id": index, "text": f"item {index}"} for index in range(RECORDS)]))


def build(observing: bool) -> Flask:
    parts = (
        DEFAULT_PARTS if observing else tuple(part for part in DEFAULT_PARTS if part.name not in OBSERVING)
    )
    flask_app = Flask("bench")
    settings = {
        "mongo": {"url": "mongodb://127.0.0.1:9/unused"},  # never called: the service is in memory
        "redis": {"url": None},
        "services": {"messages": None},
        "configure": [items],
        "sync": {"enabled": False},
    }
    KDK(flask_app, parts=parts, **settings)
    return flask_app


def per_call_us(flask_app: Flask, calls: int) -> float:
    client = flask_app.test_client()
    started = time.perf_counter()
    for index in range(calls):
        response = client.get(f"/items/{index % RECORDS}")
        if response.status_code != 200:
            raise SystemExit(f"unexpected {response.status_code}: {response.get_data(as_text=True)}")
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=5000, help="calls per app and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    plain, observed = build(observing=False), build(observing=True)
    per_call_us(plain, 500), per_call_us(observed, 500)  # warm-up: imports, first requests
    without, with_ = [], []
    for _ in range(args.rounds):
        without.append(per_call_us(plain, args.calls))
        with_.append(per_call_us(observed, args.calls))
    result = {
        "calls": args.calls,
        "rounds": args.rounds,
        "without_us": round(statistics.median(without), 1),
        "with_us": round(statistics.median(with_), 1),
        "ratio": round(statistics.median(w / p for w, p in zip(with_, without, strict=True)), 3),
    }
    result["cost_us"] = round(result["with_us"] - result["without_us"], 1)
    sys.stdout.write(
        f"GET /items/<id> in process: {result['without_us']} µs without metrics and request ids, "
        f"{result['with_us']} µs with them: +{result['cost_us']} µs a call, ratio {result['ratio']}\n"
    )
    sys.stdout.write("BENCH_RESULT " + json.dumps(result, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
