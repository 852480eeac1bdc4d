"""REST in the Feathers wire format, against the example app on a real server process."""

import json

import pytest
import requests


@pytest.fixture
def api(app_server):
    base = app_server.url

    class Api:
        url = base

        def __call__(self, method, path, **kwargs):
            return requests.request(method, base + path, timeout=10, **kwargs)

    yield Api()
    requests.delete(base + "/messages", timeout=10)  # messages allows multi remove


def assert_error(response, code, name):
    assert response.status_code == code, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["name"] == name and body["code"] == code
    assert "stack" not in body and "Traceback" not in response.text
    return body


def test_create_answers_201_with_a_hex_id(api):
    response = api("POST", "/messages", json={"text": "hi", "n": 3})
    assert response.status_code == 201
    body = response.json()
    assert len(body["_id"]) == 24 and body["n"] == 3


def test_find_answers_a_page_and_parses_qs_style_queries(api):
    api(
        "POST",
        "/messages",
        json=[{"text": t, "n": n, "tag": g} for t, n, g in [("a", 1, "x"), ("b", 2, "y"), ("c", 3, "x")]],
    )
    page = api("GET", "/messages?n[$gt]=1&$sort[n]=-1&$select[]=text").json()
    assert page["total"] == 2 and page["limit"] == 10 and page["skip"] == 0
    assert [m["text"] for m in page["data"]] == ["c", "b"]
    assert set(page["data"][0]) == {"_id", "text"}
    ored = api("GET", "/messages?$or[0][tag]=y&$or[1][n]=3&$sort[n]=1").json()
    assert [m["text"] for m in ored["data"]] == ["b", "c"]
    indexed = api("GET", "/messages?n%5B%24in%5D%5B0%5D=1&n%5B%24in%5D%5B1%5D=3").json()
    assert indexed["total"] == 2
    assert api("GET", "/messages?$limit=0").json() == {"total": 3, "limit": 0, "skip": 0, "data": []}
    assert api("GET", "/messages?$limit=500").json()["limit"] == 50


def test_get_patch_update_remove_by_id(api):
    created = api("POST", "/messages", json={"text": "x", "n": 1}).json()
    path = f"/messages/{created['_id']}"
    assert api("GET", path).json()["text"] == "x"
    assert api("PATCH", path, json={"n": 2}).json() == {**created, "n": 2}
    assert api("PUT", path, json={"text": "y"}).json() == {"_id": created["_id"], "text": "y"}
    assert api("DELETE", path).status_code == 200
    assert_error(api("GET", path), 404, "NotFound")


def test_multi_patch_and_remove_by_query(api):
    api("POST", "/messages", json=[{"text": "a", "tag": "t"}, {"text": "b", "tag": "t"}, {"text": "c"}])
    patched = api("PATCH", "/messages?tag=t", json={"n": 7}).json()
    assert sorted(m["text"] for m in patched) == ["a", "b"]
    removed = api("DELETE", "/messages?n=7").json()
    assert len(removed) == 2


@pytest.mark.parametrize(
    "method, path, kwargs, code, name",
    [
        ("GET", "/messages?$limit=-1", {}, 400, "BadRequest"),
        ("GET", "/messages?$limit=abc", {}, 400, "BadRequest"),
        ("GET", "/messages?$sort[n]=sideways", {}, 400, "BadRequest"),
        ("GET", "/messages?n[$regex]=x", {}, 400, "BadRequest"),
        ("GET", "/messages?$where=1", {}, 400, "BadRequest"),
        ("GET", "/messages?password[$ne]=x", {}, 400, "BadRequest"),
        ("GET", "/messages?n=abc", {}, 400, "BadRequest"),
        ("GET", "/messages?a[b][c][d][e][f][g][h]=1", {}, 400, "BadRequest"),
        ("GET", "/messages/not-an-object-id", {}, 404, "NotFound"),
        ("GET", "/messages/568225fbfe21222432e836ff", {}, 404, "NotFound"),
        ("GET", "/messages/1/x", {}, 404, "NotFound"),
        ("GET", "/nope", {}, 404, "NotFound"),
        (
            "POST",
            "/messages",
            {"data": "{bad json", "headers": {"Content-Type": "application/json"}},
            400,
            "BadRequest",
        ),
        ("POST", "/messages", {"json": {"n": 1}}, 400, "BadRequest"),
        ("POST", "/messages", {"json": {"text": "t", "n": "many"}}, 400, "BadRequest"),
        ("POST", "/messages", {"json": "just a string"}, 400, "BadRequest"),
        ("PUT", "/messages", {"json": {"text": "x"}}, 400, "BadRequest"),
        ("POST", "/messages", {"json": []}, 400, "BadRequest"),
        ("POST", "/messages", {"headers": {"X-Service-Method": "find"}, "json": {}}, 405, "MethodNotAllowed"),
        ("POST", "/messages", {"headers": {"X-Service-Method": "nope"}, "json": {}}, 405, "MethodNotAllowed"),
    ],
)
def test_bad_input_gets_a_4xx_feathers_error(api, method, path, kwargs, code, name):
    assert_error(api(method, path, **kwargs), code, name)


def test_bad_input_leaves_data_untouched(api):
    api("POST", "/messages", json={"text": "keep", "n": 1})
    api("PATCH", "/messages?n[$where]=1", json={"n": 2})
    api("DELETE", "/messages?n[$gt]=abc")
    api("POST", "/messages", json=[])
    page = api("GET", "/messages").json()
    assert [(m["text"], m["n"]) for m in page["data"]] == [("keep", 1)]


def test_a_body_over_the_limit_is_413(api):
    big = json.dumps({"text": "x" * (2 * 1024 * 1024)})
    assert_error(
        api("POST", "/messages", data=big, headers={"Content-Type": "application/json"}),
        413,
        "PayloadTooLarge",
    )


def test_healthcheck_reports_the_database(api):
    response = api("GET", "/healthcheck")
    assert response.status_code == 200
    flags = {k: v for k, v in response.json().items() if k != "mongo"}  # the replica set's members
    assert flags == {"isRunning": True, "isDatabaseRunning": True}
