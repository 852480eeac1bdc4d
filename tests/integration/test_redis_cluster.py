"""Redis Cluster: every Redis user of the app works on a cluster and follows the SIGKILL of a master.

Real servers: six redis-server processes in cluster mode (3 masters, 3 replicas, node timeout
1 s) started here for the whole module; two app instances on it (A: gunicorn with two gevent
workers, B: ``kdk serve``); and the distribution in this process. The failover test kills a
master, so it runs last.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import requests
from clients import Listener, wait_until
from node import skip_or_fail
from redis.cluster import RedisCluster
from servers import AppServerFactory, RunningServer

from kdk_app.auth import LoginThrottle
from kdk_app.core import Application, errors
from kdk_app.core.errors import TooManyRequests
from kdk_app.distributed import Distribution, DistributionSettings
from kdk_app.distributed.listener import NODE_CHECK_INTERVAL
from kdk_app.distributed.names import Names
from kdk_app.embedded import ManagedProcess, find_redis_server, free_port
from kdk_app.redis_connect import redis_client, validate_redis_url
from kdk_app.services.memory import MemoryService

logger = logging.getLogger(__name__)

NODES = 6  # 3 masters, each with one replica
BOUND = 0.25  # s: redis.socket_timeout_ms and connect_timeout_ms of the app (the defaults)
STREAM = "kdk:events"  # sync.stream of the apps (the default)
LOAD_RATE = 20  # creates per second during the failover
PROMOTION_BOUND = 10.0  # s from SIGKILL to a promoted replica (node timeout 1 s, then the vote)
RECOVERY_BOUND = 5.0  # s from the promotion to full socket delivery: what the README promises
LOAD_AFTER_PROMOTION = RECOVERY_BOUND + 1.0  # s of load after the promotion, at most
FULL_FOR = 1.0  # s of creates that every socket client got: delivery is full again, the load stops
SECRET = "cluster-distribution-secret"


# --- URLs and the factory (no server) ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://127.0.0.1:7000",
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,[::1]:7002/",
        "redis+cluster://:s3cret@10.0.0.1:7000,10.0.0.2:7000/0",
        "valkey+cluster://user:pw@h1:7000,h2:7001",
    ],
)
def test_cluster_urls_name_nodes_and_at_most_database_0(url):
    validate_redis_url(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis+cluster://", "is not host:port"),
        ("redis+cluster://127.0.0.1", "is not host:port"),
        ("redis+cluster://127.0.0.1:7000,", "is not host:port"),
        ("redis+cluster://127.0.0.1:x", "is not host:port"),
        ("redis+cluster://127.0.0.1:70000", "is not host:port"),
        ("redis+cluster://127.0.0.1:7000/1", "database 0 only"),
        ("redis+cluster://127.0.0.1:7000/0/mymaster", "database 0 only"),
        ("redis+cluster://127.0.0.1:7000?ssl=true", "no options"),
    ],
)
def test_malformed_cluster_urls_are_refused_with_a_clear_message(url, why):
    with pytest.raises(ValueError, match=f"invalid Redis URL.*{why}.*expected redis://.*redis\\+cluster://"):
        validate_redis_url(url)
    with pytest.raises(ValueError, match="invalid Redis URL"):
        redis_client(url, socket_timeout=BOUND, connect_timeout=BOUND)


def test_a_refused_cluster_url_never_shows_its_password():
    with pytest.raises(ValueError) as refused:
        validate_redis_url("redis+cluster://:s3cret@127.0.0.1:7000/2")
    assert "s3cret" not in str(refused.value)


def test_a_cluster_client_talks_to_the_cluster_only_at_its_first_command_and_fails_as_a_redis_error():
    port = free_port()  # nothing listens here
    client = redis_client(f"redis+cluster://127.0.0.1:{port}", socket_timeout=BOUND, connect_timeout=BOUND)
    assert isinstance(client, RedisCluster)  # built without a cluster, as redis.Redis would be
    script = client.register_script("return 1")  # what the distribution does at start
    assert script.sha
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):  # a RedisError, which every caller handles
        client.get("x")
    assert time.monotonic() - started < 2 * BOUND
    client.close()


@contextmanager
def hung_nodes(count: int) -> Iterator[list[int]]:
    """Ports that accept connections (the kernel's backlog) and never answer: hung nodes."""
    sockets = [socket.create_server(("127.0.0.1", 0), backlog=64) for _ in range(count)]
    try:
        yield [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def test_a_cluster_that_does_not_answer_costs_one_bound_per_node_then_fails_at_once_for_a_while():
    with hung_nodes(3) as ports:
        url = "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports)
        client = redis_client(url, socket_timeout=BOUND, connect_timeout=BOUND)
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError, match="Redis Cluster"):
            client.get("x")
        assert 3 * BOUND <= time.monotonic() - started < 3 * BOUND + 0.5  # each node once
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError, match="no node answered"):
            client.get("x")
        assert time.monotonic() - started < 0.1  # not every node again, for PAUSE
        client.close()


