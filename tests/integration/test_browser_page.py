"""The browser page at ``/`` (kdk_app/web.py, kdk_app/static/).

* Flask-level: the page, its CSP, the files under ``/static`` and nothing else of the folder.
* Vendoring: ``public/vendor/`` matches ``vendor.json`` (offline) and is byte-identical to the
  files of the npm packages pinned in ``kdk_app/static/package.json`` (``vendor.py --check``).
* Packaging: a wheel built from an sdist ships the page and the vendored builds.
* Browser: two headless Chromium pages (Debian ``chromium`` driven by ``playwright-core`` from
  ``tests/browser``) on one ``kdk serve``; one adds a message, the other shows it live.

Chromium: ``KDK_TEST_CHROMIUM`` or ``/usr/bin/chromium``. When missing, the session fixture runs
``apt-get install -y chromium`` if we are root and ``CI`` or ``KDK_TEST_INSTALL_BROWSER=1`` is
set; otherwise the browser test is skipped. Without node/npm the npm-based tests are skipped,
except under CI, where a missing tool is an error. The ``browser_deps`` fixture (``npm ci`` in
``tests/browser``) is in conftest.py, the node/npm plumbing in ``tests/node.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from chromium import APT_TIMEOUT, BROWSER_RUN_TIMEOUT
from flask import Flask
from node import NODE, NPM_TIMEOUT, run, tail
from package_builds import assert_vendored_files_are_the_pinned_npm_builds, sdist_and_wheel_names

from kdk_app.web import CONTENT_SECURITY_POLICY, PUBLIC_DIR, STATIC_DIR, register_web

REPO_ROOT = Path(__file__).resolve().parents[2]
VENDOR_SCRIPT = STATIC_DIR / "vendor.py"
ASSETS = ("app.js", "style.css", "vendor/feathers.min.js", "vendor/socket.io.min.js")


# --- the page, in process ------------------------------------------------------------------


def _client(settings: dict | None = None):
    # Same constructor as create_app(): Flask("kdk_app") routes /static to kdk_app/static/.
    flask_app = Flask("kdk_app")
    register_web(flask_app, settings or {})
    return flask_app.test_client()


def test_index_page_loads_the_official_clients_and_app_js():
    response = _client().get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    for asset in ASSETS:
        assert f"/static/{asset}" in html
    # The order matters: app.js uses window.io and window.feathers.
    assert html.index("socket.io.min.js") < html.index("feathers.min.js") < html.index("app.js")
    assert 'data-service="messages"' in html
    assert 'data-socketio-path="/socket.io"' in html
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "<script>" not in html  # no inline script: the CSP would block it


def test_page_settings_are_escaped_into_the_markup():
    html = _client({"socketio": {"path": '/x"><script>'}, "web": {"title": "<Chat>"}}).get("/").text
    assert '/x&#34;&gt;&lt;script&gt;"' in html
    assert "<title>&lt;Chat&gt;</title>" in html


@pytest.mark.parametrize("asset", ASSETS)
def test_static_files_are_served_from_public(asset):
    response = _client().get(f"/static/{asset}")
    assert response.status_code == 200
    assert response.data == (PUBLIC_DIR / asset).read_bytes()
    assert response.mimetype in ("text/javascript", "application/javascript", "text/css")


@pytest.mark.parametrize(
    "path", ["package.json", "package-lock.json", "vendor.py", "index.html", "README.md", "../web.py"]
)
def test_tooling_beside_public_is_not_served(path):
    assert _client().get(f"/static/{path}").status_code == 404


def test_page_can_be_disabled():
    assert _client({"web": {"enabled": False}}).get("/").status_code == 404


def test_app_without_a_static_route_gets_one():
    flask_app = Flask("elsewhere", static_folder=None)
    register_web(flask_app, {})
    assert flask_app.test_client().get("/static/app.js").data == (PUBLIC_DIR / "app.js").read_bytes()


def test_app_js_never_writes_html():
    source = (PUBLIC_DIR / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in source


# --- vendoring -----------------------------------------------------------------------------


def test_vendored_files_match_their_manifest_and_the_pins():
    proc = subprocess.run(
        [sys.executable, str(VENDOR_SCRIPT), "--verify"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.timeout(NPM_TIMEOUT + 60)
def test_vendored_files_are_the_pinned_npm_builds():
    assert_vendored_files_are_the_pinned_npm_builds(VENDOR_SCRIPT)


# --- packaging -----------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_sdist_and_wheel_ship_the_page(tmp_path):
    """`pip install` from an sdist must serve the page without npm: check both archives."""
    sdist_names, wheel_names = sdist_and_wheel_names(tmp_path)
    served = ["kdk_app/static/index.html"] + [f"kdk_app/static/public/{asset}" for asset in ASSETS]
    served += ["kdk_app/static/public/vendor/vendor.json", "kdk_app/static/public/vendor/feathers.LICENSE"]
    for name in served:
        assert name in sdist_names, f"{name} missing from the sdist"
        assert name in wheel_names, f"{name} missing from the wheel"
    assert not any("node_modules" in name for name in wheel_names)


# --- served by kdk serve -------------------------------------------------------------------


def test_kdk_serve_serves_the_page(app_server):
    page = requests.get(f"{app_server.url}/", timeout=10)
    assert page.status_code == 200, app_server.log_text()
    assert "text/html" in page.headers["Content-Type"]
    vendored = requests.get(f"{app_server.url}/static/vendor/feathers.min.js", timeout=10)
    assert vendored.content == (PUBLIC_DIR / "vendor" / "feathers.min.js").read_bytes()
    # The REST API is untouched by the page.
    assert requests.get(f"{app_server.url}/messages", timeout=10).status_code == 200


# --- in a real browser ---------------------------------------------------------------------


@pytest.mark.timeout(NPM_TIMEOUT + 2 * APT_TIMEOUT + BROWSER_RUN_TIMEOUT + 60)
def test_two_pages_one_adds_a_message_the_other_shows_it_live(chromium, browser_deps, app_server, tmp_path):
    out_dir = tmp_path / "browser"
    out_dir.mkdir()
    env = {
        **os.environ,
        "SERVER_URL": app_server.url,
        "CHROMIUM": chromium,
        "OUT_DIR": str(out_dir),
        # Playwright puts each launch's fresh --user-data-dir under TMPDIR: keep it in tmp_path.
        "TMPDIR": str(tmp_path),
    }
    proc = run(
        [NODE, "live-update.js"],
        browser_deps,
        BROWSER_RUN_TIMEOUT,
        check=False,
        what="the browser run",
        env=env,
    )
    report = out_dir / "result.json"
    result = json.loads(report.read_text()) if report.exists() else {}
    assert proc.returncode == 0 and result.get("ok"), (
        f"browser run failed (exit {proc.returncode}): {result.get('error')}\n"
        f"steps done: {result.get('steps')}\nconsole errors: {result.get('consoleErrors')}\n"
        f"stdout:\n{tail(proc.stdout)}\nstderr:\n{tail(proc.stderr)}\n"
        f"server log:\n{tail(app_server.log_text())}"
    )
    assert (out_dir / "page-b.png").stat().st_size > 0
