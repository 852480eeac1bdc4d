"""The ``kdk`` command on a real SecantusDB (and Redis for the registry): routes, users, config,
generate, shell, serve --reload; and ``flask --app wsgi routes``."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pymongo
import pytest
import requests
from click.testing import CliRunner
from clients import wait_until
from servers import REPO_ROOT

from kdk_app.app import create_app
from kdk_app.cli import command_name, needs_gevent
from kdk_app.commands import cli
from kdk_app.commands.routes import app_routes
from kdk_app.commands.show_config import masked
from kdk_app.config import load_config
from kdk_app.embedded import ManagedProcess, free_port, port_is_open
from kdk_app.serving import kdk_of

_SCRIPT = Path(sys.executable).parent / "kdk"
# The installed `kdk` script, as on a fresh install (python -m kdk_app where there is none).
KDK = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "kdk_app"]
PASSWORD = "correct horse battery"


def cli_env(mongo_url: str, database: str | None = None, **extra: str) -> dict[str, str]:
    """Our environment, in test mode, on ``database`` of the test MongoDB, without a Redis."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "KDK_CONFIG_DIR")}
    env.update(KDK_ENV="test", MONGO_URL=mongo_url, PYTHONUNBUFFERED="1")
    if database:
        env["KDK_MONGO__DATABASE"] = database
    env.update(extra)
    return env


def kdk(
    *args: str, env: dict[str, str], cwd: Path = REPO_ROOT, stdin: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*KDK, *args], env=env, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def database(mongo_client: pymongo.MongoClient) -> str:
    name = f"cli_{uuid.uuid4().hex[:10]}"
    yield name
    mongo_client.drop_database(name)


def test_only_kdk_serve_is_patched_with_gevent_and_not_its_reload_supervisor():
    assert command_name(["--log-level", "DEBUG", "--app", "wsgi", "serve", "--port", "1"]) == "serve"
    assert command_name(["-A", "serve", "routes"]) == "routes"  # "serve" was the value of -A
    assert needs_gevent(["serve"], {})
    assert not needs_gevent(["routes"], {})
    assert not needs_gevent(["serve", "--reload"], {})  # the supervisor serves nothing
    assert needs_gevent(["serve", "--reload"], {"KDKAPP_RELOADER_CHILD": "true"})


def test_kdk_help_builds_no_app(mongo_url):
    # Production without a JWT secret refuses to build: --help must not try.
    env = cli_env("mongodb://127.0.0.1:1/", KDK_ENV="production")
    done = kdk("--help", env=env)
    assert done.returncode == 0, done.stderr
    for command in ("serve", "routes", "shell", "config", "users", "generate", "fuzz"):
        assert re.search(rf"^\s+{command}\s", done.stdout, re.MULTILINE), command


def test_kdk_routes_lists_each_service_with_methods_events_rest_routes_and_where_it_runs(mongo_url, database):
    done = kdk("routes", "--json", env=cli_env(mongo_url, database))
    assert done.returncode == 0, done.stderr
    routes = {entry["path"]: entry for entry in json.loads(done.stdout)}
    assert {"messages", "users", "notes", "authentication", "people"} <= set(routes)
    messages = routes["messages"]
    assert messages["remote"] is False
    assert messages["methods"] == ["find", "get", "create", "update", "patch", "remove"]
    assert messages["events"] == ["created", "updated", "patched", "removed"]
    rest = [(r["verb"], r["url"]) for r in messages["rest"]]
    assert ("GET", "/messages") in rest and ("GET", "/messages/:id") in rest
    assert ("PATCH", "/messages") in rest  # multi: True
    assert ("PATCH", "/notes") in [(r["verb"], r["url"]) for r in routes["notes"]["rest"]]
    assert ("PUT", "/notes") not in [(r["verb"], r["url"]) for r in routes["notes"]["rest"]]
    assert [(r["verb"], r["url"]) for r in routes["authentication"]["rest"]] == [
        ("POST", "/authentication"),
        ("DELETE", "/authentication/:id"),
    ]
    assert routes["people"]["events"][-1] == "testing"  # custom events (config/test.py)

    text = CliRunner().invoke(cli, ["routes"], env=cli_env(mongo_url, database))
    assert text.exit_code == 0, text.output
    assert "messages  (local)\n  methods  find, get, create, update, patch, remove\n" in text.stdout
    assert "PATCH  /messages  (multi)" in text.stdout


