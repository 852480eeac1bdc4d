"""``web.static_folder``: a front-end folder of one's own served as Feathers' ``express.static``
serves ``public/``: ``index.html`` at ``/``, the other files beside it, nothing else. Real
SecantusDB; Flask's test client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from kdk_app import create_app
from kdk_app.config import load_config


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    public = tmp_path / "public"
    (public / "css").mkdir(parents=True)
    (public / "index.html").write_text("<!doctype html><title>chat</title>")
    (public / "client.js").write_text("console.log('hi')")
    (public / "css" / "style.css").write_text("body {}")
    (public / ".env").write_text("SECRET=1")
    (public / "messages").write_text("a file named as a service")
    (tmp_path / "outside.txt").write_text("not yours")
    (public / "link.txt").symlink_to(tmp_path / "outside.txt")
    return public


def build(mongo_url: str, folder: Path) -> Flask:
    return create_app(
        mongo={"url": mongo_url, "database": f"static_{uuid.uuid4().hex[:10]}"},
        redis={"url": None},
        web={"static_folder": str(folder)},
    )


@pytest.fixture
def flask_app(mongo_url: str, folder: Path) -> Iterator[Flask]:
    app = build(mongo_url, folder)
    yield app
    app.extensions["kdk"].teardown()


def test_index_html_is_the_root_and_other_files_are_beside_it(flask_app: Flask) -> None:
    client = flask_app.test_client()
    root = client.get("/")
    assert root.status_code == 200 and root.mimetype == "text/html" and b"<title>chat</title>" in root.data
    assert root.headers["X-Content-Type-Options"] == "nosniff" and root.headers["ETag"]
    assert client.get("/index.html").data == root.data
    assert client.get("/client.js").data == b"console.log('hi')"
    assert client.get("/css/style.css").mimetype == "text/css"
    assert client.get("/", headers={"If-None-Match": root.headers["ETag"]}).status_code == 304


def test_dot_files_links_out_and_service_paths_are_not_served(flask_app: Flask) -> None:
    client = flask_app.test_client()
    for path in ("/.env", "/link.txt", "/nothing.js", "/css/../.env"):
        answer = client.get(path)
        assert answer.status_code == 404 and answer.get_json()["name"] == "NotFound", path
    assert client.get("/messages").get_json()["data"] == []  # the service, not the file


def test_the_folder_replaces_the_built_in_page(flask_app: Flask) -> None:
    assert b"feathers.min.js" not in flask_app.test_client().get("/").data


def test_a_folder_without_index_html_refuses_to_start(mongo_url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no index.html"):
        build(mongo_url, tmp_path)


def test_kdk_web_static_folder_sets_it() -> None:
    settings = load_config(env="test", environ={"KDK_WEB__STATIC_FOLDER": "examples/chat/public"})
    assert settings["web"]["static_folder"] == "examples/chat/public"
