"""``/openapi.json`` (kdk_app/openapi/): the OpenAPI 3.1 document of what the app serves.

* In process (Flask's test client, real SecantusDB): the document's shape, every REST route of
  every service in it, marshmallow schemas as bodies, custom methods, tokens, settings.
* Against ``kdk serve`` (config/test.py, a database of its own): schemathesis generates
  requests from the server's own ``/openapi.json`` for every operation (a logged-in user's
  token on each), and checks that no answer is a 5xx and every answer conforms to the
  document (status, content type, body schema).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from servers import AppServerFactory

from kdk_app import create_app
from kdk_app.core import STANDARD_METHODS
from kdk_app.services.memory import MemoryService

EXAMPLES = 8  # per operation: ~50 operations in about 10 s
COLLECTION_VERBS = {"find": "get", "create": "post"}
ITEM_VERBS = {"get": "get", "update": "put", "patch": "patch", "remove": "delete"}


class Archive(MemoryService):
    """A service with a custom method, called by POST with X-Service-Method: archive."""

    def archive(self, data: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"archived": data}


def _app(mongo_url: str, **overrides: Any) -> Flask:
    return create_app(
        mongo={"url": mongo_url, "database": f"openapi_{uuid.uuid4().hex[:10]}"},
        redis={"url": None},
        sync={"enabled": False},
        socketio={"enabled": False},
        **overrides,
    )


@pytest.fixture
def app(mongo_url: str) -> Iterator[Flask]:
    flask_app = _app(
        mongo_url,
        services={"archives": {"adapter": Archive(), "methods": [*STANDARD_METHODS, "archive"]}},
    )
    yield flask_app
    flask_app.extensions["kdk"].teardown()


@pytest.fixture
def document(app: Flask) -> dict[str, Any]:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        *_, kind, name = schema["$ref"].split("/")
        schema = document["components"][kind][name]
    return schema


# --- the document, in process ----------------------------------------------------------------


def test_document_is_openapi_3_1_with_feathers_errors_and_pages(document):
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "kdk-app API"
    error = document["components"]["schemas"]["FeathersError"]
    assert error["required"] == ["name", "message", "code", "className"]
    assert {"data", "errors"} <= set(error["properties"])
    find = document["paths"]["/messages"]["get"]
    page = find["responses"]["200"]["content"]["application/json"]["schema"]
    assert page["required"] == ["total", "skip", "data"] and set(page["properties"]) == {
        "total",
        "limit",
        "skip",
        "data",
    }
    bad = _resolve(document, find["responses"]["400"])
    variant = bad["content"]["application/json"]["schema"]["allOf"][1]["properties"]
    assert variant == {
        "name": {"const": "BadRequest"},
        "code": {"const": 400},
        "className": {"const": "bad-request"},
    }
    assert {"400", "500", "503"} <= set(find["responses"])  # MongoDB down is a 503
    assert "404" in document["paths"]["/messages/{id}"]["get"]["responses"]


def test_find_documents_paging_sort_select_and_field_operators(document):
    params = {p["name"]: p for p in document["paths"]["/messages"]["get"]["parameters"]}
    assert {"$limit", "$skip", "$sort", "$select", "text", "n", "tag", "_id"} <= set(params)
    assert params["$limit"]["schema"]["type"] == "integer"
    assert "Default 10, at most 50" in params["$limit"]["description"]
    assert params["$sort"]["style"] == "deepObject"
    assert params["$sort"]["schema"]["properties"]["n"] == {"type": "integer", "enum": [1, -1]}
    assert params["$select"]["schema"]["items"]["enum"] == ["_id", "n", "tag", "text"]
    n = params["n"]
    assert n["style"] == "deepObject" and n["explode"] is True
    assert set(n["schema"]["properties"]) == {"$in", "$nin", "$lt", "$lte", "$gt", "$gte", "$ne"}
    assert n["schema"]["properties"]["$gt"] == {"type": "integer"}  # the schema's field type
    assert "$or" in document["paths"]["/messages"]["get"]["description"]


def test_every_rest_route_of_every_service_is_in_the_document(app, document):
    kdk = app.extensions["kdk"]
    paths = document["paths"]
    for path, service in kdk.services.items():
        collection, item = paths[f"/{path}"], paths[f"/{path}/{{id}}"]
        for method in service.methods:
            if method in COLLECTION_VERBS:
                assert COLLECTION_VERBS[method] in collection, (path, method)
            elif method in ITEM_VERBS:
                assert ITEM_VERBS[method] in item, (path, method)
    # Each service blueprint's rules, in OpenAPI's notation.
    rules = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("rest_")}
    for rule in rules - {"/<path:rest>"}:
        assert rule.rstrip("/").replace("<path:__id>", "{id}") in paths, rule
    for own in ("/healthcheck", "/livez", "/readyz"):
        assert set(paths[own]) == {"get"}


def test_multi_patch_and_remove_are_on_the_collection_only_where_allowed(document):
    paths = document["paths"]
    assert {"get", "post", "patch", "delete"} <= set(paths["/messages"])  # multi: True
    assert {"patch", "delete"} <= set(paths["/notes"])  # multi: ["patch", "remove"]
    assert "patch" not in paths["/users"] and "delete" not in paths["/users"]
    create = paths["/messages"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create["oneOf"][1]["type"] == "array"  # multi create takes an array too


def test_a_marshmallow_schema_gives_the_bodies_and_the_records(document):
    schemas = document["components"]["schemas"]
    messages = document["paths"]["/messages"]
    body = messages["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0]
    assert body == {"$ref": "#/components/schemas/MessagesData"}
    data = schemas["MessagesData"]
    assert data["required"] == ["text"]
    # Unknown fields are stored (INCLUDE): any JSON a database takes, under storable names.
    assert data["additionalProperties"] == {"$ref": "#/components/schemas/StorableValue"}
    assert data["propertyNames"]["pattern"].startswith("^[^$.")
    assert data["properties"]["n"] == {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
    item = document["paths"]["/messages/{id}"]
    patch = item["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert (
        patch == {"$ref": "#/components/schemas/MessagesPatch"} and "required" not in schemas["MessagesPatch"]
    )
    record = schemas["Messages"]
    assert record["required"] == ["_id"]  # $select may leave only the id
    # The users schema refuses unknown fields and never returns the password.
    assert schemas["UsersData"]["additionalProperties"] is False
    assert "password" in schemas["UsersData"]["properties"]
    assert "password" not in schemas["Users"]["properties"]


def test_custom_methods_are_a_post_with_the_x_service_method_header(document):
    post = document["paths"]["/archives"]["post"]
    header = next(p for p in post["parameters"] if p["in"] == "header")
    assert header["name"] == "X-Service-Method" and header["schema"]["enum"] == ["archive"]
    assert header["required"] is False  # without it, the POST is a create
    assert post["x-kdk-custom-methods"] == ["archive"]
    assert {"200", "201", "204", "405"} <= set(post["responses"])


def test_the_custom_method_answers_as_documented(app):
    client = app.test_client()
    answer = client.post("/archives", json={"a": 1}, headers={"X-Service-Method": "archive"})
    assert answer.status_code == 200 and answer.json == {"archived": {"a": 1}}
    unknown = client.post("/archives", json={}, headers={"X-Service-Method": "nope"})
    assert unknown.status_code == 405


def test_bearer_tokens_are_documented_where_the_hooks_require_them(document):
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The accessToken from POST /authentication",
    }
    paths = document["paths"]
    assert paths["/notes"]["get"]["security"] == [{"bearerAuth": []}]
    assert {"401", "403"} <= set(paths["/notes"]["get"]["responses"])
    assert paths["/users"]["get"]["security"] == [{"bearerAuth": []}]
    # Registration: open to anyone, a token counts when given; throttled per address.
    assert paths["/users"]["post"]["security"] == [{}, {"bearerAuth": []}]
    assert "429" in paths["/users"]["post"]["responses"]
    assert "security" not in paths["/messages"]["get"]  # no hook reads a token there
    login = paths["/authentication"]["post"]
    strategy = login["requestBody"]["content"]["application/json"]["schema"]["properties"]["strategy"]
    assert strategy["enum"] == ["jwt", "local"] and "security" not in login
    assert {"401", "429"} <= set(login["responses"])
    assert paths["/authentication/{id}"]["delete"]["security"] == [{"bearerAuth": []}]


def test_an_api_path_prefixes_every_service_path(mongo_url):
    flask_app = _app(mongo_url, api_path="/api")
    try:
        paths = flask_app.test_client().get("/openapi.json").get_json()["paths"]
    finally:
        flask_app.extensions["kdk"].teardown()
    assert "/api/messages" in paths and "/api/authentication" in paths and "/messages" not in paths
    assert "/healthcheck" in paths


def test_route_parameters_of_a_service_path_are_path_parameters(mongo_url):
    flask_app = _app(mongo_url, services={"users/:userId/tags": {"adapter": "memory"}})
    try:
        paths = flask_app.test_client().get("/openapi.json").get_json()["paths"]
    finally:
        flask_app.extensions["kdk"].teardown()
    item = paths["/users/{userId}/tags/{id}"]
    assert item["parameters"][0]["name"] == "userId" and item["parameters"][0]["in"] == "path"
    assert "get" in paths["/users/{userId}/tags"]


def test_a_service_mounted_later_appears_in_the_next_document(app):
    client = app.test_client()
    assert "/later" not in client.get("/openapi.json").get_json()["paths"]
    app.extensions["kdk"].use("later", MemoryService())  # as the distribution mounts a remote one
    assert "/later" in client.get("/openapi.json").get_json()["paths"]


def test_openapi_can_be_disabled_or_served_without_the_ui(mongo_url):
    off = _app(mongo_url, openapi={"enabled": False})
    no_ui = _app(mongo_url, openapi={"docs_path": None, "path": "/spec.json"})
    try:
        assert off.test_client().get("/openapi.json").status_code == 404
        assert off.test_client().get("/docs").status_code == 404
        assert no_ui.test_client().get("/spec.json").get_json()["openapi"] == "3.1.0"
        assert no_ui.test_client().get("/docs").status_code == 404
    finally:
        off.extensions["kdk"].teardown()
        no_ui.extensions["kdk"].teardown()


@pytest.mark.parametrize(
    ("openapi", "named"),
    [
        ({"path": "openapi.json"}, "openapi.path"),
        ({"docs_path": "/"}, "openapi.docs_path"),
        ({"docs_path": "/openapi.json"}, "openapi.docs_path"),
        ("yes", "openapi"),
    ],
)
def test_bad_openapi_settings_are_refused_at_start(mongo_url, openapi, named):
    with pytest.raises(ValueError, match=named):
        _app(mongo_url, openapi=openapi)


def test_other_verbs_on_the_document_answer_a_feathers_405(app):
    answer = app.test_client().post("/openapi.json", json={})
    assert answer.status_code == 405 and answer.json["className"] == "method-not-allowed"


# --- schemathesis against kdk serve ------------------------------------------------------------


@pytest.fixture(scope="module")
def served(mongo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One ``kdk serve`` for every generated case, on a database of its own, and a user's token."""
    factory = AppServerFactory(mongo_url, tmp_path_factory.mktemp("openapi"))
    server = factory({"KDK_MONGO__DATABASE": f"openapi_{uuid.uuid4().hex[:10]}", "JWT_SECRET": "x" * 40})
    try:
        email, password = f"fuzz-{uuid.uuid4().hex[:8]}@example.org", "correct horse battery"
        created = requests.post(
            f"{server.url}/users", json={"email": email, "password": password}, timeout=10
        )
        assert created.status_code == 201, created.text
        login = requests.post(
            f"{server.url}/authentication",
            json={"strategy": "local", "email": email, "password": password},
            timeout=10,
        )
        assert login.status_code == 201, login.text
        yield {"server": server, "token": login.json()["accessToken"]}
    finally:
        factory.stop_all()


