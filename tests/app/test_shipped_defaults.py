"""``shipped_defaults()``: a project's ``default.py`` keeps kdk's shipped settings and replaces a
few, since ``load_config`` reads one ``default.py`` only."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kdk_app.config import load_config, read_config_file, shipped_defaults
from kdk_app.config_check import SHIPPED_DEFAULTS

PROJECT = """
from kdk_app.config import shipped_defaults

globals().update(shipped_defaults())
port = 9999
services = {"things": {"adapter": "memory"}}
"""


def test_it_is_the_shipped_default_file() -> None:
    assert shipped_defaults().keys() == read_config_file(SHIPPED_DEFAULTS).keys()
    assert shipped_defaults()["port"] == 8081 and "messages" in shipped_defaults()["services"]


def test_each_call_gives_a_fresh_copy() -> None:
    first = shipped_defaults()
    first["paginate"]["default"] = 1
    first["services"].clear()
    assert shipped_defaults()["paginate"]["default"] == 10 and shipped_defaults()["services"]


def test_a_project_default_py_inherits_it_and_overrides_some_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "default.py").write_text(PROJECT)
    with caplog.at_level(logging.WARNING, logger="kdk_app"):
        settings = load_config(env="development", config_dir=tmp_path, environ={})
    assert settings["port"] == 9999 and list(settings["services"]) == ["things"]
    assert settings["authentication"] == shipped_defaults()["authentication"]
    assert settings["socketio"]["path"] == "/socket.io"
    assert not [r for r in caplog.records if "unknown setting" in r.getMessage()]
