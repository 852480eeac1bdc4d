"""The service layer on its own: hooks, events, errors, custom methods (no Flask, no database)."""

import json

import pytest

from kdk_app.core import Application, errors
from kdk_app.services import MemoryService


class Greeter:
    def find(self, params):
        return [{"hello": params.get("provider")}]

    def get(self, id, params):
        return {"id": id}

    def shout(self, data, params):
        return {"shouted": str(data["text"]).upper()}


def make_app():
    app = Application()
    service = app.use("greetings", Greeter(), methods=["find", "get", "shout"], events=["shouted"])
    return app, service


def test_hooks_run_in_feathers_order_around_before_method_after():
    app, service = make_app()
    order = []

    def around(name):
        def hook(context, next_):
            order.append(f"{name} in")
            next_()
            order.append(f"{name} out")

        return hook

    def mark(name):
        return lambda context: order.append(name)

    app.hooks(
        {
            "around": {"all": [around("app around.all")], "get": [around("app around.get")]},
            "before": {"all": [mark("app before.all")], "get": [mark("app before.get")]},
            "after": {"all": [mark("app after.all")], "get": [mark("app after.get")]},
        }
    )
    service.hooks(
        {
            "around": {"all": [around("svc around.all")], "get": [around("svc around.get")]},
            "before": {"all": [mark("svc before.all")], "get": [mark("svc before.get")]},
            "after": {"all": [mark("svc after.all")], "get": [mark("svc after.get")]},
        }
    )
    service.get(1)
    assert order == [
        "app around.all in",
        "app around.get in",
        "app before.all",
        "app before.get",
        "svc around.all in",
        "svc around.get in",
        "svc before.all",
        "svc before.get",
        "svc after.all",
        "svc after.get",
        "svc around.get out",
        "svc around.all out",
        "app after.all",
        "app after.get",
        "app around.get out",
        "app around.all out",
    ]


def test_error_hooks_run_method_specific_first_then_all_from_service_to_app():
    app, service = make_app()
    order = []

    def fail(context):
        raise errors.NotFound("nope")

    service.hooks({"before": {"get": [fail]}})
    service.hooks(
        {"error": {"all": [lambda c: order.append("svc all")], "get": [lambda c: order.append("svc get")]}}
    )
    app.hooks(
        {"error": {"all": [lambda c: order.append("app all")], "get": [lambda c: order.append("app get")]}}
    )
    with pytest.raises(errors.NotFound):
        service.get(1)
    assert order == ["svc get", "svc all", "app get", "app all"]


def test_before_hook_setting_result_skips_the_method_even_with_none():
    app, service = make_app()
    called = []
    service.impl.get = lambda id, params: called.append(id)

    def answer(context):
        context.result = None

    service.hooks({"before": {"get": [answer]}})
    assert service.get(1) is None
    assert called == []


def test_error_hook_setting_result_swallows_the_error():
    app, service = make_app()
    service.hooks(
        {"before": {"get": [lambda c: 1 / 0]}, "error": {"get": [lambda c: setattr(c, "result", {"ok": 1})]}}
    )
    assert service.get(1) == {"ok": 1}


def test_provider_tells_external_calls_from_internal_ones():
    app, service = make_app()
    assert service.find() == [{"hello": None}]
    assert service.find({"provider": "rest"}) == [{"hello": "rest"}]


def test_custom_methods_are_callable_through_hooks():
    app, service = make_app()
    seen = []
    service.hooks({"before": {"shout": [lambda c: seen.append(c.data)]}})
    assert service.shout({"text": "hi"}) == {"shouted": "HI"}
    assert seen == [{"text": "hi"}]


def test_too_many_arguments_is_a_bad_request():
    app, service = make_app()
    with pytest.raises(errors.BadRequest, match="Too many arguments for 'get' method"):
        service.call("get", 1, {}, "extra")


def test_created_events_fire_once_per_record_after_hooks_succeed():
    app = Application()
    service = app.use("items", MemoryService(multi=True))
    seen = []
    service.on("created", lambda data, context: seen.append((data["name"], context.method)))
    service.create([{"name": "a"}, {"name": "b"}])
    service.create({"name": "c"})
    assert seen == [("a", "create"), ("b", "create"), ("c", "create")]


def test_no_event_when_a_hook_fails_or_suppresses_it():
    app = Application()
    service = app.use("items", MemoryService())
    seen = []
    service.on("created", lambda data, context: seen.append(data))
    service.hooks({"after": {"create": [lambda c: setattr(c, "event", None)]}})
    service.create({"name": "quiet"})
    assert seen == []


def test_custom_events_reach_listeners_and_sinks():
    app, service = make_app()
    heard, sunk = [], []
    service.on("shouted", lambda data, context: heard.append(data))
    app.event_sinks.append(lambda event: sunk.append((event.path, event.event, event.data)))
    service.emit("shouted", {"x": 1})
    assert heard == [{"x": 1}]
    assert sunk == [("greetings", "shouted", {"x": 1})]


def test_a_failing_listener_does_not_break_the_call():
    app = Application()
    service = app.use("items", MemoryService())
    service.on("created", lambda data, context: 1 / 0)
    assert service.create({"name": "x"})["name"] == "x"


def test_errors_serialise_in_the_feathers_shape():
    error = errors.NotFound("No record found for id '1'", {"id": 1})
    assert error.to_json() == {
        "name": "NotFound",
        "message": "No record found for id '1'",
        "code": 404,
        "className": "not-found",
        "data": {"id": 1},
    }
    options = errors.BadRequest({"message": "m", "errors": {"a": ["bad"]}, "extra": 1})
    assert options.to_json() == {
        "name": "BadRequest",
        "message": "m",
        "code": 400,
        "className": "bad-request",
        "data": {"extra": 1},
        "errors": {"a": ["bad"]},
    }
    assert json.loads(json.dumps(errors.Unavailable("down").to_json()))["code"] == 503


def test_unknown_exceptions_become_a_general_error_revealing_nothing():
    converted = errors.convert(RuntimeError("secret path /etc/passwd"))
    assert converted.to_json() == {
        "name": "GeneralError",
        "message": "Internal server error",
        "code": 500,
        "className": "general-error",
    }


def test_every_feathers_error_class_has_its_code_and_class_name():
    expected = {
        "BadRequest": (400, "bad-request"),
        "NotAuthenticated": (401, "not-authenticated"),
        "PaymentError": (402, "payment-error"),
        "Forbidden": (403, "forbidden"),
        "NotFound": (404, "not-found"),
        "MethodNotAllowed": (405, "method-not-allowed"),
        "NotAcceptable": (406, "not-acceptable"),
        "Timeout": (408, "timeout"),
        "Conflict": (409, "conflict"),
        "Gone": (410, "gone"),
        "LengthRequired": (411, "length-required"),
        "Unprocessable": (422, "unprocessable"),
        "TooManyRequests": (429, "too-many-requests"),
        "GeneralError": (500, "general-error"),
        "NotImplemented": (501, "not-implemented"),
        "BadGateway": (502, "bad-gateway"),
        "Unavailable": (503, "unavailable"),
    }
    for name, (code, class_name) in expected.items():
        body = errors.ERROR_CLASSES[name]("x").to_json()
        assert (body["name"], body["code"], body["className"]) == (name, code, class_name)
        assert errors.from_json(body).to_json() == body


def test_route_placeholders_resolve_to_the_service_with_their_values():
    app = Application()
    app.use("users/:userId/messages", MemoryService())
    service, route = app.lookup("users/42/messages")
    assert service.path == "users/:userId/messages"
    assert route == {"userId": "42"}
    assert app.lookup("nope") is None
