"""``/metrics`` under ``gunicorn -c gunicorn.conf.py wsgi:app`` with 2 workers: whichever worker
answers the scrape, it counts the traffic of both (prometheus-client's multiprocess mode). Real
SecantusDB and Redis; the access log tells which worker served each request."""

from __future__ import annotations

import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from clients import Listener, wait_until
from prometheus_client.parser import text_string_to_metric_families

from kdk_app.embedded import free_port
from kdk_app.metrics.pending import FLUSH_INTERVAL_S

BATCH, MAX_CREATES = 30, 1500
ACCESS_LINE = re.compile(r"\[(\d+)\] INFO gunicorn\.access \[[^\]]+\] \S+ \"POST /messages HTTP/1\.1\" 201")


def metric(url: str, name: str, **labels: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def create(url: str, index: int) -> int:
    # A connection each: the workers take turns accepting them.
    return requests.post(f"{url}/messages", json={"text": f"m{index}"}, timeout=10).status_code


def test_a_scrape_counts_the_requests_calls_and_sockets_of_every_worker_within_a_second(
    app_server_factory, redis_url, tmp_path
):
    directory = tmp_path / "metrics"
    server = app_server_factory(
        {"REDIS_URL": redis_url, "KDK_ACCESS_LOG": "-", "PROMETHEUS_MULTIPROC_DIR": str(directory)}, workers=2
    )
    # Batches of parallel creates, a connection each, until both workers have served some (the
    # kernel hands connections to whichever worker accepts first; under load that can be one).
    sent, served_by = 0, Counter[str]()
    with ThreadPoolExecutor(max_workers=12) as pool:
        while len(served_by) < 2 and sent < MAX_CREATES:
            statuses = list(pool.map(lambda index: create(server.url, index), range(sent, sent + BATCH)))
            assert statuses == [201] * BATCH
            sent += BATCH
            assert wait_until(
                lambda expected=sent: len(ACCESS_LINE.findall(server.log_text())) == expected
            ), server.log_text()
            served_by = Counter(ACCESS_LINE.findall(server.log_text()))
    assert len(served_by) == 2, f"one worker served all {sent} requests: {served_by}"

    # Each worker folds its counts into its file every second (kdk_app/metrics/pending.py).
    started = time.monotonic()
    assert wait_until(
        lambda: metric(server.url, "kdk_http_requests_total", route="/messages", method="POST") == sent,
        timeout=FLUSH_INTERVAL_S + 5,
    )
    assert time.monotonic() - started < FLUSH_INTERVAL_S + 1
    for _ in range(4):  # several scrapes, answered by either worker: always both workers' counts
        assert (
            metric(server.url, "kdk_http_requests_total", route="/messages", method="POST", status="201")
            == sent
        )
        assert (
            metric(server.url, "kdk_service_calls_total", service="messages", method="create", outcome="ok")
            == sent
        )
        assert metric(server.url, "kdk_events_total", service="messages", event="created") == sent
        assert metric(server.url, "kdk_http_request_duration_seconds_count", route="/messages") == sent

    sockets = [Listener(server.url) for _ in range(4)]
    try:
        assert wait_until(lambda: metric(server.url, "kdk_socket_connections") == 4)
    finally:
        for sock in sockets:
            sock.close()
    assert wait_until(lambda: metric(server.url, "kdk_socket_connections") == 0)
    assert {path.name.split("_")[-1] for path in Path(directory).glob("counter_*.db")} >= {
        f"{pid}.db" for pid in served_by
    }


def test_metrics_bind_makes_the_gunicorn_master_serve_every_workers_metrics_there(
    app_server_factory, tmp_path
):
    port = free_port()
    env = {"KDK_METRICS__BIND": f"127.0.0.1:{port}", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    server = app_server_factory(env, workers=2)
    with ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(lambda index: create(server.url, index), range(20))) == {201}
    assert requests.get(f"{server.url}/metrics", timeout=10).status_code == 404  # not on the app's address
    own_address = f"http://127.0.0.1:{port}"
    labels = {"service": "messages", "method": "create", "outcome": "ok"}
    assert wait_until(
        lambda: metric(own_address, "kdk_service_calls_total", **labels) == 20, timeout=FLUSH_INTERVAL_S + 5
    )
