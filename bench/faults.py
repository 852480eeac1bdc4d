"""Fault bench: what clients see when Redis, MongoDB or a worker goes away, and how soon it is over.

    .venv/bin/python bench/faults.py [--scenarios redis-stop,redis-hang,...] [--rate 100]
        [--fault-seconds 5] [--bound 1.0] [--timeout 5] [--recovery 15] [--logdir DIR]

Each scenario gets servers of its own on 127.0.0.1 (``bench/faults_servers.py``): Redis (one
server, or a master, a replica and three sentinels), SecantusDB with its data on disk in a
temporary folder, and two instances, A and B, each ``gunicorn -c gunicorn.conf.py -w 2`` (gevent
workers, ``KDK_ENV=production``) sharing them. B serves ``bench/faults_wsgi.py``: the real app
plus a server-side listener on ``messages created`` whose every synced event each worker writes
to a file of its own. The traffic (``bench/faults_traffic.py``):

- **load**: ``POST /messages`` on A at ``--rate`` per second, open loop, over keep-alive
  connections, each with a client timeout of ``--timeout`` s;
- **consumers**: a python-socketio client on A and one on B (Feathers protocol, event
  ``messages created``), and the listener of each of B's two workers.

Timeline: warm-up probes until an event reaches every consumer, a wait (up to ``--quiet-wait``
s) for other work on the machine to calm down, ``--baseline`` s of load, the fault,
``--recovery`` s of load after the fault ends, then up to ``--drain`` s for late events.
Per scenario the bench reports the creates sent, answered 2xx, answered 503 (a clean refusal),
answered (whatever the status) within ``--bound`` s, and timed out; per consumer the events
expected (the creates answered 2xx) and delivered, and duplicates; and the **time to full
service**: from the end of the fault (resume, restart, promotion; a kill is its own end) to the
first create after which every create is answered 2xx within the bound and delivered to every
consumer. The scenario ``none`` (no fault) tells whether the machine serves ``--rate`` in full at
all; ``others' cores`` is the CPU that other work on the machine took meanwhile. It prints one
table, then one line ``BENCH_RESULT {json}``. Every process it starts is stopped by PID;
``--logdir`` keeps the servers' logs and every create and arrival (``raw.json``) per scenario.

Adding a scenario: write ``def inject(run: Run) -> FaultWindow`` that causes the fault on
``run.stack`` (while the load runs in the background), waits until it is over, and returns when
it began and ended; decorate it with ``@scenario(name, summary)``. A fault that needs another
Redis topology passes ``redis=start_...``, a function of the scenario's folder that returns a
:class:`~bench.faults_servers.RedisSetup` (see ``start_sentinel_redis``); the apps get its
``url``. Use the helpers here to pause, stop or kill by PID, and put anything worth reporting
(PIDs, intermediate times) in ``FaultWindow.notes``. The new name is then accepted by
``--scenarios`` and runs by default.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: bench/ is on sys.path, the repo is not
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import percentile  # noqa: E402
from bench.faults_servers import (  # noqa: E402
    ClusterRedis,
    CpuSampler,
    RedisSetup,
    SentinelRedis,
    SingleRedis,
    Stack,
    signal_group,
    start_cluster_redis,
    start_sentinel_redis,
    start_single_redis,
    start_stack,
    wait_for,
    wait_for_quiet,
    worker_holding,
)
from bench.faults_traffic import Consumer, Create, ListenerFile, Load, SocketConsumer, probe  # noqa: E402

logger = logging.getLogger("bench.faults")

WARM_UP_TIMEOUT = 30.0
RECOVERY_WAIT = 30.0  # the most a scenario waits for a promotion or a replacement worker
DRAIN_QUIET = 3.0  # s without a new event after the load: what is still missing is lost
SETTLE = 2.0  # full service must hold this long before the load ends to count as reached


# -- the registry ----------------------------------------------------------------------------------


@dataclass
class FaultWindow:
    start: float  # wall time the fault began
    end: float  # wall time it ended: resumed, restarted, promoted; an instant fault's own moment
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    """What a scenario's ``inject`` works on: the servers, the settings and the socket clients."""

    stack: Stack
    args: argparse.Namespace
    sockets: dict[str, SocketConsumer]


