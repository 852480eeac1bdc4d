"""The common hooks (feathers-hooks-common) on the service layer alone, with MemoryService."""

from __future__ import annotations

from typing import Any

import pytest

from kdk_app.core import Application, errors
from kdk_app.core.common_hooks import (
    cache,
    disallow,
    discard,
    iff,
    iff_else,
    is_provider,
    now_ms,
    prevent_changes,
    set_now,
    soft_delete,
)
from kdk_app.services import MemoryService

REST = {"provider": "rest"}


def service_with(hooks: dict[str, Any], **options: Any) -> Any:
    app = Application()
    service = app.use("things", MemoryService(**options))
    service.hooks(hooks)
    return service


def test_disallow_without_providers_refuses_every_caller_internal_ones_too() -> None:
    service = service_with({"before": {"remove": [disallow()]}})
    created = service.create({"n": 1})
    for params in (REST, None):
        with pytest.raises(errors.MethodNotAllowed) as caught:
            service.remove(created["id"], params)
    assert (
        caught.value.code == 405
        and caught.value.message == "Provider 'server' can not call 'remove'. (disallow)"
    )


def test_disallow_external_refuses_rest_and_sockets_but_lets_the_server_call() -> None:
    service = service_with({"before": {"create": [disallow("external")]}})
    for provider in ("rest", "socketio"):
        with pytest.raises(errors.MethodNotAllowed, match=f"Provider '{provider}'"):
            service.create({"n": 1}, {"provider": provider})
    assert service.create({"n": 1})["n"] == 1


def test_disallow_server_refuses_internal_calls_only() -> None:
    service = service_with({"before": {"create": [disallow("server")]}})
    with pytest.raises(errors.MethodNotAllowed):
        service.create({"n": 1})
    assert service.create({"n": 1}, REST)["n"] == 1


def test_iff_runs_its_hooks_when_the_predicate_holds_and_else_otherwise() -> None:
    mark = lambda name: lambda context: context.data.update(by=name)  # noqa: E731
    service = service_with(
        {"before": {"create": [iff(is_provider("external"), mark("then")).else_(mark("else"))]}}
    )
    assert service.create({"n": 1}, REST)["by"] == "then"
    assert service.create({"n": 1})["by"] == "else"
    constant = service_with({"before": {"create": [iff_else(False, [mark("then")], [mark("else")])]}})
    assert constant.create({"n": 1})["by"] == "else"


def test_iff_assigns_what_a_hook_returns_onto_the_context() -> None:
    service = service_with({"before": {"get": [iff(True, lambda context: {"result": {"short": "cut"}})]}})
    assert service.get(0) == {"short": "cut"}


def test_discard_removes_dotted_fields_for_external_callers_only() -> None:
    service = service_with({"after": {"all": [discard("secret", "profile.token")]}}, paginate={"default": 5})
    service.create({"secret": "s", "profile": {"token": "t", "name": "n"}})
    page = service.run("find", REST).result
    assert page["data"] == [{"id": 0, "profile": {"name": "n"}}]
    assert service.get(0)["secret"] == "s" and service.get(0)["profile"]["token"] == "t"


def test_discard_before_drops_fields_from_the_incoming_data() -> None:
    service = service_with({"before": {"create": [discard("admin")]}})
    assert "admin" not in service.create({"admin": True, "n": 1}, REST)
    assert service.create({"admin": True})["admin"] is True


def test_prevent_changes_drops_the_fields_of_a_patch_or_refuses_it() -> None:
    dropping = service_with({"before": {"patch": [prevent_changes("email", "profile.role")]}})
    created = dropping.create({"email": "a@x", "n": 1, "profile": {"role": "user"}})
    patched = dropping.patch(created["id"], {"email": "b@x", "n": 2, "profile": {"role": "admin", "x": 1}})
    assert patched["email"] == "a@x" and patched["n"] == 2 and patched["profile"] == {"x": 1}
    refusing = service_with({"before": {"patch": [prevent_changes(True, "email")]}})
    created = refusing.create({"email": "a@x"})
    with pytest.raises(errors.BadRequest, match="Field email may not change. \\(preventChanges\\)"):
        refusing.patch(created["id"], {"email": "b@x"})
    assert refusing.patch(created["id"], {"n": 1})["n"] == 1


def test_set_now_stamps_milliseconds_on_the_data_of_each_item() -> None:
    service = service_with({"before": {"create": [set_now("created_at")]}}, multi=True)
    before = now_ms()
    created = service.create([{"n": 1}, {"n": 2}])
    after = now_ms()
    assert all(isinstance(r["created_at"], int) and before <= r["created_at"] <= after for r in created)


def test_soft_delete_turns_remove_into_a_patch_and_hides_the_record() -> None:
    service = service_with({"before": {"all": [soft_delete()]}})
    events: list[str] = []
    service.app.event_sinks.append(lambda event: events.append(event.event))
    kept, gone = service.create({"n": 1}), service.create({"n": 2})
    removed = service.remove(gone["id"], REST)
    assert isinstance(removed["deleted_at"], int)
    assert events[-2:] == ["patched", "removed"]
    assert [r["n"] for r in service.find()] == [1]
    with pytest.raises(errors.NotFound):
        service.get(gone["id"])
    with pytest.raises(errors.NotFound):  # removing it again: it is gone already
        service.remove(gone["id"])
    with pytest.raises(errors.NotFound):
        service.patch(gone["id"], {"n": 3})
    assert service.get(gone["id"], {"with_deleted": True})["n"] == 2
    assert len(service.find({"with_deleted": True})) == 2
    assert service.impl.store[kept["id"]].get("deleted_at") is None


def test_with_deleted_on_remove_removes_for_real() -> None:
    service = service_with({"before": {"all": [soft_delete("gone")]}})
    created = service.create({"n": 1})
    service.remove(created["id"], {"with_deleted": True})
    assert service.impl.store == {}


def test_cache_without_a_cache_in_params_always_calls_the_service() -> None:
    calls: list[Any] = []
    service = service_with({"around": {"all": [cache()]}, "before": {"get": [calls.append]}})
    service.create({"n": 1})
    service.get(0)
    service.get(0)
    assert len(calls) == 2


def test_cache_is_dropped_for_an_id_that_is_patched() -> None:
    calls: list[Any] = []
    service = service_with({"around": {"all": [cache()]}, "before": {"get": [calls.append]}})
    service.create({"n": 1})
    store: dict[Any, Any] = {}
    assert service.get(0, {"cache": store})["n"] == 1
    assert service.get(0, {"cache": store})["n"] == 1 and len(calls) == 1
    service.patch(0, {"n": 2}, {"cache": store})
    assert service.get(0, {"cache": store})["n"] == 2 and len(calls) == 2


def test_hooks_refuse_to_be_built_without_fields() -> None:
    for factory in (discard, prevent_changes, set_now, is_provider):
        with pytest.raises(ValueError):
            factory()
