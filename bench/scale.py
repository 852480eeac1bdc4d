"""How the cost grows: kdk-app against the Node Feathers anchor, with more connections and sockets.

    .venv/bin/python bench/scale.py --node-anchor DIR [--only rest|sockets]
        [--levels 1,8,32,128,512] [--rounds 2] [--round-seconds 2]
        [--sockets 1000,5000,10000] [--events 3] [--no-plots]

Both servers hold ``messages`` in memory, the anchor's 200 seeded records, and share a private
Redis: kdk-app is ``bench/rest_app_kdk_memory.py`` under ``gunicorn -w 2`` (gunicorn.conf.py's worker)
(events between its two workers through the Socket.IO queue on Redis), the anchor is two Node
processes on two ports (STORE=memory, feathers-sync on Redis). Two parts:

1. ``rest``: ``GET /messages/:id`` with wrk at each of ``--levels`` connections in total (the
   anchor's processes a wrk each with half of them, rates summed, the worse p99), kdk and Node
   alternating in ``--rounds`` short rounds per level.
2. ``sockets``: one server at a time, the other stopped. Websocket clients (bench/fanout_client.py,
   one asyncio process; the anchor's processes get half each) are connected up to each of
   ``--sockets``; at each count, the servers' resident memory (VmRSS of the workers / Node
   processes) against the count before any socket gives the memory per idle socket, then
   ``--events`` creates (``POST /messages``, one at a time) give the broadcast time: from just
   before the create's REST call until the last socket got its ``messages created`` event. When
   a count cannot be reached (file descriptors, CPU, connect timeouts), the maximum reached is
   recorded and the larger counts are skipped.

Writes ``bench/scale_rest.png`` and ``bench/scale_sockets.png`` (matplotlib, the ``bench`` extra)
unless ``--no-plots``, prints a table and ends with one line ``BENCH_RESULT {json}``. Every
process it starts is stopped by PID; the servers are stopped before the clients, so no server
spends its time on thousands of disconnects.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: bench/ is on sys.path, the repo is not
    sys.path.insert(0, str(REPO_ROOT))

from bench import node_anchor  # noqa: E402
from bench.fanout import NOFILE, Receiver  # noqa: E402
from bench.fanout_client import raise_nofile_limit  # noqa: E402
from bench.rest import code_state, cpu_busy, machine_info, write_memory_seed  # noqa: E402
from bench.rest_common import SEED_FILE_VARIABLE  # noqa: E402
from bench.rest_load import (  # noqa: E402
    Server,
    WrkRun,
    aggregate,
    alternate,
    check_wrk,
    http_call,
    load,
    rss_kib,
    split,
    start_gunicorn,
    stop_all,
    wait_ready,
)
from kdk_app.embedded import MEMORY_STORAGE, start_redis, start_secantusdb  # noqa: E402

logger = logging.getLogger("bench.scale")

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_LEVELS = "1,8,32,128,512"
DEFAULT_SOCKETS = "1000,5000,10000"
CONNECT_CONCURRENCY = 100
DELIVERY_TIMEOUT = 30.0  # seconds for one event to reach every socket
SETTLE_SECONDS = 1.0  # after connecting: let the servers finish the handshakes before reading RSS


def start_kdk(mongo_url: str, redis_url: str, seed_file: Path, ids_file: Path, logdir: Path) -> Server:
    env = {
        "MONGO_URL": mongo_url,
        "REDIS_URL": redis_url,
        "KDK_ENV": "development",
        "KDK_LOG_LEVEL": "warning",
        SEED_FILE_VARIABLE: str(seed_file),
    }
    server = start_gunicorn("kdk_memory", "bench.rest_app_kdk_memory:app", env, logdir, ids_file)
    try:
        wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def start_node(anchor: Path, redis_url: str, ids_file: Path, logdir: Path) -> Server:
    started = node_anchor.start_processes(node_anchor.prepare(anchor), redis_url, logdir)
    return Server("node_memory", [p for p, _ in started], [b for _, b in started], ids_file, gunicorn=False)


# -- part 1: REST --------------------------------------------------------------------------------


def rest_levels(servers: list[Server], wrk: str, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {s.name: {} for s in servers}
    for connections in args.levels:
        logger.info("GET /messages/:id at %d connections", connections)

        def run_one(server: Server, seconds: int, connections: int = connections) -> WrkRun:
            return load(server, wrk, "get", seconds, connections, min(2, connections))

        runs = alternate(servers, args.rounds, args.round_seconds, args.warmup, run_one)
        for server in servers:
            out[server.name][str(connections)] = aggregate(runs[server.name]).to_json()
    return out


# -- part 2: sockets -----------------------------------------------------------------------------


def connect_to(receiver: Receiver, server: Server, total: int, have: list[int]) -> dict[str, Any]:
    """Open sockets until ``total`` are alive, shared over the server's ports like the load."""
    answer: dict[str, Any] = {}
    for index, (base, want) in enumerate(zip(server.bases, split(total, len(server.bases)), strict=False)):
        host, port = base.removeprefix("http://").rsplit(":", 1)
        alive = int(receiver.request({"cmd": "status"})["alive"])
        command = {"cmd": "connect", "host": host, "port": int(port), "concurrency": CONNECT_CONCURRENCY}
        answer = receiver.request({**command, "total": alive + max(0, want - have[index])}, timeout=600)
        have[index] += answer["opened"]
    return answer