Inject = Callable[[Run], FaultWindow]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    inject: Inject
    redis: Callable[[Path], RedisSetup] = start_single_redis


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    name: str, summary: str, redis: Callable[[Path], RedisSetup] = start_single_redis
) -> Callable[[Inject], Inject]:
    """Register ``inject`` as the fault ``name`` (the order of registration is the default order)."""

    def register(inject: Inject) -> Inject:
        SCENARIOS[name] = Scenario(name, summary, inject, redis)
        return inject

    return register


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def single_redis(run: Run) -> SingleRedis:
    assert isinstance(run.stack.redis, SingleRedis), "this scenario needs the single Redis set-up"
    return run.stack.redis


# -- the scenarios -----------------------------------------------------------------------------------


@scenario("none", "no fault: the reference, whether this machine serves --rate in full at all")
def no_fault(run: Run) -> FaultWindow:
    now = time.time()
    return FaultWindow(now, now)


@scenario("redis-stop", "SIGTERM Redis, start it again on the same port after --fault-seconds")
def redis_stop(run: Run) -> FaultWindow:
    process = single_redis(run).process
    start = time.time()
    process.stop()  # SIGTERM, reaped
    sleep_until(start + run.args.fault_seconds)
    process.start()  # same command, same port, empty (no persistence); waits for PING
    return FaultWindow(start, time.time())


@scenario("redis-hang", "SIGSTOP Redis for --fault-seconds, then SIGCONT")
def redis_hang(run: Run) -> FaultWindow:
    process = single_redis(run).process
    start = time.time()
    signal_group(process, signal.SIGSTOP)
    try:
        sleep_until(start + run.args.fault_seconds)
    finally:
        signal_group(process, signal.SIGCONT)
    return FaultWindow(start, time.time())


@scenario(
    "mongo-stop", "SIGTERM SecantusDB, start it again on the same port (same data) after --fault-seconds"
)
def mongo_stop(run: Run) -> FaultWindow:
    process = run.stack.mongo
    start = time.time()
    process.stop()
    stopped = time.time()
    sleep_until(start + run.args.fault_seconds)
    process.start()  # waits for ping
    return FaultWindow(start, time.time(), {"stop_took_s": round(stopped - start, 3)})


@scenario("mongo-hang", "SIGSTOP SecantusDB for --fault-seconds, then SIGCONT")
def mongo_hang(run: Run) -> FaultWindow:
    process = run.stack.mongo
    start = time.time()
    signal_group(process, signal.SIGSTOP)
    try:
        sleep_until(start + run.args.fault_seconds)
    finally:
        signal_group(process, signal.SIGCONT)
    return FaultWindow(start, time.time())


@scenario(
    "sentinel-failover",
    "apps on redis+sentinel:// (master, replica, 3 sentinels); SIGKILL the master; ends at the promotion",
    redis=start_sentinel_redis,
)
def sentinel_failover(run: Run) -> FaultWindow:
    setup = run.stack.redis
    assert isinstance(setup, SentinelRedis), "this scenario needs the Sentinel set-up"
    start = time.time()
    signal_group(setup.master, signal.SIGKILL)
    wait_for(lambda: setup.master_port() == setup.replica_port, RECOVERY_WAIT, "the replica promoted")
    return FaultWindow(
        start, time.time(), {"old_master": setup.master_port_at_start, "new_master": setup.replica_port}
    )


@scenario(
    "cluster-failover",
    "apps on redis+cluster:// (3 masters, 3 replicas); SIGKILL the master of the sync stream's slot; "
    "ends when its replica serves the slot",
    redis=start_cluster_redis,
)
def cluster_failover(run: Run) -> FaultWindow:
    setup = run.stack.redis
    assert isinstance(setup, ClusterRedis), "this scenario needs the Cluster set-up"
    old_master = setup.master_port()
    assert old_master is not None
    start = time.time()
    signal_group(setup.node(old_master), signal.SIGKILL)
    wait_for(lambda: setup.master_port() not in (None, old_master), RECOVERY_WAIT, "a replica promoted")
    return FaultWindow(start, time.time(), {"old_master": old_master, "new_master": setup.master_port()})


