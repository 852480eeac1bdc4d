"""MemoryService and MongoService (on a real SecantusDB or mongod) share one set of semantics."""

import pytest
from marshmallow import Schema, fields

from kdk_app.core import Application, errors
from kdk_app.services import MemoryService, MongoService


class PersonSchema(Schema):
    name = fields.String(required=True)
    age = fields.Integer()
    created = fields.Boolean()


@pytest.fixture(params=["memory", "mongodb"])
def make_service(request):
    def make(**options):
        app = Application()
        if request.param == "memory":
            impl = MemoryService(id="_id", **options)
        else:
            db = request.getfixturevalue("mongo_db")
            impl = MongoService("people", database=db, **options)
        service = app.use("people", impl)
        app.setup()
        return service

    return make


@pytest.fixture
def people(make_service):
    service = make_service(multi=True)
    service.create([{"name": "Bob", "age": 25}, {"name": "Doug", "age": 32}, {"name": "Alice", "age": 19}])
    service.impl.options["multi"] = False
    return service


def names(records):
    return [r["name"] for r in records]


def test_find_with_each_comparison_operator(people):
    def find(query):
        return sorted(names(people.find({"query": query})))

    assert find({"age": {"$lt": 25}}) == ["Alice"]
    assert find({"age": {"$lte": 25}}) == ["Alice", "Bob"]
    assert find({"age": {"$gt": 25}}) == ["Doug"]
    assert find({"age": {"$gte": 25}}) == ["Bob", "Doug"]
    assert find({"name": {"$ne": "Bob"}}) == ["Alice", "Doug"]
    assert find({"name": {"$in": ["Bob", "Alice"]}}) == ["Alice", "Bob"]
    assert find({"name": {"$nin": ["Bob", "Alice"]}}) == ["Doug"]
    assert find({"$or": [{"name": "Bob"}, {"age": {"$lt": 20}}]}) == ["Alice", "Bob"]
    assert find({"$and": [{"age": {"$gt": 18}}, {"$or": [{"name": "Doug"}, {"name": "Alice"}]}]}) == [
        "Alice",
        "Doug",
    ]
    assert find({"name": "Doug", "age": 32}) == ["Doug"]


def test_sort_skip_limit_and_select(people):
    result = people.find({"query": {"$sort": {"age": -1}, "$skip": 1, "$limit": 1, "$select": ["name"]}})
    assert names(result) == ["Bob"]
    assert set(result[0]) == {"_id", "name"}


def test_string_sort_directions_from_urls_are_accepted(people):
    assert names(people.find({"query": {"$sort": {"name": "1"}}})) == ["Alice", "Bob", "Doug"]


@pytest.mark.parametrize(
    "query, message",
    [
        ({"age": {"$regex": "x"}}, "Invalid query parameter $regex"),
        ({"age": {"$where": "1"}}, "Invalid query parameter $where"),
        ({"$where": "1"}, "Invalid filter value $where"),
        ({"age": {"$eq": 1}}, "Invalid query parameter $eq"),
        ({"$or": [{"$and": [{"age": 1}]}]}, "Invalid query parameter $and"),
        ({"$limit": -1}, "$limit"),
        ({"$limit": "abc"}, "$limit"),
        ({"$skip": "x"}, "$skip"),
        ({"$sort": {"age": "sideways"}}, "sort direction"),
        ({"$or": "x"}, "$or"),
        ({"meta": {"a": {"$gt": 1}}}, "Invalid query parameter $gt"),
    ],
)
def test_queries_outside_the_allow_list_are_bad_requests(people, query, message):
    with pytest.raises(errors.BadRequest, match=message.replace("$", r"\$")):
        people.find({"query": query})


def test_deep_nesting_is_rejected(people):
    query = {"name": "x"}
    for _ in range(10):
        query = {"$or": [query]}
    with pytest.raises(errors.BadRequest, match="nested too deeply"):
        people.find({"query": {"$and": [query]}})


def test_operators_a_service_opts_into_are_allowed(make_service):
    service = make_service(operators=["$regex"])
    service.create({"name": "Zed", "age": 1})
    if isinstance(service.impl, MemoryService):
        pytest.skip("the memory matcher implements only the default operators")
    assert names(service.find({"query": {"name": {"$regex": "^Z"}}})) == ["Zed"]


