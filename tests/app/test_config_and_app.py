"""Configuration layering, the app factory, and the boundaries between layers."""

import datetime as dt
import json
import os
import subprocess
import sys
import uuid

import pytest
import requests
from bson import ObjectId

from kdk_app.config import environment_overrides, load_config
from kdk_app.core.serialization import dumps
from kdk_app.services import MongoService


def test_environment_variables_override_config_files_with_nesting_and_json_values(tmp_path):
    (tmp_path / "default.py").write_text('paginate = {"default": 10, "max": 50}\napi_path = ""\nname = "d"\n')
    (tmp_path / "staging.py").write_text('name = "staging"\npaginate = {"default": 5}\n')
    environ = {
        "KDK_ENV": "staging",
        "KDK_PAGINATE__MAX": "100",
        "KDK_API_PATH": "/api",
        "PORT": "9000",
        "DB_URL": "mongodb://db/x",
        "REDIS_URL": "redis://r:6379/0",
        "JWT_SECRET": "s3cret",
    }
    config = load_config(config_dir=tmp_path, environ=environ)
    assert config["name"] == "staging" and config["env"] == "staging"
    assert config["paginate"] == {"default": 5, "max": 100}
    assert config["api_path"] == "/api" and config["port"] == 9000
    assert config["mongo"]["url"] == "mongodb://db/x"
    assert config["redis"]["url"] == "redis://r:6379/0"
    assert config["authentication"]["secret"] == "s3cret"


def test_an_empty_kdk_variable_sets_an_empty_string():
    assert environment_overrides({"KDK_API_PATH": ""}) == {"api_path": ""}
    assert environment_overrides({"KDK_SERVICES__MESSAGES": "null"}) == {"services": {"messages": None}}


def test_the_service_layer_imports_no_transport():
    code = (
        "import sys, kdk_app.core, kdk_app.services; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('flask', 'flask_socketio', 'socketio', "
        "'engineio', 'redis', 'gevent')]; print(bad)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_one_json_encoding_for_object_ids_and_datetimes():
    oid = ObjectId()
    encoded = json.loads(dumps({"id": oid, "at": dt.datetime(2026, 1, 2, 3, 4, 5, 678000)}))
    assert encoded == {"id": str(oid), "at": "2026-01-02T03:04:05.678Z"}
    aware = dt.datetime(2026, 1, 2, 4, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert json.loads(dumps(aware)) == "2026-01-02T03:04:05.000Z"


def test_declared_indexes_are_created_at_start(mongo_db):
    from kdk_app.core import Application

    app = Application()
    app.use(
        "users", MongoService("users", database=mongo_db, indexes=[{"keys": {"email": 1}, "unique": True}])
    )
    app.setup()
    indexes = mongo_db["users"].index_information()
    assert indexes["email_1"]["unique"] is True


def test_a_duplicate_unique_key_is_a_409_conflict(mongo_db):
    from kdk_app.core import Application, errors

    app = Application()
    users = app.use(
        "users", MongoService("users", database=mongo_db, indexes=[{"keys": {"email": 1}, "unique": True}])
    )
    app.setup()
    users.create({"email": "a@b.c"})
    try:
        users.create({"email": "a@b.c"})
    except errors.Conflict as error:
        assert error.code == 409 and "a@b.c" not in error.message
    else:
        raise AssertionError("expected a Conflict")


def test_api_path_moves_every_rest_route(app_server_factory):
    server = app_server_factory(
        env={"KDK_API_PATH": "/api", "KDK_MONGO__DATABASE": f"api_{uuid.uuid4().hex[:8]}"}
    )
    assert requests.get(server.url + "/api/messages", timeout=5).json()["total"] == 0
    assert requests.get(server.url + "/messages", timeout=5).status_code == 404
    assert requests.get(server.url + "/healthcheck", timeout=5).status_code == 200


def test_gunicorn_serves_the_app_on_port_with_gevent_workers(app_server_factory):
    server = app_server_factory(env={"KDK_MONGO__DATABASE": f"gu_{uuid.uuid4().hex[:8]}"}, workers=2)
    created = requests.post(server.url + "/messages", json={"text": "g"}, timeout=5)
    assert created.status_code == 201
    assert requests.get(server.url + "/messages", timeout=5).json()["total"] == 1


@pytest.mark.parametrize(
    ("variable", "url", "setting"),
    [
        ("REDIS_URL", "redis+sentinel://127.0.0.1:26379/0", "redis.url"),
        ("KDK_SYNC__URL", "kafka://127.0.0.1:9092", "sync.url"),
    ],
)
def test_kdk_config_refuses_an_unusable_connection_url_with_a_clear_message(variable, url, setting):
    env = {**os.environ, variable: url}
    done = subprocess.run(
        [sys.executable, "-m", "kdk_app", "config"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert f"kdk config: {setting}: invalid" in done.stderr
    assert "expected redis://" in done.stderr