@scenario(
    "cluster-subscriber-kill",
    "apps on redis+cluster://; SIGKILL the node holding most Socket.IO queue subscriptions; "
    "ends when as many are back on live nodes and the cluster is ok",
    redis=start_cluster_redis,
)
def cluster_subscriber_kill(run: Run) -> FaultWindow:
    setup = run.stack.redis
    assert isinstance(setup, ClusterRedis), "this scenario needs the Cluster set-up"
    before = setup.subscribers()
    victim = max(before, key=lambda port: before[port])
    assert before[victim] > 0, f"no node holds a subscription: {before}"
    was_master = victim in setup.master_ports()
    start = time.time()
    signal_group(setup.node(victim), signal.SIGKILL)

    def resubscribed() -> bool:
        return sum(setup.subscribers().values()) >= sum(before.values()) and setup.cluster_ok()

    wait_for(resubscribed, RECOVERY_WAIT, "the subscriptions back on live nodes")
    notes = {"victim": victim, "victim_was_master": was_master, "subscribers_before": before}
    return FaultWindow(start, time.time(), {**notes, "subscribers_after": setup.subscribers()})


@scenario("worker-kill", "SIGKILL the worker of A that holds A's socket client; ends at the kill")
def worker_kill(run: Run) -> FaultWindow:
    stack = run.stack
    workers = stack.a.workers()
    client_port = run.sockets["socket A"].local_port()
    holder = worker_holding(workers, stack.a.port, client_port) if client_port else None
    victim = holder or workers[0]  # the harder case when found: a consumer must reconnect
    os.kill(victim, signal.SIGKILL)
    start = time.time()
    # gunicorn forks a replacement; it is in service once its sync reader and queue are on Redis.
    wait_for(
        lambda: victim not in stack.a.workers() and stack.all_workers_attached(),
        RECOVERY_WAIT,
        "a replacement worker",
    )
    notes = {
        "killed_pid": victim,
        "held_socket_a": holder is not None,
        "replacement_ready_s": round(time.time() - start, 3),
    }
    return FaultWindow(start, start, notes)


@scenario(
    "origin-kill-in-redis-outage",
    "SIGTERM Redis, SIGKILL both workers of A half-way through --fault-seconds (their creates of the "
    "outage wait in A's MongoDB outbox), start Redis again; ends once A's new workers read Redis",
)
def origin_kill_in_redis_outage(run: Run) -> FaultWindow:
    process, stack = single_redis(run).process, run.stack
    start = time.time()
    process.stop()
    sleep_until(start + run.args.fault_seconds / 2)
    killed = stack.a.workers()
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    sleep_until(start + run.args.fault_seconds)
    process.start()
    wait_for(
        lambda: not set(killed) & set(stack.a.workers()) and stack.all_workers_attached(),
        RECOVERY_WAIT,
        "A's new workers on Redis",
    )
    notes = {"killed_pids": killed, "killed_after_s": round(killed_at - start, 2)}
    return FaultWindow(start, time.time(), notes)


# New scenarios go above this line, each an ``@scenario`` function (see the module docstring).


# -- one scenario, end to end ------------------------------------------------------------------------


def connect_consumers(stack: Stack, tag: str, sockets: dict[str, SocketConsumer]) -> list[Consumer]:
    """The socket clients (added to ``sockets`` as they connect, so a failure leaves none open)
    and the listener files of B's workers."""
    for name, instance in (("socket A", stack.a), ("socket B", stack.b)):
        sockets[name] = SocketConsumer(name, instance.url, tag)
    listeners = [
        ListenerFile(f"listener B{i}", stack.listener_dir / f"{pid}.log", tag)
        for i, pid in enumerate(stack.b.workers(), start=1)
    ]
    return [*sockets.values(), *listeners]