# --- a real cluster ------------------------------------------------------------------------------


def node_client(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5)


class ClusterDeployment:
    """Six nodes on free ports made into a cluster by ``redis-cli --cluster create``; stopped by PID."""

    def __init__(self, tmp: Path) -> None:
        cli = shutil.which("redis-cli") or shutil.which("valkey-cli")
        if cli is None:
            skip_or_fail("redis-cli (or valkey-cli) must be on PATH to create a Redis Cluster")
        self.ports = [free_port() for _ in range(NODES)]
        self.processes: dict[int, ManagedProcess] = {}
        for port in self.ports:
            self.processes[port] = self._node(tmp, port).start()
        created = subprocess.run(
            [cli, "--cluster", "create", *self.addresses, "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        assert wait_until(self.ready, timeout=30, interval=0.1), "the cluster never became ready"

    @staticmethod
    def _node(tmp: Path, port: int) -> ManagedProcess:
        workdir = tmp / f"node-{port}"
        workdir.mkdir()
        args = [
            *(find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)),
            *("--cluster-enabled", "yes", "--cluster-config-file", str(workdir / f"nodes-{port}.conf")),
            # The bus port is port + 10000 unless given: a free port of its own.
            *("--cluster-node-timeout", "1000", "--cluster-port", str(free_port())),
            # No 5 s wait before the first full sync: replicas must be in sync before a kill.
            *("--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0", "--daemonize", "no"),
        ]

        def answers() -> bool:
            client = node_client(port)
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False
            finally:
                client.close()

        return ManagedProcess(
            args, name=f"redis-cluster-{port}", log_path=tmp / f"node-{port}.log", ready_check=answers
        )

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.ports]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(self.addresses[:3])

    def alive(self) -> list[int]:
        return [port for port, process in self.processes.items() if process.is_running]

    def ready(self) -> bool:
        """Every live node says ok, three masters serve the slots, and every replica is in sync."""
        masters = synced = 0
        for port in self.alive():
            client = node_client(port)
            try:
                if client.cluster("info").get("cluster_state") != "ok":
                    return False
                info = client.info("replication")
            except redis.RedisError:
                return False
            finally:
                client.close()
            if info["role"] == "master":
                masters += info.get("connected_slaves", 0) > 0
            elif info.get("master_link_status") == "up" and not info.get("master_sync_in_progress"):
                synced += 1
        return masters == 3 and synced == len(self.alive()) - 3

    def client(self) -> RedisCluster:
        """A plain redis-py cluster client of the test's own, to look at the cluster."""
        return RedisCluster(host="127.0.0.1", port=self.alive()[0], socket_timeout=1)

    def masters_of(self, keys: Iterable[str]) -> list[int]:
        """The port of the master serving each key, from one client (one slots map)."""
        client = self.client()
        try:
            return [client.get_node_from_key(key).port for key in keys]
        finally:
            client.close()

    def master_of(self, key: str) -> int:
        return self.masters_of([key])[0]

    def replica_of(self, master: int) -> int:
        client = node_client(master)  # the master itself knows its replica at once
        try:
            return int(client.info("replication")["slave0"]["port"])
        finally:
            client.close()

    def name_on(self, master: int, make: Callable[[int], str], key: Callable[[str], str] = str) -> str:
        """The first of ``make(0)``, ``make(1)`` ... whose ``key(name)`` ``master`` serves."""
        names = [make(i) for i in range(1000)]  # 1 in 3 is on each master
        ports = self.masters_of(key(name) for name in names)
        return next(name for name, port in zip(names, ports, strict=True) if port == master)

    def is_master(self, port: int) -> bool:
        client = node_client(port)
        try:
            return client.info("replication")["role"] == "master"
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[ClusterDeployment]:
    deployment = ClusterDeployment(tmp_path_factory.mktemp("cluster"))
    try:
        yield deployment
    finally:
        deployment.stop()