def test_flask_app_wsgi_routes_runs(mongo_url):
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "routes"],
        env=cli_env(mongo_url),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "rest_messages.collection" in done.stdout


def test_kdk_routes_lists_the_services_of_the_registry_as_remote_without_mounting_them(
    mongo_url, redis_url, app_server_factory, database
):
    key, secret = f"cli{uuid.uuid4().hex[:8]}", "distribution-secret-" + "x" * 32
    provider = {"key": key, "services": ["messages"], "remote_services": [], "secret": secret}
    app_server_factory(
        env={
            "REDIS_URL": redis_url,
            "KDK_DISTRIBUTION": json.dumps(provider),
            "KDK_MONGO__DATABASE": database,
        }
    )
    consumer = {"key": key, "services": [], "remote_services": "*", "secret": secret}
    environ = {
        "MONGO_URL": mongo_url,
        "REDIS_URL": redis_url,
        "KDK_MONGO__DATABASE": database,
        "KDK_DISTRIBUTION": json.dumps(consumer),
        "KDK_SERVICES__MESSAGES": "null",  # served by the provider only
    }
    flask_app = create_app(load_config("test", REPO_ROOT / "config", environ))
    try:

        def remote_messages():
            return next((r for r in app_routes(flask_app) if r.path == "messages" and r.remote), None)

        assert wait_until(remote_messages, timeout=15)
        entry = remote_messages()
        assert entry.provider == "messages" and entry.instances
        assert "find" in entry.methods and ("GET", "/messages/:id") in [(r.verb, r.url) for r in entry.rest]
        assert not any(r.remote for r in app_routes(flask_app) if r.path != "messages")
        kdk = kdk_of(flask_app)
        assert "messages" not in kdk.services and not kdk.started  # read, never mounted nor started
    finally:
        kdk_of(flask_app).teardown()


def test_users_create_makes_an_admin_who_logs_in_over_rest(mongo_url, database, app_server_factory):
    env = cli_env(mongo_url, database)
    done = kdk(
        "users",
        "create",
        " Admin@Example.com",
        "--role",
        "admin",
        "--password-stdin",
        env=env,
        stdin=PASSWORD + "\n",
    )
    assert done.returncode == 0, done.stderr
    assert "created user admin@example.com (role admin" in done.stdout

    again = kdk("users", "create", "admin@example.com", "--password-stdin", env=env, stdin=PASSWORD + "\n")
    assert again.returncode == 1
    assert "a user with email admin@example.com already exists" in again.stderr

    server = app_server_factory(env={"KDK_MONGO__DATABASE": database, "JWT_SECRET": "cli-test-" + "s" * 32})
    login = requests.post(
        server.url + "/authentication",
        json={"strategy": "local", "email": "admin@example.com", "password": PASSWORD},
        timeout=10,
    )
    assert login.status_code == 201, login.text
    user = login.json()["user"]
    assert user["role"] == "admin" and "password" not in user
    everyone = requests.get(
        server.url + "/users", headers={"Authorization": "Bearer " + login.json()["accessToken"]}, timeout=10
    )
    assert everyone.status_code == 200 and everyone.json()["total"] == 1


