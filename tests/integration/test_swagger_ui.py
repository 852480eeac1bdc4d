"""Swagger UI at ``/docs`` (kdk_app/openapi/routes.py, kdk_app/openapi/swagger/).

* In process: the page, its CSP, no inline script, only the listed files under ``/docs/``.
* Vendoring: ``swagger/vendor/`` matches ``vendor.json`` (offline) and is byte-identical to the
  files of the ``swagger-ui-dist`` pinned in ``swagger/package.json`` (``vendor.py --check``).
* Packaging: a wheel built from an sdist ships the page, the init script and the vendored build.
* Browser: headless Chromium (Debian ``chromium``, ``playwright-core`` from ``tests/browser``)
  opens ``/docs`` on ``kdk serve``: the document's title and the ``/messages`` operations
  render, no console error (the CSP holds), no request leaves the origin; a screenshot is kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium import APT_TIMEOUT, BROWSER_RUN_TIMEOUT
from flask import Flask
from node import NODE, NPM_TIMEOUT, run, tail
from package_builds import assert_vendored_files_are_the_pinned_npm_builds, sdist_and_wheel_names

from kdk_app import create_app
from kdk_app.openapi.vendor import FILES, SWAGGER_DIR, VENDOR_DIR
from kdk_app.web import CONTENT_SECURITY_POLICY

REPO_ROOT = Path(__file__).resolve().parents[2]
VENDOR_SCRIPT = REPO_ROOT / "kdk_app" / "openapi" / "vendor.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def app(mongo_url: str) -> Iterator[Flask]:
    flask_app = create_app(
        mongo={"url": mongo_url, "database": f"docs_{uuid.uuid4().hex[:10]}"},
        redis={"url": None},
        sync={"enabled": False},
    )
    yield flask_app
    flask_app.extensions["kdk"].teardown()


# --- the page, in process --------------------------------------------------------------------


def test_docs_page_loads_the_vendored_swagger_ui_under_the_csp(app):
    response = app.test_client().get("/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = response.text
    assert 'data-openapi-url="/openapi.json"' in html
    assert html.index("/docs/swagger-ui-bundle.js") < html.index("/docs/swagger-init.js")
    assert '<link rel="stylesheet" href="/docs/swagger-ui.css">' in html
    assert "<script>" not in html and "<style" not in html  # nothing inline: the CSP forbids it
    assert "http://" not in html and "https://" not in html  # no CDN


@pytest.mark.parametrize(
    "name", ["swagger-ui-bundle.js", "swagger-ui.css", "swagger-init.js", "favicon-32x32.png"]
)
def test_docs_files_are_served_from_the_package(app, name):
    response = app.test_client().get(f"/docs/{name}")
    assert response.status_code == 200
    folder = SWAGGER_DIR if name == "swagger-init.js" else VENDOR_DIR
    assert response.data == (folder / name).read_bytes()


@pytest.mark.parametrize("name", ["vendor.json", "index.html", "package.json", "..%2Fvendor.py", "nope.js"])
def test_other_files_are_not_served_under_docs(app, name):
    response = app.test_client().get(f"/docs/{name}")
    assert response.status_code == 404 and response.json["className"] == "not-found"


# --- vendoring -------------------------------------------------------------------------------


def test_vendored_swagger_ui_matches_its_manifest_and_the_pin():
    proc = subprocess.run(
        [sys.executable, str(VENDOR_SCRIPT), "--verify"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((VENDOR_DIR / "vendor.json").read_text())
    pinned = json.loads((SWAGGER_DIR / "package.json").read_text())["dependencies"]
    assert manifest["packages"] == pinned == {"swagger-ui-dist": pinned["swagger-ui-dist"]}


@pytest.mark.timeout(NPM_TIMEOUT + 60)
def test_vendored_swagger_ui_is_the_pinned_npm_build():
    assert_vendored_files_are_the_pinned_npm_builds(VENDOR_SCRIPT)


# --- packaging -------------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_sdist_and_wheel_ship_swagger_ui(tmp_path):
    sdist_names, wheel_names = sdist_and_wheel_names(tmp_path)
    served = (
        ["index.html", "swagger-init.js"] + [f"vendor/{f.target}" for f in FILES] + ["vendor/vendor.json"]
    )
    for name in (f"kdk_app/openapi/swagger/{name}" for name in served):
        assert name in wheel_names, f"{name} missing from the wheel"
        assert name in sdist_names, f"{name} missing from the sdist"
    assert "kdk_app/openapi/swagger/package-lock.json" in sdist_names  # an sdist can re-vendor
    assert "kdk_app/openapi/spec.py" in wheel_names


# --- in a real browser -----------------------------------------------------------------------


@pytest.mark.timeout(NPM_TIMEOUT + 2 * APT_TIMEOUT + BROWSER_RUN_TIMEOUT + 60)
def test_swagger_ui_renders_the_apps_document_in_chromium(chromium, browser_deps, app_server, tmp_path):
    out_dir = tmp_path / "browser"
    out_dir.mkdir()
    env = {
        **os.environ,
        "SERVER_URL": app_server.url,
        "CHROMIUM": chromium,
        "OUT_DIR": str(out_dir),
        "TMPDIR": str(tmp_path),  # Playwright's --user-data-dir goes under TMPDIR
    }
    proc = run(
        [NODE, "swagger-ui.js"],
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
    assert result["title"].startswith("kdk-app API")  # the title, then the version badges
    screenshot = out_dir / "swagger-ui.png"
    png = screenshot.read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1280, 900)
    assert len(png) > 20_000, "the screenshot is too small to show a rendered page"