def test_a_cluster_client_reaches_every_master_through_one_url(cluster):
    client = redis_client(cluster.url, socket_timeout=BOUND, connect_timeout=BOUND)
    try:
        keys = [f"k{i}" for i in range(30)]
        assert len(set(cluster.masters_of(keys))) == 3  # the keys span every master
        for key in keys:
            client.set(key, key)
        assert [client.get(key) for key in keys] == [key.encode() for key in keys]
        pipe = client.pipeline(transaction=False)  # across slots: redis-py splits it per node
        for key in keys:
            pipe.incr(f"n:{key}")
        assert pipe.execute() == [1] * len(keys)
        # One hash tag, one slot: the multi-key commands the distribution sends are allowed.
        names = Names("kdk:dist", "t")
        client.rpush(names.calls("messages"), b"call")
        assert (
            client.blpop([names.calls("people"), names.calls("messages"), names.wake("i")], 1)[1] == b"call"
        )
        assert client.mget([names.record("a"), names.record("b")]) == [None, None]
    finally:
        client.close()


def test_pubsub_reaches_a_subscriber_on_another_node(cluster):
    subscriber = redis_client(cluster.url, socket_timeout=1.0, connect_timeout=BOUND).pubsub()
    subscriber.subscribe("kdk-test-channel")
    publisher = redis_client(cluster.url, socket_timeout=BOUND, connect_timeout=BOUND)
    try:
        node = subscriber.get_pubsub_node().port
        other = next(port for port in cluster.ports if port != node)
        node_client(other).publish("kdk-test-channel", "through the bus")  # to another node
        publisher.publish("kdk-test-channel", "through the app's client")
        heard: list[bytes] = []

        def read() -> bool:
            message = subscriber.get_message(timeout=0.2)
            if message and message["type"] == "message":
                heard.append(message["data"])
            return len(heard) == 2

        assert wait_until(read, timeout=5), heard
        assert set(heard) == {b"through the bus", b"through the app's client"}  # two origins: any order
    finally:
        subscriber.close()
        publisher.close()


def test_the_login_throttle_counts_every_parallel_attempt_once_on_a_cluster(cluster):
    prefix = f"kdk:test:{uuid.uuid4().hex[:8]}:"
    throttle = LoginThrottle(max_attempts=5, ip_max_attempts=10_000, redis_url=cluster.url, prefix=prefix)
    email = f"{uuid.uuid4().hex[:8]}@example.com"

    def attempt(_: int) -> bool:
        try:
            throttle.attempt(email, "10.0.0.7")
            return True
        except TooManyRequests:
            return False

    look = cluster.client()
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            passed = sum(pool.map(attempt, range(60)))
        assert passed == 5  # counted once each
        # ...in Redis, not in this process (which the throttle falls back to when Redis fails).
        assert throttle.counters.local._counts == {}
        assert int(look.get(throttle.email_key(email))) == 60
        throttle.success(email, "10.0.0.7")  # clears the email, gives the address one count back
        assert look.get(throttle.email_key(email)) is None
        assert int(look.get(f"{prefix}ip:10.0.0.7")) == 59
    finally:
        look.close()
        throttle.close()


def distribution(url: str, app: Application, key: str, **options) -> Distribution:
    settings = {"key": key, "secret": SECRET, "heartbeat_interval": 0.5, "ttl": 2, "timeout": 5, **options}
    return Distribution(
        app, DistributionSettings.from_settings({"redis": {"url": url}, "distribution": settings})
    ).start()


