"""kdk's JSON response (kdk_app/transports/response.py) goes out by a shorter way than werkzeug's,
and what the server receives is the same: status, header list and body, for every kind of
response, the ones that take werkzeug's own path included. Then through a real app: a service
answer, a HEAD and a redirect of a hook."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask, Response
from werkzeug.test import EnvironBuilder

from kdk_app.transports.response import JSONResponse

BODY = json.dumps({"text": "héllo", "n": 1}).encode()


def sent(response: Response, method: str = "GET") -> tuple[str, list[tuple[str, str]], bytes]:
    environ = EnvironBuilder(path="/messages/1", method=method).get_environ()
    started: list[Any] = []
    chunks = response(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
    body = b"".join(chunks)
    close = getattr(chunks, "close", None)
    if close is not None:
        close()
    return started[0][0], list(started[0][1]), body


def build(cls: type[Response], case: str) -> Response:
    if case == "json":
        return cls(BODY, status=200, content_type="application/json")
    if case == "created, with headers":
        return cls(BODY, status=201, headers={"X-Total": "3"}, content_type="application/json")
    if case == "no content":
        return cls(status=204, content_type="application/json")
    if case == "redirect to an IRI":
        return cls(BODY, status=303, headers={"Location": "/messages/é"}, content_type="application/json")
    if case == "content location":
        return cls(BODY, headers={"Content-Location": "/é"}, content_type="application/json")
    if case == "error":
        return cls(BODY, status=404, content_type="application/json")
    response = cls(BODY, content_type="application/json")
    if case == "data replaced after":
        response.set_data(b'{"other":true}')
    elif case == "streamed body":
        response.response = iter([b'{"a":', b"1}"])
        del response.headers["Content-Length"]
    elif case == "text items":
        response.response = ['{"a":1}']
    elif case == "no length":
        del response.headers["Content-Length"]
    return response


CASES = [
    "json",
    "created, with headers",
    "no content",
    "redirect to an IRI",
    "content location",
    "error",
    "data replaced after",
    "streamed body",
    "text items",
    "no length",
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("case", CASES)
def test_the_server_receives_what_werkzeugs_own_response_sends(case: str, method: str) -> None:
    assert sent(build(JSONResponse, case), method) == sent(build(Response, case), method)


def test_callbacks_on_close_still_run() -> None:
    closed: list[str] = []
    for cls in (JSONResponse, Response):
        response = build(cls, "json")
        response.call_on_close(lambda cls=cls: closed.append(cls.__name__))
        sent(response)
    assert closed == ["JSONResponse", "Response"]


def test_a_json_response_has_the_json_content_type_by_default() -> None:
    assert JSONResponse(BODY).headers["Content-Type"] == "application/json"


def service_app(mongo_url: str) -> Flask:
    from kdk_app import create_app

    app = create_app(
        mongo={"url": mongo_url, "database": "json_response"},
        services={"jottings": {"adapter": "memory"}},
    )
    return app


@pytest.fixture
def client(mongo_url: str) -> Any:
    app = service_app(mongo_url)
    yield app.test_client()
    app.extensions["kdk"].teardown()


def test_a_service_answer_keeps_its_status_headers_and_body(client: Any) -> None:
    created = client.post("/jottings", json={"text": "a"})
    assert created.status_code == 201
    assert created.headers["Content-Type"] == "application/json"
    assert int(created.headers["Content-Length"]) == len(created.data)
    record = created.get_json()

    got = client.get(f"/jottings/{record['id']}")
    assert (got.status_code, got.get_json()) == (200, record)
    head = client.head(f"/jottings/{record['id']}")
    assert (head.status_code, head.data, head.headers["Content-Length"]) == (
        200,
        b"",
        got.headers["Content-Length"],
    )


def test_an_answer_changed_by_an_after_request_handler_is_sent_as_changed(mongo_url: str) -> None:
    app = service_app(mongo_url)

    @app.after_request
    def rewrite(response: Response) -> Response:
        if response.status_code == 200:
            response.set_data(b'{"rewritten":true}')
        return response

    try:
        got = app.test_client().get("/jottings")
        assert got.get_json() == {"rewritten": True}
        assert got.headers["Content-Length"] == str(len(b'{"rewritten":true}'))
    finally:
        app.extensions["kdk"].teardown()
