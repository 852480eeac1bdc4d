"""Raw pymongo under the app's concurrency model: one process of N gevent greenlets.

The driver starts two of these at once (as gunicorn runs two gevent workers), so "raw pymongo"
gets the same process layout and concurrency as the HTTP scenarios, minus HTTP, WSGI and the
framework. Prints one JSON object: operation count and latencies (µs) measured after the warm-up.

    python -m bench.rest_pymongo_load --url URL --mode get --greenlets 16 --start-at T --warmup 2 --duration 8
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from bson import ObjectId  # noqa: E402
from pymongo import MongoClient  # noqa: E402

from bench.rest_common import COLLECTION, raw_operation  # noqa: E402


def run(args: argparse.Namespace) -> dict[str, Any]:
    client: MongoClient = MongoClient(args.url, tz_aware=False)
    collection = client.get_default_database()[COLLECTION]
    ids = [ObjectId(line) for line in Path(args.ids_file).read_text().split()]
    op = raw_operation(args.mode, collection, ids)
    collection.find_one({})  # connect before the clock starts
    measure_from = args.start_at + args.warmup
    stop_at = measure_from + args.duration
    latencies: list[int] = []
    sequence = itertools.count(args.offset)

    def loop() -> None:
        while True:
            started = time.time()
            if started >= stop_at:
                return
            op(next(sequence))
            if started >= measure_from:
                latencies.append(int((time.time() - started) * 1e6))

    cpu: dict[str, float] = {}

    def clock() -> None:  # this process's CPU time over the measured window
        gevent.sleep(max(0.0, measure_from - time.time()))
        cpu["start"] = time.process_time()
        gevent.sleep(max(0.0, stop_at - time.time()))
        cpu["stop"] = time.process_time()

    gevent.sleep(max(0.0, args.start_at - time.time()))
    gevent.joinall([gevent.spawn(clock), *(gevent.spawn(loop) for _ in range(args.greenlets))])
    client.close()
    return {
        "count": len(latencies),
        "duration_s": args.duration,
        "cpu_s": cpu.get("stop", 0.0) - cpu.get("start", 0.0),
        "latencies_us": latencies,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--ids-file", required=True)
    parser.add_argument("--mode", choices=("get", "find", "create"), required=True)
    parser.add_argument("--greenlets", type=int, default=16)
    parser.add_argument("--start-at", type=float, required=True, help="epoch seconds")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--offset", type=int, default=0, help="first sequence number (create)")
    sys.stdout.write(json.dumps(run(parser.parse_args())) + "\n")


if __name__ == "__main__":
    main()