def catalog_provider() -> Application:
    app = Application()
    app.use("catalog", MemoryService(multi=True))
    return app.setup()


@pytest.fixture
def partition(cluster) -> Iterator[Callable[..., Distribution]]:
    """``make(app, key=..., **options)``: distributions on the cluster, all stopped afterwards."""
    started: list[Distribution] = []

    def make(app: Application, key: str, **options) -> Distribution:
        started.append(distribution(cluster.url, app, key, **options))
        return started[-1]

    yield make
    for member in reversed(started):
        member.stop()


def test_remote_calls_events_and_liveness_work_on_a_cluster(partition):
    key = f"c{uuid.uuid4().hex[:8]}"
    provider, consumer = catalog_provider(), Application().setup()
    served = partition(provider, key, services=["catalog"])
    consuming = partition(consumer, key, services=[])
    assert wait_until(lambda: "catalog" in consumer.services, timeout=5)
    heard = []
    consumer.service("catalog").on("created", lambda data, context: heard.append(data["title"]))
    assert consumer.service("catalog").create({"title": "map"})["title"] == "map"  # BLPOP, reply
    assert consumer.service("catalog").find()[0]["title"] == "map"
    assert wait_until(lambda: heard == ["map"], timeout=5)  # the events channel
    started = time.monotonic()
    with pytest.raises(errors.Unavailable):  # the liveness script: no live provider, at once
        consuming.caller.call("nothing-here", "find")
    assert time.monotonic() - started < 0.2
    served.stop()
    assert wait_until(lambda: "catalog" not in consumer.services, timeout=5)  # registry, withdrawn


def answers(app: Application) -> bool:
    try:
        app.service("catalog").find()
        return True
    except errors.FeathersError:
        return False


def test_remote_calls_follow_a_manual_failover_of_the_partitions_master(cluster, partition):
    # A master that the failover test below does not kill, and a partition on it.
    master = next(
        port for port in cluster.alive() if cluster.is_master(port) and port != cluster.master_of(STREAM)
    )
    replica = cluster.replica_of(master)
    tag = uuid.uuid4().hex[:4]
    key = cluster.name_on(master, lambda i: f"m{i}-{tag}", lambda key: Names("kdk:dist", key).instances)
    consumer = Application().setup()
    partition(catalog_provider(), key, services=["catalog"], timeout=1)
    partition(consumer, key, services=[], timeout=1)
    assert wait_until(lambda: "catalog" in consumer.services, timeout=5) and answers(consumer)

    # The old master stays up, as a replica: the listeners' connections to it do not break.
    node_client(replica).execute_command("CLUSTER", "FAILOVER")
    assert wait_until(lambda: cluster.is_master(replica), timeout=10)
    switched = time.monotonic()
    assert wait_until(lambda: answers(consumer), timeout=NODE_CHECK_INTERVAL + 5, interval=0.1)
    logger.warning("manual failover: remote calls answer again %.2fs after it", time.monotonic() - switched)
    assert wait_until(cluster.ready, timeout=15)  # the old master back in sync, as a replica


# --- the app on the cluster ------------------------------------------------------------------------


@dataclass
class Apps:
    a: RunningServer  # gunicorn, two gevent workers
    b: RunningServer  # kdk serve
    master: int  # the master of the sync stream, and of the Socket.IO channel
    replica: int  # its replica
    prefix: str  # of the login throttle's keys
    listeners: list[Listener] = field(default_factory=list)  # socket clients: 3 on A, 2 on B

    def connect_listeners(self) -> list[Listener]:
        """The socket clients, once every process's queue listener is subscribed: a process
        subscribes when its Socket.IO server starts, and events published before are not
        heard there."""
        if not self.listeners:  # three on A: most likely on both of its workers
            urls = [self.a.url] * 3 + [self.b.url] * 2
            self.listeners = [Listener(url) for url in urls]
            rounds = itertools.count()

            def everyone_hears_both() -> bool:
                n = next(rounds)
                assert create(self.a, f"warm-a-{n}") == 201 and create(self.b, f"warm-b-{n}") == 201
                wanted = {f"warm-a-{n}", f"warm-b-{n}"}
                return wait_until(lambda: all(wanted <= texts(c) for c in self.listeners), timeout=1)

            assert wait_until(everyone_hears_both, timeout=30, interval=0.1)
        return self.listeners