def test_pagination_pages_with_default_and_max(make_service):
    service = make_service(paginate={"default": 2, "max": 3}, multi=True)
    service.create([{"name": str(i), "age": i} for i in range(5)])
    page = service.find({"query": {"$sort": {"age": 1}}})
    assert (page["total"], page["limit"], page["skip"], len(page["data"])) == (5, 2, 0, 2)
    assert service.find({"query": {"$limit": 10}})["limit"] == 3
    counted = service.find({"query": {"$limit": 0}})
    assert (counted["total"], counted["data"]) == (5, [])
    assert isinstance(service.find({"paginate": False}), list)
    assert service.find({"query": {"$skip": 4, "$sort": {"age": 1}}})["data"][0]["age"] == 4


def test_empty_paginate_object_means_pages_without_a_limit(make_service):
    service = make_service(paginate={})
    service.create({"name": "a"})
    page = service.find()
    assert "limit" not in page and page["total"] == 1


def test_counting_can_be_skipped_for_big_collections(make_service):
    service = make_service(paginate={"default": 1, "count": False})
    service.create({"name": "a"})
    if isinstance(service.impl, MemoryService):
        pytest.skip("counting is free in memory")
    assert service.find()["total"] is None


def test_multi_rules_and_exact_messages(make_service):
    service = make_service()
    with pytest.raises(errors.MethodNotAllowed, match="Can not create multiple entries"):
        service.create([])
    with pytest.raises(errors.MethodNotAllowed, match="Can not patch multiple entries"):
        service.patch(None, {"a": 1})
    with pytest.raises(errors.MethodNotAllowed, match="Can not remove multiple entries"):
        service.remove(None)
    with pytest.raises(errors.BadRequest, match="You can not replace multiple instances"):
        service.update(None, {"name": "x"})
    assert service.create([{"name": "ok"}], {"adapter": {"multi": ["create"]}})[0]["name"] == "ok"


def test_multi_patch_returns_every_record_even_when_it_stops_matching(people):
    people.impl.options["multi"] = True
    patched = people.patch(None, {"age": 99}, {"query": {"age": {"$lt": 30}}})
    assert sorted(names(patched)) == ["Alice", "Bob"]
    assert {r["age"] for r in patched} == {99}


def test_multi_remove_ignores_pagination(make_service):
    service = make_service(paginate={"default": 1}, multi=True)
    service.create([{"name": str(i)} for i in range(3)])
    assert len(service.remove(None, {"query": {}})) == 3


def test_id_with_a_non_matching_query_is_not_found(people):
    bob = people.find({"query": {"name": "Bob"}})[0]
    for call in (
        lambda: people.get(bob["_id"], {"query": {"name": "Doug"}}),
        lambda: people.patch(bob["_id"], {"age": 1}, {"query": {"name": "Doug"}}),
        lambda: people.update(bob["_id"], {"name": "X"}, {"query": {"name": "Doug"}}),
        lambda: people.remove(bob["_id"], {"query": {"name": "Doug"}}),
    ):
        with pytest.raises(errors.NotFound):
            call()
    assert people.get(bob["_id"])["age"] == 25


@pytest.mark.parametrize("bad_id", ["568225fbfe21222432e836ff", 123456789, "not-an-id", ""])
def test_ids_that_do_not_exist_or_do_not_parse_are_not_found(people, bad_id):
    with pytest.raises(errors.NotFound):
        people.get(bad_id)
    with pytest.raises(errors.NotFound):
        people.remove(bad_id)


def test_update_replaces_the_record_and_keeps_its_id(people):
    bob = people.find({"query": {"name": "Bob"}})[0]
    data = {"_id": bob["_id"], "name": "Robert"}
    updated = people.update(bob["_id"], data)
    assert updated == {"_id": bob["_id"], "name": "Robert"}
    assert data == {"_id": bob["_id"], "name": "Robert"}  # the caller's data is not mutated


def test_patch_merges_and_cannot_change_the_id(people):
    bob = people.find({"query": {"name": "Bob"}})[0]
    patched = people.patch(bob["_id"], {"age": 26, "_id": "ffffffffffffffffffffffff"})
    assert patched == {"_id": bob["_id"], "name": "Bob", "age": 26}