def warm_up(stack: Stack, tag: str, consumers: list[Consumer]) -> int:
    """Probe creates (n < 0) until one reaches every consumer; the number of probes sent."""
    deadline = time.monotonic() + WARM_UP_TIMEOUT
    n = 0
    while time.monotonic() < deadline:
        n -= 1
        if probe(stack.a.port, tag, n) == 201:
            reached = time.monotonic() + 2.0
            while time.monotonic() < reached:
                if all(n in c.arrivals() for c in consumers):
                    return -n
                time.sleep(0.05)
    raise RuntimeError(f"no probe reached every consumer in {WARM_UP_TIMEOUT:g}s")


def drain(creates: list[Create], consumers: list[Consumer], seconds: float) -> float:
    """Wait for late events: until every consumer has every event expected, nothing new has come
    for ``DRAIN_QUIET`` s (the rest is lost, not late), or ``seconds`` pass. Seconds waited."""
    expected = {c.n for c in creates if c.ok}
    started = last_change = time.monotonic()
    count = -1
    while time.monotonic() - started < seconds:
        arrived = [set(c.arrivals()) for c in consumers]
        if all(expected <= a for a in arrived):
            break
        total = sum(len(a) for a in arrived)
        if total != count:
            count, last_change = total, time.monotonic()
        elif time.monotonic() - last_change >= DRAIN_QUIET:
            break
        time.sleep(0.1)
    return round(time.monotonic() - started, 2)


def run_scenario(entry: Scenario, args: argparse.Namespace, logdir: Path) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    logger.info("%s: starting the servers", entry.name)
    # A folder of its own even in a reused --logdir: the database and logs of a run stay apart.
    stack = start_stack(Path(tempfile.mkdtemp(prefix=f"{entry.name}-", dir=logdir)), entry.redis)
    sockets: dict[str, SocketConsumer] = {}
    load: Load | None = None
    try:
        consumers = connect_consumers(stack, tag, sockets)
        probes = warm_up(stack, tag, consumers)
        quiet = wait_for_quiet(args.quiet_threshold, args.quiet_wait)
        load = Load(stack.a.port, tag, args.rate, args.timeout)
        cpu = CpuSampler().start()
        load.start()
        time.sleep(args.baseline)
        logger.info("%s: fault (%s)", entry.name, entry.summary)
        window = entry.inject(Run(stack, args, sockets))
        sleep_until(window.end + args.recovery)
        creates = load.stop()
        cores = cpu.stop()
        waited = drain(creates, consumers, args.drain)
        logger.info("%s: %d creates, drained in %.1fs", entry.name, len(creates), waited)
        result = figures(entry, creates, consumers, window, args)
        result["cpu"] = {**cores, "others_cores_before": quiet}
        result["warm_up_probes"] = probes
        result["drain_s"] = waited
        result["sockets"] = {name: socket_history(s, window) for name, s in sockets.items()}
        write_raw(stack.workdir / "raw.json", creates, consumers, window)
        return result
    finally:
        if load is not None:
            load.stop()  # at once after a failed inject; a no-op after the normal stop
        for socket in sockets.values():
            socket.close()
        stack.stop()


def socket_history(consumer: SocketConsumer, window: FaultWindow) -> dict[str, Any]:
    """Disconnections and reconnections of a socket client, in s from the start of the fault."""
    return {
        "disconnects_s": [round(t - window.start, 2) for t in consumer.disconnects],
        "reconnects_s": [round(t - window.start, 2) for t in consumer.connects[1:]],
        "connected_at_end": consumer.client.connected,
    }


def write_raw(path: Path, creates: list[Create], consumers: list[Consumer], window: FaultWindow) -> None:
    """Every create and every arrival, for a closer look (kept with --logdir)."""
    raw = {
        "fault": {"start": window.start, "end": window.end},
        "creates": [dataclasses.astuple(c) for c in creates],
        "arrivals": {c.name: c.arrivals() for c in consumers},
    }
    path.write_text(json.dumps(raw))


# -- figures ---------------------------------------------------------------------------------------


