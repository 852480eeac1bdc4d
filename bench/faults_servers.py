"""The servers of one fault scenario: Redis (single or Sentinel), SecantusDB, instances A and B.

Everything runs on 127.0.0.1 on free ports, in its own process group, and is stopped by PID.
A Redis set-up is any :class:`RedisSetup`: a scenario that needs another topology (a Redis
Cluster, say) adds a subclass and a ``start_*`` function, and names it in its registry entry.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.common import child_environment
from kdk_app.embedded import ManagedProcess, find_redis_server, free_port, start_redis, start_secantusdb

logger = logging.getLogger("bench.faults")

REPO_ROOT = Path(__file__).resolve().parent.parent
DATABASE = "faults"
SENTINEL_MASTER = "mymaster"
APP_START_TIMEOUT = 60.0
WORKERS = 2  # per instance, as the tests' app_server_factory(workers=2)
LISTENER_DIR_VARIABLE = "KDK_BENCH_LISTENER_DIR"  # bench/faults_wsgi.py
POLL = 0.05


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is truthy; RuntimeError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (redis.RedisError, OSError):
            pass  # not ready yet
        time.sleep(POLL)
    raise RuntimeError(f"{what}: not within {timeout:g}s")


def signal_group(process: ManagedProcess, sig: signal.Signals) -> None:
    """Signal the process group of ``process`` (its own session: the group id is its PID)."""
    assert process.pid is not None
    os.killpg(process.pid, sig)


def redis_at(port: int, timeout: float = 0.5) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=timeout)


def redis_answers(port: int, ask: Callable[[redis.Redis], object] = lambda c: c.ping()) -> Callable[[], bool]:
    """A readiness check: ``ask`` on a short-lived client answers something truthy."""

    def check() -> bool:
        client = redis_at(port)
        try:
            return bool(ask(client))
        except redis.RedisError:
            return False
        finally:
            client.close()

    return check


# -- Redis -----------------------------------------------------------------------------------------


@dataclass
class RedisSetup:
    """What the apps connect to (``url``) and every process it took to serve it."""

    url: str
    processes: list[ManagedProcess] = field(default_factory=list)

    def master_port(self) -> int | None:
        """The port of the server that takes writes now (None while there is none)."""
        raise NotImplementedError

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.is_running():
                signal_group(process, signal.SIGCONT)  # a paused server cannot exit
            process.stop()


@dataclass
class SingleRedis(RedisSetup):
    port: int = 0

    @property
    def process(self) -> ManagedProcess:
        return self.processes[0]

    def master_port(self) -> int | None:
        return self.port


def start_single_redis(workdir: Path) -> SingleRedis:
    process, url = start_redis(log_path=workdir / "redis.log")
    return SingleRedis(url=url, processes=[process], port=int(url.rsplit(":", 1)[1].split("/")[0]))


@dataclass
class SentinelRedis(RedisSetup):
    """A master, one replica and three sentinels, as tests/integration/test_redis_sentinel.py has."""

    master_port_at_start: int = 0
    replica_port: int = 0
    sentinel_ports: list[int] = field(default_factory=list)

    @property
    def master(self) -> ManagedProcess:
        return self.processes[0]

    def master_port(self) -> int | None:
        for port in self.sentinel_ports:  # any sentinel that answers
            client = redis_at(port)
            try:
                address = client.sentinel_get_master_addr_by_name(SENTINEL_MASTER)
                return int(address[1]) if address else None
            except redis.RedisError:
                continue
            finally:
                client.close()
        return None


def _redis_server(name: str, port: int, workdir: Path, *extra: str) -> ManagedProcess:
    data = workdir / name
    data.mkdir(parents=True, exist_ok=True)
    args = [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", str(data), "--daemonize", "no", *extra]
    process = ManagedProcess(
        args, name=f"redis-{name}", log_path=workdir / f"redis-{name}.log", ready_check=redis_answers(port)
    )
    return process.start()


def _sentinel(port: int, master_port: int, workdir: Path) -> ManagedProcess:
    # Sentinels rewrite their configuration file: one file each.
    config = workdir / f"sentinel-{port}.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {workdir}\n"
        f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master_port} 2\n"
        f"sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n"
        f"sentinel failover-timeout {SENTINEL_MASTER} 5000\n"
    )
    process = ManagedProcess(
        [find_redis_server(), str(config), "--sentinel"],
        name=f"redis-sentinel-{port}",
        log_path=workdir / f"sentinel-{port}.log",
        ready_check=redis_answers(port, lambda c: c.sentinel_get_master_addr_by_name(SENTINEL_MASTER)),
    )
    return process.start()


def _sentinels_met(ports: list[int]) -> bool:
    """Every sentinel knows the replica and the two other sentinels: a failover can be voted."""
    for port in ports:
        client = redis_at(port)
        try:
            if (
                not client.sentinel_slaves(SENTINEL_MASTER)
                or len(client.sentinel_sentinels(SENTINEL_MASTER)) < 2
            ):
                return False
        finally:
            client.close()
    return True


def start_sentinel_redis(workdir: Path) -> SentinelRedis:
    master_port, replica_port = free_port(), free_port()
    sentinel_ports = [free_port() for _ in range(3)]
    hosts = ",".join(f"127.0.0.1:{port}" for port in sentinel_ports)
    setup = SentinelRedis(
        url=f"redis+sentinel://{hosts}/0/{SENTINEL_MASTER}",
        master_port_at_start=master_port,
        replica_port=replica_port,
        sentinel_ports=sentinel_ports,
    )
    try:
        setup.processes.append(_redis_server("master", master_port, workdir))
        setup.processes.append(
            _redis_server("replica", replica_port, workdir, "--replicaof", "127.0.0.1", str(master_port))
        )
        has_replica = redis_answers(master_port, lambda c: c.info("replication").get("connected_slaves", 0))
        wait_for(has_replica, 15, "the replica attached")
        for port in sentinel_ports:
            setup.processes.append(_sentinel(port, master_port, workdir))
        wait_for(lambda: _sentinels_met(sentinel_ports), 30, "sentinels meeting each other")
    except BaseException:
        setup.stop()
        raise
    return setup


@dataclass
class ClusterRedis(RedisSetup):
    """Three masters and three replicas, as tests/integration/test_redis_cluster.py has."""

    ports: list[int] = field(default_factory=list)
    stream_key: str = "kdk:events"  # the apps' sync stream (sync.stream's default)

    def node(self, port: int) -> ManagedProcess:
        return self.processes[self.ports.index(port)]

    def answers(self, ask: Callable[[redis.Redis], Any]) -> Iterator[tuple[int, Any]]:
        """``(port, what ask returned)`` for each live node, ``(port, None)`` where it failed."""
        for port in self.ports:
            if not self.node(port).is_running():
                continue
            client = redis_at(port)
            try:
                answer = ask(client)
            except redis.RedisError:
                answer = None
            finally:
                client.close()
            yield port, answer

    def master_port(self) -> int | None:
        """The live master serving the sync stream's slot (None while the slot has none)."""
        key = self.stream_key
        for _port, answer in self.answers(lambda c: (c.cluster("keyslot", key), c.cluster("slots"))):
            if answer is None:
                continue
            slot, slots = answer
            for start, end, master, *_ in slots:
                if start <= slot <= end:
                    return int(master[1])
        return None

    def master_ports(self) -> set[int]:
        """The masters serving slots, as the first live node that answers sees them."""
        for _port, slots in self.answers(lambda c: c.cluster("slots")):
            if slots is not None:
                return {int(master[1]) for _start, _end, master, *_ in slots}
        return set()

    def subscribers(self) -> dict[int, int]:
        """Per live node, its clients subscribed to pub/sub channels or patterns (the Socket.IO
        queue's listeners; the sync bus reads a stream and holds no subscription)."""

        def subscribed(clients: list[dict[str, Any]]) -> int:
            return sum(1 for c in clients if int(c.get("sub", 0)) + int(c.get("psub", 0)) > 0)

        return {
            port: subscribed(listed) for port, listed in self.answers(lambda c: c.client_list()) if listed
        }

    def cluster_ok(self) -> bool:
        """Every live node says the cluster is ok (every slot served)."""
        states = [
            info and info.get("cluster_state") for _port, info in self.answers(lambda c: c.cluster("info"))
        ]
        return all(state == "ok" for state in states)

    def ready(self) -> bool:
        """Every live node says ok and the stream's master has a replica in sync."""
        if not self.cluster_ok():
            return False
        master = self.master_port()
        return (
            master is not None
            and redis_answers(master, lambda c: c.info("replication").get("connected_slaves", 0))()
        )