def _cases_of(operation: Any, token: str, checks: list[Any]) -> list[str]:
    """Run generated cases of one operation; the failures, as text (empty: all passed)."""
    from hypothesis import HealthCheck, Phase, given, settings  # comes with schemathesis

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure says enough
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, timeout=10, checks=checks)

    try:
        run()
    except (Exception, BaseExceptionGroup) as failure:  # schemathesis groups several failures
        return [f"{operation.method.upper()} {operation.path}: {failure}"]
    return []


def test_the_server_answers_as_its_own_document_says(served):
    # schemathesis.pytest.from_fixture needs a pytest internal that pytest 9 no longer has: one
    # test walks every operation instead.
    schemathesis = pytest.importorskip("schemathesis")  # the `test` extra
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi import checks as conformance

    checks = [
        not_a_server_error,
        conformance.status_code_conformance,
        conformance.content_type_conformance,
        conformance.response_schema_conformance,
    ]
    url = served["server"].url
    loaded = schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=10)
    operations = [result.ok() for result in loaded.get_all_operations()]
    assert len(operations) > 30
    failures = [
        failure for operation in operations for failure in _cases_of(operation, served["token"], checks)
    ]
    assert not failures, "\n\n".join(failures) + "\n\nserver log:\n" + served["server"].log_text()[-4000:]