def consumer_figures(consumer: Consumer, creates: list[Create]) -> dict[str, Any]:
    arrivals = consumer.arrivals()
    ok = {c.n: c for c in creates if c.ok}
    delivered = [n for n in ok if n in arrivals]
    delays = sorted(arrivals[n][0] - ok[n].sent for n in delivered)
    measured = {c.n for c in creates}
    return {
        "expected": len(ok),
        "delivered": len(delivered),
        "missing": len(ok) - len(delivered),
        "duplicates": sum(len(times) - 1 for n, times in arrivals.items() if n in measured),
        # creates without a 2xx (timed out, dropped connection) whose event came anyway
        "unexpected": sum(1 for n in arrivals if n in measured and n not in ok),
        "delay_p50_ms": round(percentile(delays, 50) * 1000, 1),
        "delay_p99_ms": round(percentile(delays, 99) * 1000, 1),
        "delay_max_ms": round(delays[-1] * 1000, 1) if delays else None,
    }


def full_service(
    creates: list[Create], consumers: list[Consumer], window: FaultWindow, bound: float
) -> dict[str, Any]:
    """When every create from then on is answered 2xx within the bound and reaches every consumer."""
    seen = [set(c.arrivals()) for c in consumers]
    bad = [
        i for i, c in enumerate(creates) if not (c.ok and c.latency <= bound and all(c.n in s for s in seen))
    ]
    if not bad:
        return {"time_to_full_service_s": 0.0, "not_fully_served": 0, "reached": True}
    last = bad[-1]
    after = creates[last + 1].sent if last + 1 < len(creates) else None
    reached = after is not None and creates[-1].sent - after >= SETTLE
    return {
        # 0 when service was already full as the fault ended (the signed figure is the next one)
        "time_to_full_service_s": round(max(0.0, after - window.end), 2) if reached and after else None,
        "full_service_from_fault_end_s": round(after - window.end, 2) if reached and after else None,
        "not_fully_served": len(bad),
        "first_not_fully_served_s": round(creates[bad[0]].sent - window.start, 2),
        "last_not_fully_served_s": round(creates[last].sent - window.start, 2),
        "reached": reached,
    }


def figures(
    entry: Scenario,
    creates: list[Create],
    consumers: list[Consumer],
    window: FaultWindow,
    args: argparse.Namespace,
) -> dict[str, Any]:
    answered = [c for c in creates if c.outcome == "answered"]
    latencies = sorted(c.latency for c in answered)
    lag = sorted(c.sent - c.due for c in creates)
    return {
        "scenario": entry.name,
        "summary": entry.summary,
        "fault_s": round(window.end - window.start, 2),
        "notes": window.notes,
        "sent": len(creates),
        "answered_2xx": sum(1 for c in creates if c.ok),
        "answered_503": sum(1 for c in creates if c.status == 503),
        "answered_other": sorted({c.status for c in answered if not c.ok and c.status != 503}),
        "answered_other_count": sum(1 for c in answered if not c.ok and c.status != 503),
        "within_bound": sum(1 for c in answered if c.latency <= args.bound),
        "timed_out": sum(1 for c in creates if c.outcome == "timeout"),
        "connection_errors": sum(1 for c in creates if c.outcome == "error"),
        "connection_error_kinds": sorted({c.error for c in creates if c.outcome == "error"}),
        "answer_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "answer_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "answer_max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        "sender_lag_max_ms": round(lag[-1] * 1000, 1) if lag else None,
        "consumers": {c.name: consumer_figures(c, creates) for c in consumers},
        **full_service(creates, consumers, window, args.bound),
    }


# -- the table -------------------------------------------------------------------------------------


def delivery_cell(figures: dict[str, Any]) -> str:
    cell = f"{figures['delivered']}/{figures['expected']}"
    return cell + (f" +{figures['duplicates']} dup" if figures["duplicates"] else "")


def full_service_cell(result: dict[str, Any]) -> str:
    if "error" in result:
        return "failed: " + result["error"][:40]
    if not result["reached"]:
        return f"not reached (misses until +{result['last_not_fully_served_s']:.1f} s)"
    return f"{result['time_to_full_service_s']:.2f} s"