def test_select_applies_to_every_method(people):
    select = {"query": {"$select": ["name"]}}
    doug = people.find({"query": {"name": "Doug"}})[0]
    assert set(people.get(doug["_id"], select)) == {"_id", "name"}
    assert set(people.create({"name": "Eve", "age": 5}, select)) == {"_id", "name"}
    assert set(people.patch(doug["_id"], {"age": 33}, select)) == {"_id", "name"}
    assert set(people.update(doug["_id"], {"name": "D", "age": 1}, select)) == {"_id", "name"}
    assert set(people.remove(doug["_id"], select)) == {"_id", "name"}


def test_create_ignores_every_query_key_but_select(people):
    created = people.create({"name": "Q"}, {"query": {"name": "other"}})
    assert created["name"] == "Q"


def test_ids_come_out_as_24_hex_strings_on_mongodb(make_service):
    service = make_service()
    created = service.create({"name": "hex"})
    if isinstance(service.impl, MongoService):
        assert isinstance(created["_id"], str) and len(created["_id"]) == 24
    assert service.get(created["_id"])["name"] == "hex"
    assert names(service.find({"query": {"_id": {"$in": [created["_id"]]}}})) == ["hex"]


def test_schema_validates_data_with_errors_per_field(make_service):
    service = make_service(schema=PersonSchema)
    with pytest.raises(errors.BadRequest) as info:
        service.create({"age": "old"})
    assert set(info.value.errors) == {"name", "age"}
    created = service.create({"name": "Ann", "age": "41", "extra": "kept"})
    assert created["age"] == 41 and created["extra"] == "kept"
    with pytest.raises(errors.BadRequest):
        service.patch(created["_id"], {"age": "x"})
    assert service.patch(created["_id"], {"age": "42"})["age"] == 42


def test_schema_coerces_query_strings_from_urls(make_service):
    service = make_service(schema=PersonSchema, multi=True)
    service.create([{"name": "a", "age": 3, "created": True}, {"name": "b", "age": 10}])
    assert names(service.find({"query": {"age": {"$gt": "4"}}})) == ["b"]
    assert names(service.find({"query": {"age": "3", "created": "true"}})) == ["a"]
    assert names(service.find({"query": {"age": {"$in": ["3", "10"]}, "$sort": {"age": 1}}})) == ["a", "b"]
    with pytest.raises(errors.BadRequest) as info:
        service.find({"query": {"age": "abc"}})
    assert "age" in info.value.errors


def test_with_a_schema_only_declared_fields_can_be_queried(make_service):
    service = make_service(schema=PersonSchema)
    with pytest.raises(errors.BadRequest, match="Invalid query field 'password'"):
        service.find({"query": {"password": {"$ne": "x"}}})
    with pytest.raises(errors.BadRequest):
        service.find({"query": {"$or": [{"password": "x"}]}})


def test_protected_fields_are_never_queried_nor_returned_to_external_callers(make_service):
    service = make_service(protected_fields=["password"])
    created = service.create({"name": "u", "password": "hash"})
    assert created["password"] == "hash"  # internal callers (e.g. login) see it
    assert "password" not in service.get(created["_id"], {"provider": "rest"})
    for query in ({"password": {"$ne": "x"}}, {"$select": ["password"]}, {"$sort": {"password": 1}}):
        with pytest.raises(errors.BadRequest):
            service.find({"query": query, "provider": "rest"})


def test_raw_methods_never_call_public_ones(make_service):
    service = make_service(multi=True)
    impl = service.impl
    record = impl._create({"name": "raw"}, {})

    def forbidden(*args, **kwargs):
        raise AssertionError("public method called internally")

    for name in ("find", "get", "create", "update", "patch", "remove"):
        setattr(impl, name, forbidden)
    assert impl._get(record["_id"], {})["name"] == "raw"
    assert len(impl._find({})) == 1
    impl._patch(record["_id"], {"a": 1}, {})
    impl._update(record["_id"], {"name": "r"}, {})
    impl._remove(record["_id"], {})


def test_equality_matches_numbers_across_int_and_float_and_scalars_inside_arrays(make_service):
    service = make_service(multi=True)
    service.create(
        [{"name": "float", "n": 1.0, "tags": ["a", "b"]}, {"name": "bool", "n": True, "tags": "c"}]
    )
    assert names(service.find({"query": {"n": 1}})) == ["float"]
    assert names(service.find({"query": {"tags": "a"}})) == ["float"]
    assert names(service.find({"query": {"tags": "c"}})) == ["bool"]
    assert names(service.find({"query": {"n": True}})) == ["bool"]
