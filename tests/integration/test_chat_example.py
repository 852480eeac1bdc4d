"""The chat example (examples/chat: the Feathers chat guide's app on kdk-app) on a real
``kdk serve`` with ``KDK_CONFIG_DIR=examples/chat/config``, driven by two headless Chromium
pages (``tests/browser/chat-example.js``) that use the official ``@feathersjs/client`` build
vendored beside the page and the Socket.IO client the server serves.

Before the pages open, 30 messages of two users are seeded over REST, so the pages must show
exactly the newest 25 with their users. The same run passes with a copy of ``public/`` in
another folder (``KDK_WEB__STATIC_FOLDER``). The vendored build is checked against its pin.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from chromium import APT_TIMEOUT, BROWSER_RUN_TIMEOUT
from clients import wait_until
from node import NODE, NPM_TIMEOUT, run, tail
from package_builds import assert_vendored_files_are_the_pinned_npm_builds
from servers import RunningServer

CHAT = Path(__file__).resolve().parents[2] / "examples" / "chat"
VENDOR_SCRIPT = CHAT / "vendor.py"
PASSWORD = "correct horse battery"
BROWSER_TEST_TIMEOUT = NPM_TIMEOUT + 2 * APT_TIMEOUT + BROWSER_RUN_TIMEOUT + 90


def start_chat(app_server_factory: Any, **env: str) -> RunningServer:
    return app_server_factory(
        {
            "KDK_CONFIG_DIR": str(CHAT / "config"),
            "KDK_MONGO__DATABASE": f"chat_{uuid.uuid4().hex[:10]}",
            **env,
        }
    )


def gravatar(email: str) -> str:
    return f"https://s.gravatar.com/avatar/{hashlib.md5(email.encode()).hexdigest()}?s=60"


def seed(url: str) -> dict[str, Any]:
    """Two users and 30 messages over REST, one millisecond apart at least (createdAt is the
    server's clock), so newest first is one order. Returns what the pages must show."""
    http = requests.Session()
    users = []
    for n in range(2):
        email = f"seed{n}-{uuid.uuid4().hex[:8]}@example.org"
        assert http.post(f"{url}/users", json={"email": email, "password": PASSWORD}, timeout=10).ok
        login = http.post(
            f"{url}/authentication",
            json={"strategy": "local", "email": email, "password": PASSWORD},
            timeout=10,
        )
        users.append((email, {"Authorization": f"Bearer {login.json()['accessToken']}"}))
    messages = []
    for n in range(30):
        email, headers = users[n % 2]
        answer = http.post(f"{url}/messages", json={"text": f"seeded {n}"}, headers=headers, timeout=10)
        assert answer.status_code == 201, answer.text
        messages.append({"text": f"seeded {n}", "email": email, "avatar": gravatar(email)})
        created = answer.json()["createdAt"]
        wait_until(lambda created=created: time.time() * 1000 > created + 1, timeout=1, interval=0.001)
    return {"user": {"email": users[1][0], "password": PASSWORD}, "newest": messages[-25:]}


def run_pages(server: RunningServer, chromium: str, browser_deps: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "browser"
    out_dir.mkdir()
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(seed(server.url)))
    env = {
        **os.environ,
        "SERVER_URL": server.url,
        "SEED": str(seed_file),
        "CHROMIUM": chromium,
        "OUT_DIR": str(out_dir),
        "TMPDIR": str(tmp_path),  # playwright's fresh --user-data-dir goes under TMPDIR
    }
    proc = run(
        [NODE, "chat-example.js"],
        browser_deps,
        BROWSER_RUN_TIMEOUT,
        check=False,
        what="the chat run",
        env=env,
    )
    report = out_dir / "result.json"
    result = json.loads(report.read_text()) if report.exists() else {}
    assert proc.returncode == 0 and result.get("ok"), (
        f"chat run failed (exit {proc.returncode}): {result.get('error')}\n"
        f"steps done: {result.get('steps')}\nconsole errors: {result.get('consoleErrors')}\n"
        f"stdout:\n{tail(proc.stdout)}\nstderr:\n{tail(proc.stderr)}\n"
        f"server log:\n{tail(server.log_text())}"
    )
    assert (out_dir / "chat-b.png").stat().st_size > 0


@pytest.mark.timeout(BROWSER_TEST_TIMEOUT)
def test_two_pages_sign_up_log_in_see_the_newest_25_and_chat_live(
    chromium: str, browser_deps: Path, app_server_factory: Any, tmp_path: Path
) -> None:
    run_pages(start_chat(app_server_factory), chromium, browser_deps, tmp_path)


@pytest.mark.timeout(BROWSER_TEST_TIMEOUT)
def test_a_copy_of_public_in_another_folder_works_unchanged(
    chromium: str, browser_deps: Path, app_server_factory: Any, tmp_path: Path
) -> None:
    front = shutil.copytree(CHAT / "public", tmp_path / "front-end")
    (front / "copied.txt").write_text("served from the copy")
    server = start_chat(app_server_factory, KDK_WEB__STATIC_FOLDER=str(front))
    assert requests.get(f"{server.url}/copied.txt", timeout=10).text == "served from the copy"
    run_pages(server, chromium, browser_deps, tmp_path)


def test_the_page_loads_the_served_socket_io_client_and_the_vendored_feathers_build(
    app_server_factory: Any,
) -> None:
    server = start_chat(app_server_factory)
    page = requests.get(f"{server.url}/", timeout=10)
    assert page.status_code == 200 and page.text == (CHAT / "public" / "index.html").read_text()
    assert (
        '<script src="/socket.io/socket.io.js">' in page.text and 'src="vendor/feathers.min.js"' in page.text
    )
    assert requests.get(f"{server.url}/socket.io/socket.io.js", timeout=10).status_code == 200
    vendored = requests.get(f"{server.url}/vendor/feathers.min.js", timeout=10)
    assert vendored.content == (CHAT / "public" / "vendor" / "feathers.min.js").read_bytes()
    assert requests.get(f"{server.url}/client.js", timeout=10).status_code == 200


def test_the_vendored_feathers_build_matches_its_manifest_and_pin() -> None:
    proc = subprocess.run(
        [sys.executable, str(VENDOR_SCRIPT), "--verify"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.timeout(NPM_TIMEOUT + 60)
def test_the_vendored_feathers_build_is_the_pinned_npm_build() -> None:
    assert_vendored_files_are_the_pinned_npm_builds(VENDOR_SCRIPT)