def broadcast(receiver: Receiver, server: Server, sockets: int, events: int, seq0: int) -> dict[str, Any]:
    """``events`` creates, one at a time; each waits until every socket has it (or the timeout)."""
    tag = f"scale{seq0}"
    reach_all_ms: list[float] = []
    latencies_ms: list[float] = []
    delivered = 0
    for seq in range(seq0, seq0 + events):
        t0 = time.time_ns()
        body = {"text": "scale bench", "tag": tag, "n": seq, "t0": t0}
        status, _ = http_call(f"{server.bases[0]}/messages", "POST", body)
        if status != 201:
            raise RuntimeError(f"{server.name}: create answered {status}")
        count, slowest = 0, 0
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while count < sockets and time.monotonic() < deadline:
            time.sleep(0.05)
            got = receiver.request({"cmd": "collect", "tag": tag})
            count += got["counts"].get(str(seq), 0)
            slowest = max([slowest, *got["max_us"].values()])
            latencies_ms += [us / 1000 for us in got["lat_us"]]
        delivered += count
        if count >= sockets:
            reach_all_ms.append(slowest / 1000)
    latencies_ms.sort()
    return {
        "events": events,
        "delivered": delivered,
        "lost": events * sockets - delivered,
        "reach_all_ms_median": round(statistics.median(reach_all_ms), 1) if reach_all_ms else None,
        "reach_all_ms_max": round(max(reach_all_ms), 1) if reach_all_ms else None,
        "delivery_ms_p50": round(latencies_ms[len(latencies_ms) // 2], 1) if latencies_ms else None,
    }


def socket_levels(server: Server, args: argparse.Namespace, logdir: Path) -> dict[str, Any]:
    """Memory per idle socket and broadcast time at each socket count, on one server."""
    out: dict[str, Any] = {"levels": {}, "max_reached": 0, "limit": None}
    receiver = Receiver(logdir)
    try:
        time.sleep(SETTLE_SECONDS)
        baseline_kib = rss_kib(server.work_pids())
        out["rss_before_kib"] = baseline_kib
        have = [0] * len(server.bases)
        for index, sockets in enumerate(args.sockets):
            logger.info("%s: connecting %d sockets", server.name, sockets)
            started = time.monotonic()
            answer = connect_to(receiver, server, sockets, have)
            connect_s = time.monotonic() - started
            time.sleep(SETTLE_SECONDS)
            status = receiver.request({"cmd": "status"})
            alive = int(status["alive"])
            out["max_reached"] = max(out["max_reached"], alive)
            level: dict[str, Any] = {"alive": alive, "connect_s": round(connect_s, 1)}
            level["rss_kib"] = rss_kib(server.work_pids())
            level["kib_per_socket"] = round((level["rss_kib"] - baseline_kib) / max(1, alive), 2)
            level.update(broadcast(receiver, server, alive, args.events, 1000 * (index + 1)))
            out["levels"][str(sockets)] = level
            logger.info("%s: %s", server.name, level)
            if alive < sockets:
                out["limit"] = {"wanted": sockets, "alive": alive, "errors": answer.get("errors", {})}
                logger.warning(
                    "%s: only %d of %d sockets; larger counts skipped", server.name, alive, sockets
                )
                break
    finally:
        # Before the clients, and without gunicorn's graceful wait for open websockets: no
        # server time is spent on thousands of disconnects.
        server.stop(timeout=2)
        receiver.stop()
    return out


# -- plots and report ----------------------------------------------------------------------------


def plot(result: dict[str, Any]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed (pip install -e '.[bench]'): no plots")
        return []

    def save(fig: Any, title: str, name: str) -> str:
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(BENCH_DIR / name, dpi=100)
        plt.close(fig)
        return name

    written = []
    stamp = f"{result['date'][:10]}, commit {result['code']['commit']}, {result['machine']['cpus']} CPU"
    if result.get("rest"):
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        for name, levels in result["rest"].items():
            xs = [int(c) for c in levels]
            left.plot(xs, [levels[c]["rps"] for c in levels], marker="o", label=name)
            right.plot(xs, [levels[c]["p99_ms"] for c in levels], marker="o", label=name)
        for axis, label in ((left, "req/s"), (right, "p99 ms")):
            axis.set_xscale("log", base=2)
            axis.set_xlabel("wrk connections (total)")
            axis.set_ylabel(label)
            axis.grid(True, alpha=0.3)
            axis.legend()
        right.set_yscale("log")
        title = f"GET /messages/:id, 2 workers / 2 Node processes ({stamp})"
        written.append(save(fig, title, "scale_rest.png"))
    if result.get("sockets"):
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        for name, data in result["sockets"].items():
            levels = data["levels"]
            xs = [levels[s]["alive"] for s in levels]
            left.plot(xs, [levels[s]["reach_all_ms_median"] for s in levels], marker="o", label=name)
            right.plot(xs, [levels[s]["kib_per_socket"] for s in levels], marker="o", label=name)
        left.set_ylabel("create -> last socket got it, median ms")
        right.set_ylabel("RSS per idle socket, KiB")
        for axis in (left, right):
            axis.set_xlabel("connected websockets")
            axis.grid(True, alpha=0.3)
            axis.legend()
        written.append(save(fig, f"Broadcast and memory per socket ({stamp})", "scale_sockets.png"))
    return written


def write_report(result: dict[str, Any]) -> None:
    out = sys.stdout.write
    machine, code = result["machine"], result["code"]
    out(f"\nkdk-app scale benchmark, {result['date']}\n")
    out(f"machine: {machine['cpus']} CPU ({machine['cpu_model']}), Python {machine['python']}, ")
    out(
        f"node {machine['node']}; commit {code['commit']}; CPU busy before: {result['cpu_busy_before']:.0%}\n"
    )
    if result.get("rest"):
        out(f"\nGET /messages/:id\n{'connections':>12}")
        names = list(result["rest"])
        for name in names:
            out(f"{name + ' req/s':>20}{'p99 ms':>9}")
        out(f"{'ratio':>8}\n")
        for connections in result["rest"][names[0]]:
            out(f"{connections:>12}")
            for name in names:
                figures = result["rest"][name][connections]
                out(f"{figures['rps']:>20.0f}{figures['p99_ms']:>9.1f}")
            ratio = result["rest_ratios"].get(connections)
            out(f"{'n/a' if ratio is None else f'{ratio:.3f}':>8}\n")
    for name, data in (result.get("sockets") or {}).items():
        before = data["rss_before_kib"]
        out(f"\n{name}: sockets (max reached {data['max_reached']}; RSS before {before} KiB)\n")
        out(f"{'sockets':>9}{'alive':>7}{'connect s':>11}{'KiB/socket':>12}{'lost':>6}")
        out(f"{'reach all ms (median)':>23}{'max':>8}{'delivery p50 ms':>17}\n")
        for sockets, level in data["levels"].items():
            out(
                f"{sockets:>9}{level['alive']:>7}{level['connect_s']:>11}{level['kib_per_socket']:>12}"
                f"{level['lost']:>6}{level['reach_all_ms_median']!s:>23}{level['reach_all_ms_max']!s:>8}"
                f"{level['delivery_ms_p50']!s:>17}\n"
            )
        if data["limit"]:
            out(f"  limit: {data['limit']}\n")
    if result.get("plots"):
        out(f"\nplots: {', '.join(result['plots'])}\n")
    out("\n")


# -- main ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    wrk = check_wrk() if args.only != "sockets" else ""
    anchor = node_anchor.anchor_source(args.node_anchor)
    if anchor is None:
        sys.stderr.write(
            f"give the Node anchor's folder with --node-anchor DIR or ${node_anchor.ANCHOR_VARIABLE}\n"
        )
        sys.exit(2)
    raise_nofile_limit(NOFILE)  # the servers and the client process inherit it
    busy_before = cpu_busy()
    workdir = Path(tempfile.mkdtemp(prefix="kdk-bench-scale-"))
    logdir = workdir / "logs"
    logdir.mkdir()
    _, ids_file, seed_file = write_memory_seed(workdir)
    # kdk_memory's other services (users, notes) stay on MongoDB: it needs a database to start.
    db_process, db_url = start_secantusdb(MEMORY_STORAGE, log_path=logdir / "secantusdb.log")
    redis, redis_url = start_redis(log_path=logdir / "redis.log")
    result: dict[str, Any] = {"rest": None, "sockets": None}
    servers: list[Server] = []
    failed = True
    try:
        mongo_url = f"{db_url}bench"
        if args.only != "sockets":
            servers = [
                start_kdk(mongo_url, redis_url, seed_file, ids_file, logdir),
                start_node(anchor, redis_url, ids_file, logdir),
            ]
            result["rest"] = rest_levels(servers, wrk, args)
            stop_all(servers)
            servers = []
        if args.only != "rest":
            result["sockets"] = {}
            for start in (
                lambda: start_kdk(mongo_url, redis_url, seed_file, ids_file, logdir),
                lambda: start_node(anchor, redis_url, ids_file, logdir),
            ):
                server = start()
                servers = [server]
                result["sockets"][server.name] = socket_levels(server, args, logdir)
                servers = []
        failed = False
    finally:
        stop_all(servers)
        redis.stop()
        db_process.stop()
        if failed or args.keep_logs:
            logger.warning("logs kept in %s", logdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    rest = result["rest"] or {}
    ratios = {}
    if rest:
        for connections in rest.get("kdk_memory", {}):
            kdk, node = rest["kdk_memory"][connections], rest["node_memory"][connections]
            ratios[connections] = round(kdk["rps"] / node["rps"], 3) if node["rps"] else None
    result.update(
        {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": machine_info(),
            "code": code_state(),
            "settings": {
                "levels": args.levels,
                "rounds": args.rounds,
                "round_seconds": args.round_seconds,
                "warmup_s": args.warmup,
                "sockets": args.sockets,
                "events": args.events,
                "workers": 2,
                "node_processes": 2,
            },
            "cpu_busy_before": round(busy_before, 3),
            "rest_ratios": ratios,
        }
    )
    result["plots"] = [] if args.no_plots else plot(result)
    write_report(result)
    return result


def _counts(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--node-anchor", help=f"the Node anchor's folder (default ${node_anchor.ANCHOR_VARIABLE})"
    )
    parser.add_argument("--only", choices=("rest", "sockets"), help="run one part only")
    parser.add_argument("--levels", type=_counts, default=_counts(DEFAULT_LEVELS), help="wrk connections")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per level")
    parser.add_argument("--round-seconds", type=int, default=2, help="seconds of load per round")
    parser.add_argument("--warmup", type=int, default=1, help="discarded seconds per server and level")
    parser.add_argument("--sockets", type=_counts, default=_counts(DEFAULT_SOCKETS), help="socket counts")
    parser.add_argument("--events", type=int, default=3, help="broadcast creates per socket count")
    parser.add_argument("--no-plots", action="store_true", help="do not write the PNG plots")
    parser.add_argument("--keep-logs", action="store_true", help="keep the server logs")
    args = parser.parse_args(argv)
    if not (
        args.levels
        and all(1 <= c <= 1024 for c in args.levels)
        and 1 <= args.rounds <= 10
        and 1 <= args.round_seconds <= 30
        and 0 <= args.warmup <= 10
        and args.sockets
        and all(1 <= s <= 20_000 for s in args.sockets)
        and 1 <= args.events <= 20
    ):
        parser.error(
            "bounded load only: 1-1024 connections, 1-10 rounds of 1-30 s, 1-20000 sockets, 1-20 events"
        )
    args.sockets = sorted(args.sockets)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    result = run(args)
    sys.stdout.write("BENCH_RESULT " + json.dumps(result, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