def table(results: list[dict[str, Any]], bound: float) -> str:
    names: list[str] = []
    for result in results:
        names += [n for n in result.get("consumers", {}) if n not in names]
    header = ["fault", "fault s", "sent", "2xx", "503", f"≤ {bound:g} s", "timed out", "other"]
    header += [f"{n}: delivered/expected" for n in names] + ["time to full service", "others' cores"]
    rows = [header, ["---"] * len(header)]
    for r in results:
        if "error" in r:
            rows.append([r["scenario"], *[""] * (len(header) - 3), full_service_cell(r), ""])
            continue
        other = r["answered_other_count"] + r["connection_errors"]
        row = [r["scenario"], f"{r['fault_s']:.2f}", str(r["sent"]), str(r["answered_2xx"])]
        row += [str(r["answered_503"]), str(r["within_bound"]), str(r["timed_out"]), str(other)]
        row += [delivery_cell(r["consumers"][n]) if n in r["consumers"] else "" for n in names]
        rows.append([*row, full_service_cell(r), f"{r['cpu']['others_cores']:.2f}"])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


# -- main ----------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    versions = {}
    for package in ("gunicorn", "gevent", "python-socketio", "python-engineio", "redis", "pymongo"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        return done.stdout

    # "+dirty": the product had uncommitted changes (files under kdk_app/, config/ or the entry points)
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "kdk_app", "config", "*.py").strip()
    head = git("log", "-1", "--format=%h").strip() + ("+dirty" if dirty else "")
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "versions": versions, "git": head}


def scenario_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}"
        )
    return names


def parse_args(argv: Iterable[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenarios",
        type=scenario_names,
        default=list(SCENARIOS),
        help=f"comma-separated, in order (default: all): {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="creates per second on A")
    parser.add_argument("--fault-seconds", type=float, default=5.0, help="how long a stop or a pause lasts")
    parser.add_argument("--bound", type=float, default=1.0, help="s: an answer within it counts as in time")
    parser.add_argument("--timeout", type=float, default=5.0, help="s: the client gives up on a create")
    parser.add_argument("--baseline", type=float, default=3.0, help="s of load before the fault")
    parser.add_argument("--recovery", type=float, default=15.0, help="s of load after the fault ends")
    parser.add_argument("--drain", type=float, default=10.0, help="s to wait for late events after the load")
    parser.add_argument("--quiet-wait", type=float, default=10.0, help="max s to wait for a quiet machine")
    parser.add_argument("--quiet-threshold", type=float, default=0.5, help="quiet: others use fewer cores")
    parser.add_argument("--logdir", help="keep the servers' logs here (default: a temporary folder, removed)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.rate <= 0 or args.bound <= 0 or args.timeout <= 0 or args.recovery < SETTLE:
        parser.error(f"--rate, --bound and --timeout must be positive and --recovery at least {SETTLE:g}")
    return args


def main(argv: Iterable[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("kdk_app").setLevel(logging.WARNING)
    args = parse_args(argv)
    keep = args.logdir is not None
    logdir = Path(args.logdir) if keep else Path(tempfile.mkdtemp(prefix="kdk-faults-"))
    logdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = []
    for name in args.scenarios:
        try:
            results.append(run_scenario(SCENARIOS[name], args, logdir))
        except Exception as exc:  # one broken scenario must not hide the others' figures
            logger.exception("%s failed", name)
            results.append({"scenario": name, "error": repr(exc)})
    failed = any("error" in r for r in results)
    if not keep and not failed:
        shutil.rmtree(logdir, ignore_errors=True)
    elif failed:
        logger.warning("logs kept in %s", logdir)
    sys.stdout.write(table(results, args.bound) + "\n")
    summary = {
        "bench": "faults",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine_info(),
        "settings": {k: v for k, v in vars(args).items() if k != "logdir"},
        "seconds": round(time.monotonic() - started, 1),
        "full_service_everywhere": not failed and all(r["reached"] for r in results),
        "scenarios": results,
    }
    sys.stdout.write("BENCH_RESULT " + json.dumps(summary, separators=(",", ":")) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