def start_cluster_redis(workdir: Path) -> ClusterRedis:
    cli = shutil.which("redis-cli") or shutil.which("valkey-cli")
    if cli is None:
        raise RuntimeError("redis-cli (or valkey-cli) must be on PATH to create a Redis Cluster")
    ports = [free_port() for _ in range(6)]
    setup = ClusterRedis(url="redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports[:3]), ports=ports)
    try:
        for port in ports:
            node = workdir / f"node-{port}"
            extra = ("--cluster-enabled", "yes", "--cluster-config-file", str(node / "nodes.conf"))
            extra += ("--cluster-node-timeout", "1000", "--cluster-port", str(free_port()))
            setup.processes.append(_redis_server(f"node-{port}", port, workdir, *extra))
        create = [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports)]
        subprocess.run([*create, "--cluster-replicas", "1", "--cluster-yes"], check=True, capture_output=True)
        wait_for(setup.ready, 30, "the cluster ready")
    except BaseException:
        setup.stop()
        raise
    return setup


# -- app instances -----------------------------------------------------------------------------------


def parents() -> dict[int, int]:
    """PID -> parent PID of every process, from one pass over /proc."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
        found[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def children_of(pid: int) -> list[int]:
    return sorted(child for child, parent in parents().items() if parent == pid)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthcheck", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Instance:
    name: str
    process: ManagedProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        assert self.process.pid is not None
        return children_of(self.process.pid)


def instance(name: str, app: str, env: dict[str, str], logdir: Path) -> Instance:
    """A gunicorn instance with two gevent workers, not started yet (see ``start_all``)."""
    port = free_port()
    env = child_environment({**env, "PORT": str(port), "HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1"})
    process = ManagedProcess(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-w", str(WORKERS), app],
        name=f"instance-{name}",
        log_path=logdir / f"instance-{name}.log",
        env=env,
        cwd=REPO_ROOT,
    )
    return Instance(name, process, port)


def start_all(instances: list[Instance]) -> None:
    """Start every instance, then wait for all: they boot side by side.

    Spawned from this thread, never from helper threads: ManagedProcess children get SIGTERM
    when the thread that forked them exits (PR_SET_PDEATHSIG follows the thread).
    """
    for item in instances:
        item.process.start()
    for item in instances:
        item.process.wait_ready(lambda url=item.url: healthy(url), APP_START_TIMEOUT)


# -- the whole stack ---------------------------------------------------------------------------------


@dataclass
class Stack:
    """Redis, SecantusDB (on disk in ``workdir``, so a restart keeps the data) and A and B."""

    workdir: Path
    redis: RedisSetup
    mongo: ManagedProcess
    mongo_url: str
    a: Instance
    b: Instance
    listener_dir: Path
    _stopped: bool = False

    def sync_readers(self) -> int:
        """Sync bus readers blocked in XREAD on the current master: one per loaded worker."""
        port = self.redis.master_port()
        if port is None:
            return 0
        client = redis_at(port)
        try:
            return sum(1 for c in client.client_list() if c.get("cmd") == "xread")
        finally:
            client.close()

    def all_workers_attached(self) -> bool:
        # Not the Socket.IO queue: python-socketio subscribes a worker at its first connection.
        return self.sync_readers() >= 2 * WORKERS

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for process in (self.a.process, self.b.process):
            process.stop(timeout=12)  # gunicorn's graceful_timeout is 10 s
        if self.mongo.is_running():
            signal_group(self.mongo, signal.SIGCONT)
        self.mongo.stop()
        self.redis.stop()


def start_stack(workdir: Path, redis_setup: Callable[[Path], RedisSetup]) -> Stack:
    workdir.mkdir(parents=True, exist_ok=True)
    redis_side = redis_setup(workdir)
    try:
        mongo, mongo_url = start_secantusdb(str(workdir / "db"), log_path=workdir / "secantusdb.log")
    except BaseException:
        redis_side.stop()
        raise
    listener_dir = workdir / "listeners"
    listener_dir.mkdir()
    env = {
        "MONGO_URL": f"{mongo_url.rstrip('/')}/{DATABASE}",
        "REDIS_URL": redis_side.url,
        "KDK_ENV": "production",
        "JWT_SECRET": secrets.token_hex(32),  # production refuses to start without one; shared by A and B
        "KDK_LOG_LEVEL": "warning",
    }
    a = instance("A", "wsgi:app", env, workdir)
    b = instance("B", "bench.faults_wsgi:app", {**env, LISTENER_DIR_VARIABLE: str(listener_dir)}, workdir)
    stack = Stack(workdir, redis_side, mongo, mongo_url, a, b, listener_dir)
    try:
        start_all([a, b])
        # /healthcheck answers once one worker is up; the sync readers show every worker.
        wait_for(stack.all_workers_attached, APP_START_TIMEOUT, "every worker on Redis")
    except BaseException:
        stack.stop()
        raise
    return stack


# -- which worker holds a connection -------------------------------------------------------------------


def _tcp_inode(local_port: int, remote_port: int) -> str | None:
    """Inode of the loopback TCP socket ``local_port`` <-> ``remote_port`` (from /proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, remote = parts[1], parts[2]
        if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == remote_port:
            return parts[9]
    return None


def worker_holding(workers: list[int], server_port: int, client_port: int) -> int | None:
    """The worker whose file descriptors include the server side of a client's connection."""
    inode = _tcp_inode(server_port, client_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in workers:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None


# -- CPU: ours and everyone else's -----------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime, all threads


def machine_busy_seconds() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / CLK_TCK  # all but idle and iowait


def descendants(pid: int) -> list[int]:
    ppids = parents()
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(child for child, parent in ppids.items() if parent == current)
    return out


class CpuSampler:
    """Cores used by this process and everything it started, and by the rest of the machine.

    Sampled per PID, so servers restarted or workers replaced during a fault count from their
    first sample on. Other engineers' work shares the machine: ``others_cores`` shows how much.
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._ours = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._started = time.monotonic()
        self._machine_start = machine_busy_seconds()

    def start(self) -> CpuSampler:
        self._thread.start()
        return self

    def _sample(self) -> dict[int, float]:
        found = {pid: cpu_seconds(pid) for pid in descendants(os.getpid())}
        return {pid: seconds for pid, seconds in found.items() if seconds is not None}

    def _run(self) -> None:
        previous = self._sample()
        while not self._stop.wait(self.interval):
            current = self._sample()
            self._ours += sum(max(0.0, s - previous[p]) for p, s in current.items() if p in previous)
            previous = current

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(5)
        seconds = max(1e-6, time.monotonic() - self._started)
        machine = (machine_busy_seconds() - self._machine_start) / seconds
        ours = self._ours / seconds
        return {
            "ours_cores": round(ours, 2),
            "machine_cores": round(machine, 2),
            "others_cores": round(max(0.0, machine - ours), 2),
        }


def wait_for_quiet(threshold: float, timeout: float) -> float:
    """Wait (up to ``timeout`` s) until other work takes under ``threshold`` cores; the last reading."""
    deadline = time.monotonic() + timeout
    while True:
        sampler = CpuSampler().start()
        time.sleep(1.0)
        others = sampler.stop()["others_cores"]
        if others < threshold or time.monotonic() >= deadline:
            return others