@pytest.fixture(scope="module")
def apps(cluster, mongo_url, tmp_path_factory) -> Iterator[Apps]:
    master = cluster.master_of(STREAM)
    # The queue's listeners subscribe on the node of the channel's slot: put it on the master
    # that is killed too, so that the failover test sees them reconnect.
    channel = cluster.name_on(master, lambda i: f"kdk-socketio-{i}")
    prefix = f"kdk:test:{uuid.uuid4().hex[:8]}:"
    env = {
        "REDIS_URL": cluster.url,
        "KDK_MONGO__DATABASE": f"cluster_{uuid.uuid4().hex[:10]}",
        "KDK_SOCKETIO__CHANNEL": channel,
        "KDK_AUTHENTICATION__THROTTLE__MAX_ATTEMPTS": "2",
        "KDK_AUTHENTICATION__THROTTLE__PREFIX": prefix,
    }
    factory = AppServerFactory(mongo_url, tmp_path_factory.mktemp("cluster-apps"))
    try:
        # One after the other, from this thread: a child is SIGTERMed when the thread that
        # started it ends (PR_SET_PDEATHSIG), so no thread pool here.
        a, b = factory(env, workers=2), factory(env)
        running = Apps(a, b, master, cluster.replica_of(master), prefix)
        yield running
        for listener in running.listeners:
            listener.close()
    finally:
        factory.stop_all()


def create(server: RunningServer, text: str) -> int:
    return requests.post(server.url + "/messages", json={"text": text}, timeout=10).status_code


def texts(listener: Listener) -> set[str]:
    return {m["text"] for m in listener.named("messages created")}


def heard(server: RunningServer) -> set[str]:
    """Synced events that the server-side listener of ``server`` got (config/test.py)."""
    return {r["text"] for r in requests.get(server.url + "/heard", timeout=5).json()}


def health(server: RunningServer) -> requests.Response:
    return requests.get(server.url + "/healthcheck", timeout=10)


def test_every_redis_user_of_the_app_works_on_a_cluster(cluster, apps):
    a, b = apps.a, apps.b
    for server in (a, b):
        answer = health(server)
        assert answer.status_code == 200 and answer.json()["isRedisRunning"] is True, answer.text
    listeners = apps.connect_listeners()
    look = cluster.client()
    try:
        # The Socket.IO queue both ways, and the sync bus to the other instance's listeners.
        assert create(a, "from-a") == 201 and create(b, "from-b") == 201
        assert wait_until(lambda: all({"from-a", "from-b"} <= texts(c) for c in listeners))
        assert wait_until(lambda: "from-a" in heard(b) and "from-b" in heard(a))

        # Login: the throttle counts in the cluster, not per worker.
        body = {"strategy": "local", "email": f"{uuid.uuid4().hex[:8]}@example.com", "password": "wrong"}
        statuses = [
            requests.post(a.url + "/authentication", json=body, timeout=10).status_code for _ in range(3)
        ]
        assert statuses == [401, 401, 429]
        assert list(look.scan_iter(match=apps.prefix + "*"))
        # A token made on A (with the development secret shared through the cluster) works on B.
        user = {"email": f"{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse battery"}
        registered = requests.post(b.url + "/users", json=user, timeout=10)
        assert registered.status_code == 201, registered.text
        login = requests.post(a.url + "/authentication", json={"strategy": "local", **user}, timeout=10)
        assert login.status_code == 201, login.text
        me = requests.get(
            f"{b.url}/users/{registered.json()['_id']}",
            headers={"Authorization": f"Bearer {login.json()['accessToken']}"},
            timeout=10,
        )
        assert me.status_code == 200, me.text
        assert look.get("kdk:auth:dev-secret")
    finally:
        look.close()