def test_users_create_asks_twice_and_refuses_what_registration_refuses(mongo_url, database, mongo_client):
    env = cli_env(mongo_url, database)

    def create(*args: str, input: str | None = None):
        return CliRunner().invoke(cli, ["users", "create", *args], input=input, env=env)

    mismatch = create("a@example.com", input=f"{PASSWORD}\nother one\n")
    assert mismatch.exit_code == 1 and "do not match" in mismatch.output

    asked = create("a@example.com", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert asked.exit_code == 0, asked.output
    assert "created user a@example.com (role user" in asked.output
    stored = mongo_client[database]["users"].find_one({"email": "a@example.com"})
    assert stored["password"].startswith("$argon2id$v=19$m=19456,t=2,p=1$")  # the configured cost

    role = create("b@example.com", "--role", "boss", "--password-stdin")
    assert role.exit_code == 1
    assert "unknown role 'boss' (the roles of `permissions`: user, admin)" in role.output
    short = create("b@example.com", "--password-stdin", input="short\n")
    assert short.exit_code == 1 and "8 to 1024 characters" in short.output
    bad_email = create("not-an-email", "--password-stdin", input=PASSWORD + "\n")
    assert bad_email.exit_code == 1 and "email: Not a valid email address." in bad_email.output
    given = create("c@example.com", "--password", PASSWORD)
    assert given.exit_code == 0, given.output
    assert "warning: a password given with --password is visible" in given.output
    assert mongo_client[database]["users"].count_documents({}) == 2


def test_kdk_config_masks_secrets_and_exits_2_on_an_unusable_url(mongo_url):
    secrets_env = cli_env(
        mongo_url,
        REDIS_URL="redis://kdk:hunter2@127.0.0.1:6379/0?password=hunter3",
        JWT_SECRET="jwt-" + "j" * 40,
        KDK_SYNC__SECRET="sync-" + "s" * 40,
    )
    done = kdk("config", env=secrets_env)
    assert done.returncode == 0, done.stderr
    assert "hunter2" not in done.stdout and "hunter3" not in done.stdout and "jjjj" not in done.stdout
    config = json.loads(done.stdout)
    assert config["redis"]["url"] == "redis://***@127.0.0.1:6379/0?password=***"
    assert config["authentication"]["secret"] == "***" and config["sync"]["secret"] == "***"
    assert config["authentication"]["local"]["password_field"] == "password"  # a name, no secret

    bad = CliRunner().invoke(cli, ["config"], env=cli_env(mongo_url, KDK_SYNC__URL="kafka://127.0.0.1:9092"))
    assert bad.exit_code == 2
    assert "kdk config: sync.url: invalid" in bad.stderr


def test_masking_hides_secret_keys_and_url_credentials_but_not_names_that_mention_them():
    config = {
        "distribution": {"key": "kdk", "secret": None},
        "proxy_table": {"/x": {"target": "http://u:p@h:1/", "headers": {"X-Api-Key": "k"}}},
        "local": {"password_field": "password", "min_password_length": 8, "apiKey": "k2"},
        "nats": ["nats://tok@h1:4222", "nats://h2:4222"],
    }
    assert masked(config) == {
        "distribution": {"key": "kdk", "secret": None},
        "proxy_table": {"/x": {"target": "http://***@h:1/", "headers": {"X-Api-Key": "***"}}},
        "local": {"password_field": "password", "min_password_length": 8, "apiKey": "***"},
        "nats": ["nats://***@h1:4222", "nats://h2:4222"],
    }


@pytest.mark.parametrize("adapter", ["mongodb", "memory"])
def test_generate_service_writes_a_module_and_a_passing_test_and_never_overwrites(
    adapter, mongo_url, tmp_path
):
    env = cli_env(mongo_url, KDK_TEST_MONGO_URL=mongo_url)
    done = kdk("generate", "service", "todo-items", "--adapter", adapter, "--dir", str(tmp_path), env=env)
    assert done.returncode == 0, done.stderr
    module, test = tmp_path / "services" / "todo_items.py", tmp_path / "tests" / "test_todo_items_service.py"
    for path in (tmp_path / "services" / "__init__.py", module, test):
        assert f"wrote {path}" in done.stdout
    assert 'services["todo-items"] = todo_items.service()' in done.stdout
    assert f'"adapter": "{adapter}"' in module.read_text()
    ruff = Path(sys.executable).parent / "ruff"
    if ruff.exists():  # what it writes passes the house linter and formatter
        style = ["--isolated", "--line-length", "110"]
        lint = subprocess.run([str(ruff), "check", *style, "--select", "E,F,W,I,B,UP", "."], cwd=tmp_path)
        assert lint.returncode == 0
        assert subprocess.run([str(ruff), "format", "--check", *style, "."], cwd=tmp_path).returncode == 0

    module.write_text(module.read_text() + "# edited\n")
    again = kdk("generate", "service", "todo-items", "--dir", str(tmp_path), env=env)
    assert again.returncode == 1 and "not overwriting" in again.stderr
    assert module.read_text().endswith("# edited\n")

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout


def test_a_generated_service_registered_as_printed_is_served_and_listed(mongo_url, database, tmp_path):
    env = cli_env(mongo_url, database)
    done = kdk("generate", "service", "tasks", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    registration = [line.strip() for line in done.stdout.splitlines() if line.startswith("    ")]
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "default.py").write_text("\n".join(["services = {}", *registration]) + "\n")
    # The project's own config/ (cwd), its services/ importable from the `kdk` script.
    routes = kdk("routes", "--json", env={**env, "KDK_ENV": "development"}, cwd=tmp_path)
    assert routes.returncode == 0, routes.stderr
    (tasks,) = json.loads(routes.stdout)
    assert tasks["path"] == "tasks" and tasks["remote"] is False and "create" in tasks["methods"]


def test_kdk_shell_has_the_services_and_serves_nothing(mongo_url, database):
    code = "print('services', sorted(kdk.services), 'started', kdk.started, app.name)\n"
    done = kdk("shell", env=cli_env(mongo_url, database), stdin=code)
    assert done.returncode == 0, done.stderr
    services = ["authentication", "messages", "notes", "people", "people-customid", "users"]
    listed = re.search(r"services (\[.*?\]) started", done.stdout)
    assert listed and set(services) <= set(ast.literal_eval(listed.group(1)))
    assert "started False kdk_app" in done.stdout


def test_kdk_serve_reload_restarts_on_a_change_and_after_a_broken_file_is_fixed(mongo_url, tmp_path):
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "__init__.py").write_text("")
    module = tmp_path / "services" / "probe.py"
    module.write_text("V = 1\n")
    config = tmp_path / "config" / "default.py"
    config.parent.mkdir()
    config.write_text(
        "from services import probe as _probe\n"
        'services = {"probe": {"adapter": "memory", "store": [{"v": _probe.V}]}}\n'
    )
    port = free_port()

    def probe():
        try:
            return requests.get(f"http://127.0.0.1:{port}/probe", timeout=1).json()[0]["v"]
        except (requests.RequestException, ValueError, LookupError):
            return None

    env = cli_env(mongo_url)
    env.pop("KDK_ENV")
    server = ManagedProcess(
        [*KDK, "serve", "--reload", "--host", "127.0.0.1", "--port", str(port)],
        name="kdk-serve-reload",
        log_path=tmp_path / "serve.log",
        env=env,
        cwd=tmp_path,
        ready_check=lambda: probe() == 1,
        start_timeout=30,
    )
    server.start()
    try:
        config.write_text(config.read_text().replace("_probe.V", "_probe.V * 10"))
        assert wait_until(lambda: probe() == 10, timeout=30), server.log_text()
        assert "default.py changed: restarting" in server.log_text()

        module.write_text("V = (\n")  # a syntax error: the app cannot start
        assert wait_until(lambda: "waiting for a change" in server.log_text(), timeout=30), server.log_text()
        module.write_text("V = 3\n")  # a module that never imported is watched too
        assert wait_until(lambda: probe() == 30, timeout=30), server.log_text()
    finally:
        code = server.stop(timeout=15)
    assert code == 0, server.log_text()
    assert not port_is_open("127.0.0.1", port)  # the serving child went with its supervisor
