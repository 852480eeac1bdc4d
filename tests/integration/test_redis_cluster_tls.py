"""``rediss+cluster://``: a Redis Cluster reached over TLS only, by the app's Redis clients.

Real servers: six redis-server processes with TLS on their only port, TLS on the cluster bus and
on replication (3 masters, 3 replicas), and a CA and a server certificate for 127.0.0.1 made with
openssl for the module. Plain TCP is off on every node.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from clients import wait_until
from node import skip_or_fail
from servers import stop_all_at_once

from kdk_app.core import Application
from kdk_app.embedded import ManagedProcess, find_redis_server, free_port
from kdk_app.redis_connect import redis_client, validate_redis_url
from kdk_app.services.memory import MemoryService
from kdk_app.sync import EventSync

NODES = 6
BOUND = 1.0  # s: TLS handshakes included


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for IP 127.0.0.1: (ca, cert, key)."""
    openssl = shutil.which("openssl") or skip_or_fail("openssl must be on PATH to make test certificates")
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt")
    )
    ext = folder / "server.ext"
    ext.write_text("subjectAltName = IP:127.0.0.1\n")

    def run(*args: str | Path) -> None:
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True, timeout=60)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        ca_key,
        "-out",
        ca,
        "-days",
        "2",
        "-subj",
        "/CN=kdk test CA",
    )
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    run(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-out",
        cert,
        "-days",
        "2",
        "-extfile",
        ext,
    )
    return ca, cert, key


def tls_client(port: int, ca: Path) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        ssl=True,
        ssl_ca_certs=str(ca),
        socket_timeout=BOUND,
        socket_connect_timeout=BOUND,
    )


class TlsCluster:
    def __init__(self, folder: Path) -> None:
        cli = shutil.which("redis-cli") or skip_or_fail("redis-cli must be on PATH to create a Redis Cluster")
        self.ca, cert, key = make_certificates(folder)
        self.ports = [free_port() for _ in range(NODES)]
        self.processes: list[ManagedProcess] = []
        tls = ("--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(self.ca))
        try:
            for port in self.ports:
                workdir = folder / f"node-{port}"
                workdir.mkdir()
                args = [find_redis_server(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"]
                args += [*tls, "--tls-cluster", "yes", "--tls-replication", "yes", "--tls-auth-clients", "no"]
                args += ["--cluster-enabled", "yes", "--cluster-config-file", str(workdir / "nodes.conf")]
                args += ["--cluster-node-timeout", "1000", "--cluster-port", str(free_port())]
                args += ["--dir", str(workdir), "--save", "", "--appendonly", "no", "--daemonize", "no"]
                process = ManagedProcess(
                    args,
                    name=f"redis-tls-{port}",
                    log_path=folder / f"node-{port}.log",
                    ready_check=self._answers(port),
                )
                self.processes.append(process.start())
            addresses = [f"127.0.0.1:{port}" for port in self.ports]
            create = [cli, "--tls", "--cacert", str(self.ca), "--cluster", "create", *addresses]
            created = subprocess.run(
                [*create, "--cluster-replicas", "1", "--cluster-yes"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert created.returncode == 0, created.stdout + created.stderr
            assert wait_until(self.ready, timeout=30, interval=0.1), "the TLS cluster never became ready"
        except BaseException:
            self.stop()
            raise

    def _answers(self, port: int):
        def answers() -> bool:
            client = tls_client(port, self.ca)
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False
            finally:
                client.close()

        return answers

    def ready(self) -> bool:
        for port in self.ports:
            client = tls_client(port, self.ca)
            try:
                if client.cluster("info").get("cluster_state") != "ok":
                    return False
            except redis.RedisError:
                return False
            finally:
                client.close()
        return True

    def url(self, **options: str) -> str:
        query = "&".join(f"{k}={quote(v)}" for k, v in options.items())
        nodes = ",".join(f"127.0.0.1:{port}" for port in self.ports[:3])
        return f"rediss+cluster://{nodes}" + (f"?{query}" if query else "")

    def stop(self) -> None:
        stop_all_at_once([process.stop for process in self.processes])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[TlsCluster]:
    deployment = TlsCluster(tmp_path_factory.mktemp("tls-cluster"))
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("rediss+cluster://127.0.0.1:7000?ssl_ca_cert=/x", "unknown option 'ssl_ca_cert'"),
        ("rediss+cluster://127.0.0.1:7000?ssl_cert_reqs=maybe", "ssl_cert_reqs must be one of"),
        ("redis+cluster://127.0.0.1:7000?ssl_ca_certs=/x", r"TLS ones: rediss\+cluster://"),
    ],
)
def test_tls_cluster_options_are_checked_at_start(url, why):
    with pytest.raises(ValueError, match=why):
        validate_redis_url(url)


def test_the_app_client_reaches_every_master_over_tls(cluster):
    client = redis_client(
        cluster.url(ssl_ca_certs=str(cluster.ca)), socket_timeout=BOUND, connect_timeout=BOUND
    )
    try:
        keys = [f"tls-{uuid.uuid4().hex}-{i}" for i in range(30)]  # spread over the three masters
        for key in keys:
            client.set(key, key)
        assert [client.get(key) for key in keys] == [key.encode() for key in keys]
        assert len({client.get_node_from_key(key).port for key in keys}) == 3
    finally:
        client.close()


def test_a_server_certificate_from_an_unknown_ca_is_refused(cluster):
    client = redis_client(cluster.url(), socket_timeout=BOUND, connect_timeout=BOUND)  # system CAs only
    try:
        with pytest.raises((redis.RedisError, redis.exceptions.RedisClusterException)):
            client.ping()
    finally:
        client.close()


def test_the_sync_bus_carries_an_event_between_two_instances_over_tls(cluster):
    url = cluster.url(ssl_ca_certs=str(cluster.ca))
    stream = f"test:tls:{uuid.uuid4().hex}"
    apps = [Application(), Application()]
    services = [app.use("messages", MemoryService()) for app in apps]
    heard: list[str] = []
    services[1].on("created", lambda data, context: heard.append(data["text"]))
    buses = [EventSync(app, url, stream=stream, secret=b"tls-cluster-secret", block_ms=100) for app in apps]
    try:
        for bus in buses:
            bus.start()
            assert wait_until(bus.is_connected, timeout=10)
        services[0].create({"text": "over TLS"})
        assert wait_until(lambda: heard == ["over TLS"], timeout=10)
    finally:
        for bus in buses:
            bus.stop()