# --- the failover ----------------------------------------------------------------------------------


class Timeline:
    """When things happened during the failover, in time.monotonic() seconds."""

    def __init__(self) -> None:
        self.killed_at = 0.0
        self.promoted_at: float | None = None
        self.first: dict[str, float] = {}  # name -> first time it held after the promotion

    def after_promotion(self, name: str, holds: bool) -> None:
        if holds and self.promoted_at is not None and name not in self.first:
            self.first[name] = time.monotonic()

    def since_promotion(self, name: str) -> float | None:
        at = self.first.get(name)
        return None if at is None or self.promoted_at is None else at - self.promoted_at


def watch(stop: threading.Event, interval: float, step: Callable[[], None]) -> threading.Thread:
    """Run ``step`` every ``interval`` until ``stop`` on a thread of its own."""

    def run() -> None:
        while not stop.is_set():
            try:
                step()
            except Exception:  # a probe of a failing cluster may fail: the next one counts
                logger.debug("probe failed", exc_info=True)
            stop.wait(interval)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@dataclass
class Probe:
    """One Redis command of the app's own client, timed: (start, seconds, succeeded)."""

    client: redis.Redis
    samples: list[tuple[float, float, bool]] = field(default_factory=list)

    def __call__(self) -> None:
        started = time.monotonic()
        try:
            self.client.xlen(STREAM)
            ok = True
        except redis.RedisError:
            ok = False
        self.samples.append((started, time.monotonic() - started, ok))


