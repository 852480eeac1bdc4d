"""Feathers 5 resolvers on the service layer alone (MemoryService, no Flask): property and
virtual resolvers, the resolve_* hooks and their order, validation hooks, batched population."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import Schema, fields

from kdk_app.core import Application, errors
from kdk_app.core.common_hooks import cache, request_cache
from kdk_app.core.populate import populate
from kdk_app.core.resolvers import (
    NULL,
    batch_virtual,
    resolve,
    resolve_data,
    resolve_external,
    resolve_query,
    resolve_result,
    virtual,
)
from kdk_app.core.validation import validate_data, validate_query
from kdk_app.services import MemoryService


class Calls:
    """Counts the calls a service receives, by method (a before hook on it)."""

    def __init__(self) -> None:
        self.methods: list[str] = []
        self.params: list[dict[str, Any]] = []

    def __call__(self, context: Any) -> None:
        self.methods.append(context.method)
        self.params.append(context.params)


def chat(messages_count: int = 25, **message_options: Any) -> tuple[Application, Calls]:
    app = Application()
    users = app.use("users", MemoryService(paginate={"default": 10, "max": 50}))
    for index in range(5):
        users.create({"name": f"user{index}", "password": f"secret{index}"})
    counted = Calls()
    users.hooks({"before": {"all": [counted]}})
    messages = app.use("messages", MemoryService(paginate={"default": 25, "max": 50}, **message_options))
    for index in range(messages_count):
        messages.create({"text": f"message {index}", "user_id": index % 5})
    return app, counted


# --- resolvers ------------------------------------------------------------------------------


def test_a_property_resolver_gets_the_value_the_record_and_the_context(app_context: Any) -> None:
    seen = []
    resolver = resolve({"name": lambda value, data, context: seen.append((value, data, context)) or "X"})
    assert resolver.resolve({"name": "a", "n": 1}, app_context) == {"name": "X", "n": 1}
    assert seen == [("a", {"name": "a", "n": 1}, app_context)]


def test_returning_none_removes_the_property_and_null_keeps_a_none(app_context: Any) -> None:
    resolver = resolve({"secret": lambda *args: None, "note": lambda *args: NULL})
    assert resolver.resolve({"secret": "s", "note": "n", "kept": 1}, app_context) == {"note": None, "kept": 1}


def test_a_resolver_for_a_missing_property_may_add_it_and_virtual_sees_the_whole_record(
    app_context: Any,
) -> None:
    resolver = resolve(
        {
            "upper": lambda value, data, context: data["text"].upper(),
            "length": virtual(lambda data, context: len(data["text"])),
        }
    )
    assert resolver.resolve({"text": "hi"}, app_context) == {"text": "hi", "upper": "HI", "length": 2}


def test_every_resolver_sees_the_record_as_it_came_not_another_resolvers_output(app_context: Any) -> None:
    resolver = resolve({"a": lambda v, data, c: "changed", "b": lambda v, data, c: data["a"]})
    assert resolver.resolve({"a": "original"}, app_context) == {"a": "changed", "b": "original"}


def test_feathers_errors_of_resolvers_are_collected_into_one_bad_request(app_context: Any) -> None:
    def refuse(value: Any, data: Any, context: Any) -> Any:
        raise errors.Forbidden("no")

    with pytest.raises(errors.BadRequest) as caught:
        resolve({"a": refuse, "b": refuse}).resolve({}, app_context)
    assert caught.value.message == "Error resolving data"
    assert set(caught.value.errors) == {"a", "b"} and caught.value.errors["a"]["code"] == 403


def test_a_resolver_must_be_callable() -> None:
    with pytest.raises(TypeError, match="'a'"):
        resolve({"a": "not a function"})


@pytest.fixture
def app_context() -> Any:
    app = Application()
    service = app.use("things", MemoryService())
    return service.run("find")


# --- the hooks ------------------------------------------------------------------------------


def test_resolve_data_runs_before_create_patch_and_each_item_of_a_multi_create() -> None:
    app = Application()
    service = app.use("things", MemoryService(multi=True))
    service.hooks({"before": {"all": [resolve_data({"name": lambda value, data, c: value.strip().lower()})]}})
    created = service.create([{"name": " A "}, {"name": "B"}])
    assert [r["name"] for r in created] == ["a", "b"]
    assert service.patch(created[0]["id"], {"name": " Z"})["name"] == "z"


def test_resolve_result_resolves_pages_lists_and_single_records() -> None:
    app = Application()
    service = app.use("things", MemoryService(paginate={"default": 10}, multi=True))
    service.hooks({"after": {"all": [resolve_result({"shout": virtual(lambda d, c: d["name"].upper())})]}})
    service.create([{"name": "a"}, {"name": "b"}])
    page = service.find()
    assert page["total"] == 2 and [r["shout"] for r in page["data"]] == ["A", "B"]
    assert [r["shout"] for r in service.find({"paginate": False})] == ["A", "B"]
    assert service.get(0)["shout"] == "A"


def test_resolve_query_forces_a_field_of_the_query() -> None:
    app = Application()
    service = app.use("notes", MemoryService())
    service.create({"user_id": 1, "text": "mine"})
    service.create({"user_id": 2, "text": "theirs"})
    owner = resolve_query({"user_id": lambda value, query, context: context.params["user"]["id"]})
    service.hooks({"before": {"find": [owner]}})
    found = service.find({"user": {"id": 1}, "query": {"user_id": 2}})
    assert [n["text"] for n in found] == ["mine"]


def test_resolve_external_changes_only_what_leaves_not_the_internal_result() -> None:
    app = Application()
    users = app.use("users", MemoryService())
    users.hooks({"around": {"all": [resolve_external({"password": lambda *args: None})]}})
    events: list[Any] = []
    app.event_sinks.append(lambda event: events.append(event.payload))
    context = users.run("create", {"name": "a", "password": "p"}, {"provider": "rest"})
    assert context.result["password"] == "p"  # what an internal caller would get
    assert context.safe_result == {"id": 0, "name": "a"}  # what REST and sockets send
    internal = users.run("create", {"name": "b", "password": "q"})
    assert internal.result["password"] == "q"
    assert events == [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]  # events never carry it


def test_resolvers_as_around_hooks_wrap_the_before_and_after_hooks() -> None:
    app = Application()
    service = app.use("things", MemoryService())
    order: list[str] = []
    service.hooks(
        {
            "around": {
                "all": [
                    resolve_data({"n": lambda v, d, c: order.append("resolve_data") or v}),
                    resolve_result({"n": lambda v, d, c: order.append("resolve_result") or v}),
                ]
            },
            "before": {"all": [lambda c: order.append("before")]},
            "after": {"all": [lambda c: order.append("after")]},
        }
    )
    service.create({"n": 1})
    assert order == ["resolve_data", "before", "after", "resolve_result"]


# --- validation -----------------------------------------------------------------------------


class MessageSchema(Schema):
    text = fields.String(required=True)
    n = fields.Integer()


def test_validate_data_checks_create_fully_and_patch_partially() -> None:
    app = Application()
    service = app.use("messages", MemoryService())
    service.hooks({"before": {"all": [validate_data(MessageSchema)]}})
    created = service.create({"text": "hi", "n": "3"})
    assert created["n"] == 3  # coerced
    assert service.patch(created["id"], {"n": "4"})["n"] == 4  # text not required on patch
    with pytest.raises(errors.BadRequest) as caught:
        service.create({"n": "x"})
    body = caught.value.to_json()
    assert body["code"] == 400 and body["message"] == "Validation failed"
    assert set(body["errors"]) == {"text", "n"}


def test_validate_query_converts_values_and_operands_and_refuses_bad_ones() -> None:
    app = Application()
    service = app.use("messages", MemoryService())
    service.hooks({"before": {"find": [validate_query(MessageSchema)]}})
    for n in range(5):
        service.create({"text": f"t{n}", "n": n})
    assert len(service.find({"query": {"n": {"$gte": "3"}}})) == 2
    assert len(service.find({"query": {"$or": [{"n": "1"}, {"n": {"$in": ["2", "3"]}}]}})) == 3
    with pytest.raises(errors.BadRequest) as caught:
        service.find({"query": {"n": "many"}})
    assert caught.value.errors == {"n": ["Not a valid integer."]}


# --- batched population ---------------------------------------------------------------------


def test_a_page_of_25_messages_gets_its_users_with_one_find_without_pagination() -> None:
    app, counted = chat()
    app.service("messages").hooks(
        {"after": {"all": [resolve_result({"user": populate("users", key="user_id")})]}}
    )
    page = app.service("messages").find()
    assert len(page["data"]) == 25
    assert all(m["user"]["id"] == m["user_id"] for m in page["data"])
    assert counted.methods == ["find"]
    inner = counted.params[0]
    assert inner["paginate"] is False and "provider" not in inner
    assert sorted(inner["query"]["id"]["$in"]) == [0, 1, 2, 3, 4]


def test_population_without_keys_makes_no_call_and_a_missing_record_removes_the_field() -> None:
    app, counted = chat(messages_count=0)
    messages = app.service("messages")
    messages.hooks({"after": {"all": [resolve_result({"user": populate("users", key="user_id")})]}})
    assert "user" not in messages.create({"text": "orphan"})
    assert counted.methods == []
    assert "user" not in messages.create({"text": "lost", "user_id": 99})
    assert counted.methods == ["find"]


def test_a_list_of_keys_populates_a_list_in_the_same_order() -> None:
    app, counted = chat(messages_count=0)
    groups = app.use("groups", MemoryService())
    groups.hooks({"after": {"all": [resolve_result({"members": populate("users", key="member_ids")})]}})
    group = groups.create({"member_ids": [3, 1, 42]})
    assert [u["name"] for u in group["members"]] == ["user3", "user1"]


def test_external_callers_get_populated_records_as_their_service_dispatches_them() -> None:
    app, counted = chat(messages_count=3)
    app.service("users").hooks({"around": {"all": [resolve_external({"password": lambda *a: None})]}})
    messages = app.service("messages")
    messages.hooks({"after": {"all": [resolve_result({"user": populate("users", key="user_id")})]}})
    external = messages.run("find", {"provider": "rest"})
    assert all("password" not in m["user"] for m in external.safe_result["data"])
    internal = messages.find()
    assert all("password" in m["user"] for m in internal["data"])


def test_resolve_external_of_the_outer_service_uses_the_populated_dispatch_for_events() -> None:
    app, counted = chat(messages_count=0)
    app.service("users").hooks({"around": {"all": [resolve_external({"password": lambda *a: None})]}})
    messages = app.service("messages")
    messages.hooks(
        {
            "around": {"all": [resolve_external({"user_id": lambda *a: None})]},
            "after": {"all": [resolve_result({"user": populate("users", key="user_id")})]},
        }
    )
    events: list[Any] = []
    app.event_sinks.append(lambda event: events.append(event.payload))
    created = messages.create({"text": "hi", "user_id": 2})  # internal: the full user
    assert created["user"]["password"] == "secret2"
    assert events == [{"id": 0, "text": "hi", "user": {"id": 2, "name": "user2"}}]


def test_batch_virtual_loads_once_per_call() -> None:
    app = Application()
    service = app.use("things", MemoryService(multi=True))
    loads: list[int] = []

    def load(records: list[Any], context: Any) -> int:
        loads.append(len(records))
        return sum(r["n"] for r in records)

    total = batch_virtual(load, lambda state, data, context: state)
    service.hooks({"after": {"all": [resolve_result({"total": total})]}})
    created = service.create([{"n": 1}, {"n": 2}, {"n": 3}])
    assert [r["total"] for r in created] == [6, 6, 6] and loads == [3]


def test_a_cache_passed_down_serves_repeated_gets_of_one_request_only() -> None:
    app, counted = chat(messages_count=0)
    app.service("users").hooks({"around": {"all": [cache()]}})
    messages = app.service("messages")

    def author(value: Any, data: Any, context: Any) -> Any:
        return app.service("users").get(data["user_id"], {"cache": request_cache(context)})

    messages.hooks({"after": {"all": [resolve_result({"author": author})]}})
    for n in range(6):
        messages.create({"text": f"m{n}", "user_id": n % 2})
    counted.methods.clear()
    page = messages.find()
    assert [m["author"]["name"] for m in page["data"]] == ["user0", "user1"] * 3
    assert counted.methods == ["get", "get"]  # one per user in this request
    messages.find()
    assert counted.methods == ["get"] * 4  # a new request, a new cache
