"""A hung Redis (SIGSTOP) costs a request at most a bounded time, and never a worker."""

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import requests
from clients import Listener, wait_until
from servers import gunicorn_workers

PAUSE = 5.0  # s Redis stays stopped
CREATES_DURING_PAUSE = 20
BOUND = 1.0  # s, the most a create may take while Redis is hung
IDLE_CPU_LIMIT = 0.3  # share of one core an idle worker may use
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    # Fields after the command name (which may hold spaces); utime and stime are the 14th and 15th.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def create(server, text: str) -> float:
    started = time.monotonic()
    response = requests.post(server.url + "/messages", json={"text": text}, timeout=10)
    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.text
    return elapsed


def texts(listener: Listener) -> set[str]:
    return {m["text"] for m in listener.named("messages created")}


def test_a_hung_redis_costs_requests_a_bounded_time_and_no_worker_spins(
    app_server_factory, redis_server_factory
):
    redis_process, redis_url = redis_server_factory()
    env = {"REDIS_URL": redis_url, "KDK_MONGO__DATABASE": f"hung_{uuid.uuid4().hex[:10]}"}
    instance_a = app_server_factory(env, workers=2)
    instance_b = app_server_factory(env)
    # Several clients on A, so that both of its workers most likely hold some; one on B.
    on_a = [Listener(instance_a.url) for _ in range(4)]
    on_b = Listener(instance_b.url)
    everyone = [*on_a, on_b]
    try:
        assert wait_until(lambda: len(gunicorn_workers(instance_a.process.pid)) == 2)
        workers = gunicorn_workers(instance_a.process.pid)
        create(instance_a, "before-a")
        create(instance_b, "before-b")
        assert wait_until(lambda: all({"before-a", "before-b"} <= texts(c) for c in everyone))

        os.kill(redis_process.pid, signal.SIGSTOP)
        try:
            paused_at = time.monotonic()
            # Health says so within its own bound (healthcheck.timeout_ms, 1 s), no retries on top.
            health = requests.get(instance_a.url + "/healthcheck", timeout=10)
            assert time.monotonic() - paused_at < 2.0
            assert health.status_code == 503 and health.json()["isRedisRunning"] is False
            pace = threading.Event()  # never set: paces the creates over the pause
            slowest = 0.0
            for i in range(CREATES_DURING_PAUSE):
                slowest = max(slowest, create(instance_a if i % 2 else instance_b, f"during-{i}"))
                pace.wait(max(0.0, paused_at + PAUSE * (i + 1) / CREATES_DURING_PAUSE - time.monotonic()))
            assert slowest < BOUND, f"a create took {slowest:.2f}s while Redis was hung"
        finally:
            os.kill(redis_process.pid, signal.SIGCONT)

        # Events cross workers and instances again within seconds: every client hears a create
        # made on A and one made on B after the resume.
        sent: list[str] = []

        def delivered_again() -> bool:
            for server, name in ((instance_a, "a"), (instance_b, "b")):
                sent.append(f"after-{name}-{len(sent)}")
                assert create(server, sent[-1]) < BOUND
            heard = [texts(c) for c in everyone]
            return all(any(t.startswith(f"after-{n}") for t in h) for h in heard for n in "ab")

        assert wait_until(delivered_again, timeout=10, interval=0.2)
        assert max(create(instance_a, f"later-{i}") for i in range(10)) < BOUND

        # No worker spins, and none was replaced by gunicorn's timeout.
        before = {pid: cpu_seconds(pid) for pid in workers}
        threading.Event().wait(2.0)  # the measuring window, not a readiness wait
        busy = {pid: (cpu_seconds(pid) - before[pid]) / 2.0 for pid in workers}
        assert all(share < IDLE_CPU_LIMIT for share in busy.values()), busy
        assert gunicorn_workers(instance_a.process.pid) == workers
    finally:
        for client in everyone:
            client.close()


def test_a_remote_call_answers_503_within_the_bound_while_redis_is_hung(
    app_server_factory, redis_server_factory
):
    from distribution_envs import HEARTBEAT, b_env, c_env, mounted

    redis_process, redis_url = redis_server_factory()
    key, db = f"k{uuid.uuid4().hex[:8]}", f"hungd_{uuid.uuid4().hex[:10]}"
    app_server_factory(env=b_env(redis_url, key, db))
    consumer = app_server_factory(env=c_env(redis_url, key, db))
    assert wait_until(lambda: "catalog" in mounted(consumer), timeout=2 * HEARTBEAT + 5)
    assert requests.get(consumer.url + "/catalog", timeout=10).status_code == 200

    os.kill(redis_process.pid, signal.SIGSTOP)
    try:
        for _ in range(5):
            started = time.monotonic()
            response = requests.get(consumer.url + "/catalog", timeout=10)
            assert time.monotonic() - started < BOUND
            assert response.status_code == 503 and response.json()["name"] == "Unavailable", response.text
    finally:
        os.kill(redis_process.pid, signal.SIGCONT)

    assert wait_until(
        lambda: requests.get(consumer.url + "/catalog", timeout=10).status_code == 200, timeout=10
    )