def test_every_redis_user_follows_the_failover_of_a_cluster_master(cluster, apps, partition):
    a, b = apps.a, apps.b
    listeners = apps.connect_listeners()
    assert wait_until(cluster.ready, timeout=15) and cluster.master_of(STREAM) == apps.master
    # The distribution's partition on the same master: its listeners and scripts move too.
    tag = uuid.uuid4().hex[:4]
    key = cluster.name_on(apps.master, lambda i: f"f{i}-{tag}", lambda key: Names("kdk:dist", key).instances)
    provider, consumer = catalog_provider(), Application().setup()
    partition(provider, key, services=["catalog"], timeout=2)
    partition(consumer, key, services=[], timeout=2)
    assert wait_until(lambda: "catalog" in consumer.services, timeout=5)
    assert create(a, "before") == 201
    assert wait_until(lambda: all("before" in texts(c) for c in listeners) and "before" in heard(b))

    timeline = Timeline()
    probe = Probe(redis_client(cluster.url, socket_timeout=BOUND, connect_timeout=BOUND))
    calls: list[tuple[float, bool]] = []  # remote calls through the distribution: (when, ok)
    sent: list[tuple[str, float, str]] = []  # creates: (text, when, instance)

    def remote_call() -> None:
        try:
            consumer.service("catalog").find()
            calls.append((time.monotonic(), True))
        except errors.FeathersError:
            calls.append((time.monotonic(), False))
        timeline.after_promotion("remote calls", calls[-1][1])

    def monitor() -> None:
        if timeline.promoted_at is None and cluster.is_master(apps.replica):
            timeline.promoted_at = time.monotonic()
        timeline.after_promotion("health A", health(a).status_code == 200)
        timeline.after_promotion("health B", health(b).status_code == 200)
        if timeline.promoted_at is not None:  # what A's outbox held reached B's listener
            held = {text for text, when, on in sent if on == "a" and when < timeline.promoted_at}
            timeline.after_promotion("sync outbox delivered", held <= heard(b))

    def full_again(promoted_at: float) -> bool:
        """Every client got the creates of the last FULL_FOR s (but for the last 0.3 s, in flight)."""
        now = time.monotonic()
        if now - promoted_at > LOAD_AFTER_PROMOTION:
            return True  # the assertions below tell whether it came back in time
        if now - promoted_at < FULL_FOR + 0.3:
            return False
        recent = [text for text, when, _ in sent if now - FULL_FOR - 0.3 < when < now - 0.3]
        got = [texts(c) for c in listeners]
        return bool(recent) and all(text in heard for text in recent for heard in got)

    stop = threading.Event()
    threads = [watch(stop, 0.05, probe), watch(stop, 0.1, remote_call), watch(stop, 0.05, monitor)]
    statuses = []
    try:
        # 20 creates/s, alternately on A and B; the master dies between two of them, a second in.
        pace = threading.Event()  # never set: paces the load
        started = time.monotonic()
        for i in itertools.count():
            if i == LOAD_RATE:
                os.kill(cluster.processes[apps.master].pid, signal.SIGKILL)
                timeline.killed_at = time.monotonic()
            on, server = ("a", a) if i % 2 else ("b", b)
            sent.append((f"during-{i}", time.monotonic(), on))
            statuses.append(create(server, sent[-1][0]))
            if timeline.killed_at:
                since_kill = time.monotonic() - timeline.killed_at
                assert timeline.promoted_at is not None or since_kill < PROMOTION_BOUND, "never promoted"
                if timeline.promoted_at and full_again(timeline.promoted_at):
                    break
            pace.wait(max(0.0, started + (i + 1) / LOAD_RATE - time.monotonic()))
        # Server-side listeners get every synced event: the outboxes held them while it took.
        made_on_a = {text for text, _, on in sent if on == "a"}
        made_on_b = {text for text, _, on in sent if on == "b"}
        assert wait_until(lambda: made_on_a <= heard(b) and made_on_b <= heard(a), timeout=15)
        assert wait_until(lambda: all(sent[-1][0] in texts(c) for c in listeners), timeout=10)
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
        probe.client.close()

    promoted_at, killed_at = timeline.promoted_at, timeline.killed_at
    assert set(statuses) == {201}, statuses  # MongoDB is the store; Redis only carries events
    # Socket clients miss at most events of the failover window, and get all of them again soon.
    delivered = [all(text in texts(c) for c in listeners) for text, _, _ in sent]
    full_from = next(i for i in range(len(sent)) if all(delivered[i:]))
    recovered_at = sent[full_from][1]
    missed_at = [when for (_, when, _), ok in zip(sent, delivered, strict=True) if not ok]
    assert all(when >= killed_at for when in missed_at), "events before the SIGKILL were missed"
    assert recovered_at - promoted_at < RECOVERY_BOUND, "socket delivery did not come back in time"
    # The app's own client: one command never waits long, and commands succeed after the promotion.
    during = [(when, seconds, ok) for when, seconds, ok in probe.samples if when >= killed_at]
    slowest = max(seconds for _, seconds, _ in during)
    failed_after = [when - promoted_at for when, _, ok in during if when >= promoted_at and not ok]
    assert slowest < 4 * BOUND, f"a command took {slowest:.2f}s"
    assert all(ok for when, _, ok in during if when >= promoted_at + 1.0)
    # Remote calls and health come back too.
    assert all(ok for when, ok in calls if when >= promoted_at + RECOVERY_BOUND)
    for name in ("health A", "health B", "remote calls", "sync outbox delivered"):
        assert timeline.since_promotion(name) is not None, f"{name}: never back after the promotion"
    logger.warning(
        "cluster failover: promoted %.2fs after SIGKILL; %d creates (all 201), %d missed by some "
        "socket client; SIGKILL -> full socket delivery %.2fs (%.2fs after the promotion); after the "
        "promotion: health A %.2fs, B %.2fs, remote calls %.2fs, outbox delivered %.2fs; the app's "
        "client: slowest command %.3fs, %d failed after the promotion (the last %.2fs after it); "
        "remote calls failed: %d",
        promoted_at - killed_at,
        len(sent),
        len(missed_at),
        recovered_at - killed_at,
        recovered_at - promoted_at,
        timeline.since_promotion("health A"),
        timeline.since_promotion("health B"),
        timeline.since_promotion("remote calls"),
        timeline.since_promotion("sync outbox delivered"),
        slowest,
        len(failed_after),
        max(failed_after, default=0.0),
        sum(1 for _, ok in calls if not ok),
    )
    for server in (a, b):
        assert "Traceback" not in server.log_text()  # no thread died, no request failed
