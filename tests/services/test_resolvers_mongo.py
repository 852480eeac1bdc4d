"""Resolvers, batched population and soft delete on MongoService against a real SecantusDB:
ObjectId ids leave as strings, so the ``$in`` of a population and ``{deleted_at: None}`` must
work on the database itself, not only in the in-memory matcher."""

from __future__ import annotations

from typing import Any

import pytest

from kdk_app.core import Application, errors
from kdk_app.core.common_hooks import soft_delete
from kdk_app.core.populate import populate
from kdk_app.core.resolvers import resolve_external, resolve_result
from kdk_app.services import MongoService


def chat(mongo_db: Any) -> tuple[Application, list[dict[str, Any]]]:
    app = Application()
    users = app.use("users", MongoService("users", database=mongo_db, multi=True))
    messages = app.use("messages", MongoService("messages", database=mongo_db, paginate={"default": 25}))
    app.setup()
    created = users.create([{"name": f"user{n}", "password": f"secret{n}"} for n in range(5)])
    for n in range(25):
        messages.create({"text": f"message {n}", "user_id": created[n % 5]["_id"]})
    return app, created


def test_a_page_of_25_messages_gets_its_users_with_one_find_on_mongodb(mongo_db: Any) -> None:
    app, users = chat(mongo_db)
    finds: list[dict[str, Any]] = []
    app.service("users").hooks({"before": {"all": [lambda context: finds.append(context.params)]}})
    app.service("messages").hooks(
        {"after": {"all": [resolve_result({"user": populate("users", key="user_id")})]}}
    )
    page = app.service("messages").find()
    assert len(page["data"]) == 25 and len(finds) == 1
    assert sorted(finds[0]["query"]["_id"]["$in"]) == sorted(u["_id"] for u in users)
    assert all(
        m["user"]["_id"] == m["user_id"] and m["user"]["name"].startswith("user") for m in page["data"]
    )


def test_populated_users_reach_external_callers_without_their_password_on_mongodb(mongo_db: Any) -> None:
    app, _ = chat(mongo_db)
    app.service("users").hooks({"around": {"all": [resolve_external({"password": lambda *a: None})]}})
    app.service("messages").hooks(
        {"after": {"all": [resolve_result({"user": populate("users", key="user_id")})]}}
    )
    external = app.service("messages").run("find", {"provider": "socketio"}).safe_result
    assert all("password" not in m["user"] for m in external["data"])
    assert all("password" in m["user"] for m in app.service("messages").find()["data"])


def test_soft_delete_on_mongodb_hides_the_record_and_keeps_it_in_the_collection(mongo_db: Any) -> None:
    app, users = chat(mongo_db)
    service = app.service("users")
    service.hooks({"before": {"all": [soft_delete()]}})
    gone = users[0]["_id"]
    removed = service.remove(gone, {"provider": "rest"})
    assert isinstance(removed["deleted_at"], int)
    assert len(service.find()) == 4
    with pytest.raises(errors.NotFound):
        service.get(gone)
    assert service.get(gone, {"with_deleted": True})["name"] == "user0"
    assert mongo_db["users"].count_documents({}) == 5
