"""CORS: one ``cors`` setting governs REST and Socket.IO alike (kdk_app/transports/cors.py).

* In process (Flask test client on ``create_app``): the headers for allowed and refused origins,
  preflights, credentials only with an explicit list, errors carrying the headers, Socket.IO's
  handshake following the same policy, and settings that refuse to start.
* In headless Chromium: a page served from a second origin loads the vendored official builds
  and calls the API with ``@feathersjs/rest-client`` (fetch) and the Socket.IO client; it works
  with the default settings, with credentials for a listed origin, and is blocked for an
  origin the list leaves out (``tests/browser/cors-page.js``, driven by ``cors-origins.js``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from chromium import APT_TIMEOUT, BROWSER_RUN_TIMEOUT
from flask import Flask
from node import NODE, run, tail

from kdk_app.app import create_app
from kdk_app.config import load_config
from kdk_app.transports.cors import CorsConfigurationError, CorsPolicy
from kdk_app.web import PUBLIC_DIR

BROWSER_DIR = Path(__file__).resolve().parents[1] / "browser"
ELSEWHERE = "http://elsewhere.example"
LISTED = "https://app.example.com"


@pytest.fixture
def make_app(mongo_url, mongo_db) -> Iterator:
    apps: list[Flask] = []

    def make(**overrides) -> Flask:
        config = load_config(env="test", environ={})
        app = create_app(config, mongo={"url": mongo_url, "database": mongo_db.name}, **overrides)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["kdk"].teardown()


def preflight(
    client, path: str, origin: str, method: str = "POST", headers: str = "content-type,authorization"
):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


# --- defaults: any origin, no credentials ---------------------------------------------------


def test_default_allows_any_origin_without_credentials(make_app):
    client = make_app().test_client()
    response = client.get("/messages", headers={"Origin": ELSEWHERE})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Location" in response.headers["Access-Control-Expose-Headers"]
    assert "X-Request-Id" in response.headers["Access-Control-Expose-Headers"]
    assert "Origin" not in response.headers.get_all("Vary")  # "*" is the same for everyone


def test_default_answers_preflights(make_app):
    client = make_app().test_client()
    response = preflight(
        client, "/messages/abc", ELSEWHERE, "PATCH", "content-type,authorization,x-service-method"
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= methods
    assert response.headers["Access-Control-Allow-Headers"] == "content-type,authorization,x-service-method"
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_error_answers_carry_the_cors_headers(make_app):
    client = make_app().test_client()
    origin = {"Origin": ELSEWHERE}
    answers = [
        client.get("/no-such-service", headers=origin),
        client.post("/messages", data="{not json", headers={**origin, "Content-Type": "application/json"}),
        client.post("/messages", json={"n": 1}, headers=origin),  # schema: text is required
        client.get("/notes", headers={**origin, "Authorization": "Bearer not-a-token"}),
        client.post("/messages", data=b"x" * (2 * 1024 * 1024), headers=origin),  # over max_body_size
    ]
    assert [a.status_code for a in answers] == [404, 400, 400, 401, 413]
    for answer in answers:
        assert answer.headers["Access-Control-Allow-Origin"] == "*", answer.status_code
        assert answer.is_json and answer.json["code"] == answer.status_code


def test_healthcheck_and_the_page_carry_the_cors_headers(make_app):
    client = make_app().test_client()
    for path in ("/healthcheck", "/"):
        assert client.get(path, headers={"Origin": ELSEWHERE}).headers["Access-Control-Allow-Origin"] == "*"


def test_requests_without_an_origin_get_no_cors_headers(make_app):
    response = make_app().test_client().get("/messages")
    assert not [name for name in response.headers.keys() if name.startswith("Access-Control-")]


def test_socketio_handshake_no_longer_sends_credentials_to_every_origin(make_app):
    client = make_app().test_client()
    response = client.get("/socket.io/?EIO=4&transport=polling", headers={"Origin": ELSEWHERE})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert len(response.headers.get_all("Access-Control-Allow-Origin")) == 1


# --- an explicit list, with credentials -----------------------------------------------------


@pytest.fixture
def listed_client(make_app):
    return make_app(cors={"origins": [LISTED], "credentials": True}).test_client()


def test_listed_origin_is_echoed_with_credentials_and_vary(listed_client):
    response = listed_client.get("/messages", headers={"Origin": LISTED})
    assert response.headers["Access-Control-Allow-Origin"] == LISTED
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in response.headers.get_all("Vary")
    allowed = preflight(listed_client, "/messages", LISTED)
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == LISTED
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"


def test_unlisted_origin_gets_no_cors_headers_and_a_refused_preflight(listed_client):
    response = listed_client.get("/messages", headers={"Origin": ELSEWHERE})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Origin" in response.headers.get_all("Vary")  # caches must not reuse a listed answer
    refused = preflight(listed_client, "/messages", ELSEWHERE)
    assert refused.status_code == 403
    assert refused.json["name"] == "Forbidden" and refused.json["data"]["origin"] == ELSEWHERE
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_unlisted_origin_cannot_open_a_socket(listed_client):
    refused = listed_client.get("/socket.io/?EIO=4&transport=polling", headers={"Origin": ELSEWHERE})
    assert refused.status_code == 400
    assert "Access-Control-Allow-Origin" not in refused.headers
    allowed = listed_client.get("/socket.io/?EIO=4&transport=polling", headers={"Origin": LISTED})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == LISTED
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"


def test_the_apps_own_origin_is_always_allowed(listed_client):
    # The app's own page at / sends its origin on POSTs and on the Socket.IO handshake.
    own = "http://localhost"  # the test client's Host
    assert (
        listed_client.get("/socket.io/?EIO=4&transport=polling", headers={"Origin": own}).status_code == 200
    )
    assert preflight(listed_client, "/messages", own).status_code == 204


def test_a_method_outside_the_list_is_refused_at_preflight(make_app):
    client = make_app(cors={"methods": ["GET", "POST"]}).test_client()
    assert preflight(client, "/messages/1", ELSEWHERE, "DELETE").status_code == 403
    assert preflight(client, "/messages", ELSEWHERE, "POST").status_code == 204


def test_explicit_allowed_headers_replace_the_echo(make_app):
    client = make_app(cors={"headers": ["Content-Type", "Authorization"], "max_age": None}).test_client()
    response = preflight(client, "/messages", ELSEWHERE, headers="x-anything")
    assert response.headers["Access-Control-Allow-Headers"] == "Content-Type, Authorization"
    assert "Access-Control-Max-Age" not in response.headers


# --- settings ---------------------------------------------------------------------------------


def test_credentials_with_any_origin_refuse_to_start(make_app):
    with pytest.raises(CorsConfigurationError, match="explicit cors.origins"):
        make_app(cors={"origins": "*", "credentials": True})


@pytest.mark.parametrize("origins", [5, [1, 2], {"a": 1}])
def test_malformed_origins_refuse_to_start(origins):
    with pytest.raises(CorsConfigurationError):
        CorsPolicy.from_settings({"cors": {"origins": origins}})


def test_socketio_cors_allowed_origins_is_a_deprecated_alias(caplog):
    with caplog.at_level(logging.WARNING, logger="kdk_app.transports.cors"):
        policy = CorsPolicy.from_settings({"socketio": {"cors_allowed_origins": [LISTED]}})
    assert policy.origins == (LISTED,)
    assert "deprecated" in caplog.text


def test_cors_false_leaves_cors_to_a_proxy_in_front(make_app):
    response = make_app(cors=False).test_client().get("/messages", headers={"Origin": ELSEWHERE})
    assert "Access-Control-Allow-Origin" not in response.headers


# --- in a real browser, from a second origin -------------------------------------------------


@pytest.fixture
def page_origin(tmp_path) -> Iterator[int]:
    """A static site on its own port (another origin than the API): the check page and the
    vendored official builds. Yields the port."""
    site = tmp_path / "site"
    (site / "vendor").mkdir(parents=True)
    for name in ("cors-page.html", "cors-page.js"):
        shutil.copy2(BROWSER_DIR / name, site / name)
    for name in ("feathers.min.js", "socket.io.min.js"):
        shutil.copy2(PUBLIC_DIR / "vendor" / name, site / "vendor" / name)

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            logging.getLogger(__name__).debug(format, *args)

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, name="cors-page", daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _allowed(answers: dict) -> None:
    assert answers["restCreate"]["ok"], answers["restCreate"]
    assert answers["restFind"]["ok"] and answers["restFind"]["value"] >= 1, answers["restFind"]
    # The 401 reached the page as the Feathers error: the error answer carried the headers.
    assert answers["restError"]["name"] == "NotAuthenticated" and answers["restError"]["code"] == 401
    for key in ("socketDefault", "socketWebsocket"):
        assert answers[key]["ok"], (key, answers[key])
        assert answers[key]["value"]["event"] is True
        assert answers[key]["value"]["transport"] == "websocket"


def _blocked(answers: dict) -> None:
    for key in ("restCreate", "restFind", "restError", "socketDefault", "socketWebsocket"):
        assert not answers[key]["ok"], (key, answers[key])
        assert answers[key].get("code") is None, (key, answers[key])  # no Feathers answer got through


@pytest.mark.timeout(2 * APT_TIMEOUT + BROWSER_RUN_TIMEOUT + 120)
def test_a_page_of_another_origin_uses_the_official_clients(
    chromium,  # noqa: F811 (fixture)
    browser_deps,
    app_server,
    app_server_factory,
    page_origin,
    tmp_path,
):
    # Two page origins on one port: localhost is listed by the restricted app, 127.0.0.1 is not.
    listed_page = f"http://localhost:{page_origin}"
    unlisted_page = f"http://127.0.0.1:{page_origin}"
    restricted = app_server_factory(
        {"KDK_CORS__ORIGINS": json.dumps([listed_page]), "KDK_CORS__CREDENTIALS": "true"}
    )
    scenarios = [
        {"name": "default", "page": f"{unlisted_page}/cors-page.html", "api": app_server.url},
        {
            "name": "listed",
            "page": f"{listed_page}/cors-page.html",
            "api": restricted.url,
            "credentials": True,
        },
        {"name": "unlisted", "page": f"{unlisted_page}/cors-page.html", "api": restricted.url},
    ]
    out_dir = tmp_path / "browser"
    out_dir.mkdir()
    env = {
        **os.environ,
        "SCENARIOS": json.dumps(scenarios),
        "CHROMIUM": chromium,
        "OUT_DIR": str(out_dir),
        "TMPDIR": str(tmp_path),  # keeps Playwright's --user-data-dir in tmp_path
    }
    proc = run(
        [NODE, "cors-origins.js"],
        browser_deps,
        BROWSER_RUN_TIMEOUT,
        check=False,
        what="the browser run",
        env=env,
    )
    report = out_dir / "result.json"
    result = json.loads(report.read_text()) if report.exists() else {}
    context = (
        f"exit {proc.returncode}: {result.get('error')}\nconsole: {result.get('console')}\n"
        f"stdout:\n{tail(proc.stdout)}\nstderr:\n{tail(proc.stderr)}\n"
        f"restricted app log:\n{tail(restricted.log_text())}"
    )
    assert proc.returncode == 0 and result.get("ok"), context
    answers = result["results"]
    assert answers["default"]["origin"] == unlisted_page and answers["listed"]["origin"] == listed_page
    _allowed(answers["default"])
    _allowed(answers["listed"])  # with credentials: "include"
    _blocked(answers["unlisted"])


def test_headers_set_further_in_are_replaced_by_the_policy():
    # A proxied app (gateway) or python-engineio may set their own; the browser must see ours.
    from kdk_app.transports.cors import CorsMiddleware

    def inner(environ, start_response):
        start_response(
            "200 OK",
            [("Access-Control-Allow-Origin", ELSEWHERE), ("Access-Control-Allow-Credentials", "true")],
        )
        return [b"{}"]

    wrapped = Flask("t")
    wrapped.wsgi_app = CorsMiddleware(inner, CorsPolicy(origins=(LISTED,)))
    response = wrapped.test_client().get("/", headers={"Origin": ELSEWHERE})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Credentials" not in response.headers
