"""What ``kdk generate service`` writes: ``string.Template`` sources (``${name}`` placeholders).

Kept in Python rather than as package data, so an installed kdk-app always has them.
"""

from __future__ import annotations

from string import Template

SERVICE_MODULE = Template('''\
"""The `${path}` service: schema, hooks and spec (written by `kdk generate service ${path}`).

Register it in config/default.py (a module is no configuration key, so the import adds none):

    from services import ${module}

    services["${path}"] = ${module}.service()

Anyone may call it, like the example `messages` service. To require a login, put
`kdk_app.auth.authenticate("jwt")` and `kdk_app.auth.authorize()` first in `before.all`, give
each role its rights in `permissions`, and publish with `kdk_app.auth.permission_publisher()`
(README, "Authentication and permissions").
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kdk_app.core.hooks import HookContext
from marshmallow import RAISE, Schema, fields


class ${schema}(Schema):
    """What create, update and patch accept; unknown fields are a 400."""

    class Meta:
        unknown = RAISE

    text = fields.String(required=True)
    created_at = fields.String()  # set by the hooks below, whatever a client sends
    updated_at = fields.String()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _records(context: HookContext) -> list[dict[str, Any]]:
    """The records in ``context.data`` (a list for a multi create), copied first: a hook never
    changes the caller's objects. Anything else is left to the schema, which answers 400."""
    if isinstance(context.data, list):
        context.data = [dict(item) if isinstance(item, dict) else item for item in context.data]
        return [item for item in context.data if isinstance(item, dict)]
    if isinstance(context.data, dict):
        context.data = dict(context.data)
        return [context.data]
    return []


def stamp_created(context: HookContext) -> None:
    """Before create: both times, whatever the client sent."""
    now = _now()
    for record in _records(context):
        record["created_at"] = record["updated_at"] = now


def stamp_updated(context: HookContext) -> None:
    """Before update and patch: a new ``updated_at``; ``created_at`` never changes."""
    records = _records(context)
    created_at = None
    if context.method == "update" and records:
        # A full replacement keeps the creation time of the record it replaces.
        created_at = context.service.get(context.id).get("created_at")
    now = _now()
    for record in records:
        record.pop("created_at", None)
        if created_at is not None:
            record["created_at"] = created_at
        record["updated_at"] = now


hooks = {
    "before": {
        "create": [stamp_created],
        "update": [stamp_updated],
        "patch": [stamp_updated],
    },
}


def publish(data: Any, context: HookContext) -> list[str]:
    """The channels that receive this service's events: every connection, logged in or not."""
    return ["anonymous", "authenticated"]


def service(**options: Any) -> dict[str, Any]:
    """The spec of ``services["${path}"]``; ``options`` add keys or replace them (``multi``,
    ``paginate``, ``methods``, ``events`` ...: README, "Defining services")."""
    spec: dict[str, Any] = {
${adapter_options}
        "schema": ${schema},
        "hooks": hooks,
        "publish": publish,
    }
    spec.update(options)
    return spec
''')

MONGODB_OPTIONS = """\
        "adapter": "mongodb",
        "collection": "${collection}",
        "indexes": ["created_at"],"""

MEMORY_OPTIONS = """\
        "adapter": "memory",  # in this process only, lost at restart"""

SERVICE_TEST = Template('''\
"""Tests of the `${path}` service (written by `kdk generate service ${path}`).

Run them with `python -m pytest ${test_path}`.${database_note}
"""

from __future__ import annotations

${imports}from pathlib import Path

import pytest
from kdk_app.app import create_app
from kdk_app.core.errors import BadRequest

# The project folder, where services/ is: pytest only puts this file's folder on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services import ${module}  # noqa: E402


${fixtures}

def test_create_stamps_the_record_and_get_finds_it(app):
    service = app.extensions["kdk"].service("${path}")
    created = service.create({"text": "first", "created_at": "forged"})
    assert created["text"] == "first"
    assert created["created_at"] == created["updated_at"] != "forged"
    assert service.get(created["${id}"])["text"] == "first"


def test_data_outside_the_schema_is_refused(app):
    service = app.extensions["kdk"].service("${path}")
    with pytest.raises(BadRequest):
        service.create({})  # text is required
    with pytest.raises(BadRequest):
        service.create({"text": "x", "colour": "red"})  # unknown fields are refused


def test_patch_and_update_keep_the_creation_time(app):
    service = app.extensions["kdk"].service("${path}")
    created = service.create({"text": "a"})
    patched = service.patch(created["${id}"], {"text": "b", "created_at": "forged"})
    assert patched["text"] == "b"
    assert patched["created_at"] == created["created_at"]
    assert patched["updated_at"] >= created["updated_at"]
    replaced = service.update(created["${id}"], {"text": "c"})
    assert replaced["text"] == "c"
    assert replaced["created_at"] == created["created_at"]


def test_rest_create_get_and_remove(app):
    client = app.test_client()
    response = client.post("/${path}", json={"text": "over REST"})
    assert response.status_code == 201
    url = f"/${path}/{response.get_json()['${id}']}"
    assert client.get(url).get_json()["text"] == "over REST"
    assert client.delete(url).status_code == 200
    assert client.get(url).status_code == 404
''')

MONGODB_FIXTURES = '''\
@pytest.fixture(scope="module")
def mongo_url():
    """``KDK_TEST_MONGO_URL`` (a server for tests) if set, else an in-memory SecantusDB."""
    url = os.environ.get("KDK_TEST_MONGO_URL")
    if url:
        yield url
        return
    from kdk_app.embedded import start_secantusdb

    process, url = start_secantusdb(":memory:")
    try:
        yield url
    finally:
        process.stop()


@pytest.fixture
def app(mongo_url):
    """An app with this service alone, on a database of its own, dropped afterwards."""
    import pymongo

    database = f"test_${module}_{uuid.uuid4().hex[:8]}"
    flask_app = create_app(
        {"services": {"${path}": ${module}.service()}, "mongo": {"url": mongo_url, "database": database}}
    )
    yield flask_app
    flask_app.extensions["kdk"].teardown()
    with pymongo.MongoClient(mongo_url) as client:
        client.drop_database(database)
'''

MEMORY_FIXTURES = '''\
@pytest.fixture
def app():
    """An app with this service alone (its records live in this process)."""
    flask_app = create_app({"services": {"${path}": ${module}.service()}})
    yield flask_app
    flask_app.extensions["kdk"].teardown()
'''

MONGODB_IMPORTS = "import os\nimport sys\nimport uuid\n"
MEMORY_IMPORTS = "import sys\n"
MONGODB_NOTE = (
    "\nThey use the MongoDB of `KDK_TEST_MONGO_URL`, else start an in-memory SecantusDB\n"
    "(`pip install 'kdk-app[embedded]'`)."
)

PACKAGE_INIT = '"""The services of this project (`kdk generate service NAME` writes one per module)."""\n'
