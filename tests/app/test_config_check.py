"""Configuration checks at start: unknown keys are warned with the closest known key and where
they came from, values of the wrong type stop the app (``create_app``, ``kdk serve``, gunicorn),
and ``kdk config --check`` lists both with its exit codes."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from servers import REPO_ROOT

from kdk_app import create_app
from kdk_app.commands import cli
from kdk_app.config import load_config
from kdk_app.config_check import ConfigError, Finding, check_config
from kdk_app.embedded import free_port

CONFIG_DIR = REPO_ROOT / "config"
BIN = Path(sys.executable).parent


def findings(environ: dict[str, str], env: str = "test", config_dir: Path = CONFIG_DIR) -> list[Finding]:
    sources: dict[str, list[str]] = {}
    settings = load_config(env, config_dir, environ, sources, check=False)
    return check_config(settings, sources)


def messages(environ: dict[str, str], env: str = "test", config_dir: Path = CONFIG_DIR) -> list[str]:
    return [str(finding) for finding in findings(environ, env, config_dir)]


def test_a_typo_in_a_variable_is_warned_with_the_closest_known_key_and_the_variable():
    assert messages({"KDK_PAGINATE__MAXX": "100"}) == [
        "warning: unknown setting paginate.maxx (from KDK_PAGINATE__MAXX): did you mean paginate.max?"
    ]
    # A single "_" where "__" was meant is found too.
    assert messages({"KDK_SYNC_URL": "redis://x"}) == [
        "warning: unknown setting sync_url (from KDK_SYNC_URL): did you mean sync.url?"
    ]


def test_a_string_where_a_number_belongs_is_an_error_naming_the_key_the_value_and_the_type():
    found = findings({"KDK_PAGINATE__MAX": "abc", "KDK_MONGO__TIMEOUT_MS": "soon"})
    assert [(f.level, f.key) for f in found] == [("error", "paginate.max"), ("error", "mongo.timeout_ms")]
    assert found[0].message == (
        "setting paginate.max (from KDK_PAGINATE__MAX) must be a number, not 'abc' (str)"
    )
    assert "mongo.timeout_ms (from KDK_MONGO__TIMEOUT_MS) must be a number, not 'soon'" in found[1].message
    assert messages({"KDK_SYNC__ENABLED": '"no"'}) == [
        "error: setting sync.enabled (from KDK_SYNC__ENABLED) must be a boolean, not 'no' (str)"
    ]


def test_a_key_from_a_config_file_names_that_file(tmp_path):
    shutil.copy(CONFIG_DIR / "default.py", tmp_path / "default.py")
    (tmp_path / "staging.py").write_text('paginate = {"maxx": 3}\nmax_body_size = "1 MB"\n')
    found = findings({}, env="staging", config_dir=tmp_path)
    staging = tmp_path / "staging.py"
    assert [str(f) for f in found] == [
        f"warning: unknown setting paginate.maxx (from {staging}): did you mean paginate.max?",
        f"error: setting max_body_size (from {staging}) must be a number, not '1 MB' (str)",
    ]


def test_open_maps_and_documented_optional_keys_are_not_warned():
    environ = {
        "KDK_SERVICES__ANYTHING": '{"adapter": "memory", "whatever": 1}',
        "KDK_PERMISSIONS__EDITOR": '{"notes": {"*": true}}',
        "KDK_PROXY_TABLE": '{"/x/api": {"target": "http://127.0.0.1:1"}}',
        "KDK_LOGGING__LEVELS__KDK_APP.SYNC": "DEBUG",
        "KDK_AUTHENTICATION__ROLE_ROOMS__EDITOR": "editors",
        "KDK_SYNC__URL": "nats://127.0.0.1:4222",
        "KDK_SYNC__OUTBOX": "memory",
        "KDK_SOCKETIO__QUEUE_URL": "amqp://127.0.0.1",
        "KDK_QUERY_DEPTH": "7",
        "KDK_DISTRIBUTION": '{"key": "k", "services": ["messages"], "ttl": 30}',
        "KDK_CORS": "false",
        "FORWARDED_ALLOW_IPS": "10.0.0.1,10.0.0.2",
        "KDK_MONGO__SERVER_SELECTION_TIMEOUT_MS": "null",  # None: unset, anywhere
    }
    assert messages(environ) == []


def test_the_shipped_configs_and_the_test_suites_variables_are_clean():
    for env in ("test", "production", "development"):
        assert messages({}, env=env) == [], env
    # What the test suite sets (grep KDK_ tests/), and variables gunicorn.conf.py or the suite read.
    suite = {
        "KDK_MONGO__DATABASE": "db",
        "KDK_SYNC__SECRET": "s" * 32,
        "KDK_SYNC__STREAM": "kdk:test",
        "KDK_SYNC__ORPHAN_AFTER": "1.5",
        "KDK_SYNC__ENABLED": "false",
        "KDK_SOCKETIO__CHANNEL": "c",
        "KDK_SOCKETIO__MAX_ANSWER_SIZE": "1000",
        "KDK_SERVICES__MESSAGES": "null",
        "KDK_API_PATH": "/api",
        "KDK_LOG_FORMAT": "json",
        "KDK_LOG_LEVEL": "DEBUG",
        "KDK_DISTRIBUTION__KEY": "k",
        "KDK_DISTRIBUTION__REMOTE_SERVICES": '["notes"]',
        "KDK_DISTRIBUTION__PUBLISH": '["anonymous"]',
        "KDK_DISTRIBUTION__HEARTBEAT_INTERVAL": "0.5",
        "KDK_AUTHENTICATION__THROTTLE__PREFIX": "p:",
        "KDK_AUTHENTICATION__THROTTLE__MAX_ATTEMPTS": "3",
        "KDK_AUTHENTICATION__ENABLED": "false",
        "KDK_CONFIGURE": "[]",
        "KDK_METRICS__BIND": "127.0.0.1:9",
        "KDK_MAX_BODY_SIZE": "2000000",
        "KDK_WEB__STATIC_FOLDER": "examples/chat/public",
        "KDK_CORS__ORIGINS": '["http://a.example"]',
        "KDK_CORS__CREDENTIALS": "true",
        "KDK_WORKER_TIMEOUT": "60",
        "KDK_WORKER_CONNECTIONS": "100",
        "KDK_TEST_MONGO_URL": "mongodb://127.0.0.1:1/",
    }
    assert messages(suite) == []


def test_a_projects_own_settings_are_known_but_kdks_sections_still_checked(tmp_path):
    shutil.copy(CONFIG_DIR / "default.py", tmp_path / "default.py")
    with (tmp_path / "default.py").open("a") as project:
        project.write('\nreports = {"every": 60}\nsync["outbx"] = "memory"\ndef helper():\n    pass\n')
    assert messages({"KDK_REPORTS__EVERY": "120"}, env="x", config_dir=tmp_path) == [
        f"warning: unknown setting sync.outbx (from {tmp_path / 'default.py'}): did you mean sync.outbox?"
    ]


def test_load_config_logs_unknown_keys_and_raises_config_error_on_a_wrong_type(caplog):
    with caplog.at_level(logging.WARNING, logger="kdk_app.config_check"):
        load_config("test", CONFIG_DIR, {"KDK_PAGINATE__MAXX": "100"})
    assert (
        "unknown setting paginate.maxx (from KDK_PAGINATE__MAXX): did you mean paginate.max?" in caplog.text
    )
    with pytest.raises(
        ConfigError, match=r"paginate\.max \(from KDK_PAGINATE__MAX\) must be a number"
    ) as raised:
        load_config("test", CONFIG_DIR, {"KDK_PAGINATE__MAX": "abc"})
    assert isinstance(raised.value, ValueError) and "\n" not in str(raised.value)


def test_the_app_factory_refuses_to_start_on_a_wrong_type(monkeypatch):
    monkeypatch.setenv("KDK_CONFIG_DIR", str(CONFIG_DIR))
    monkeypatch.setenv("KDK_ENV", "test")
    monkeypatch.setenv("KDK_MONGO__TIMEOUT_MS", "soon")
    with pytest.raises(
        ConfigError, match=r"mongo\.timeout_ms \(from KDK_MONGO__TIMEOUT_MS\) must be a number"
    ):
        create_app()


def cli_environ(**extra: str) -> dict[str, str]:
    return {"KDK_CONFIG_DIR": str(CONFIG_DIR), "KDK_ENV": "test", "REDIS_URL": "", **extra}


def test_kdk_config_check_exits_0_when_clean_or_with_warnings_1_on_an_error_2_on_a_bad_url():
    runner = CliRunner()
    clean = runner.invoke(cli, ["config", "--check"], env=cli_environ())
    assert clean.exit_code == 0 and clean.stdout.startswith("ok:")
    warned = runner.invoke(cli, ["config", "--check"], env=cli_environ(KDK_PAGINATE__MAXX="100"))
    assert warned.exit_code == 0
    assert warned.stdout.splitlines() == [
        "warning: unknown setting paginate.maxx (from KDK_PAGINATE__MAXX): did you mean paginate.max?"
    ]
    wrong = runner.invoke(
        cli, ["config", "--check"], env=cli_environ(KDK_PAGINATE__MAX="abc", KDK_PAGINATE__MAXX="1")
    )
    assert wrong.exit_code == 1
    assert wrong.stdout.splitlines() == [
        "error: setting paginate.max (from KDK_PAGINATE__MAX) must be a number, not 'abc' (str)",
        "warning: unknown setting paginate.maxx (from KDK_PAGINATE__MAXX): did you mean paginate.max?",
    ]
    bad_url = runner.invoke(
        cli, ["config", "--check"], env=cli_environ(KDK_SYNC__URL="kafka://127.0.0.1:9092")
    )
    assert bad_url.exit_code == 2 and "kdk config: sync.url: invalid" in bad_url.stderr


def refused_start(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **cli_environ(KDK_PAGINATE__MAX="abc"), "MONGO_URL": "mongodb://127.0.0.1:1/"}
    return subprocess.run(args, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)


def test_kdk_serve_refuses_to_start_on_a_wrong_type_in_one_line():
    done = refused_start([str(BIN / "kdk"), "serve", "--port", str(free_port())])
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "Error: invalid configuration: setting paginate.max (from KDK_PAGINATE__MAX) must be a number, "
        "not 'abc' (str)"
    )


def test_gunicorn_refuses_to_start_on_a_wrong_type_in_one_line():
    done = refused_start(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{free_port()}", "wsgi:app"]
    )
    assert done.returncode == 4  # gunicorn's "App failed to load": it halts, no worker respawn loop
    lines = [line for line in done.stderr.splitlines() if "invalid configuration" in line]
    assert lines == [
        "invalid configuration: setting paginate.max (from KDK_PAGINATE__MAX) must be a number, "
        "not 'abc' (str)"
    ]
    assert "Traceback" not in done.stderr
