"""The query matcher of MemoryService and permissions (kdk_app/core/matcher.py): MongoDB's rules
one by one, then generated documents and queries run through the matcher and through a real
SecantusDB, which must select the same records."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

import pytest
from bson import Decimal128, ObjectId

from kdk_app.auth.permissions import contradicts
from kdk_app.auth.permissions import matches as permission_matches
from kdk_app.core.matcher import InvalidQuery, compile_query, filter_records, has_path, matches
from kdk_app.services import MemoryService

NAN = float("nan")
OID_1, OID_2 = ObjectId("0000000000000000000000a1"), ObjectId("0000000000000000000000a2")
DAY_1, DAY_2 = dt.datetime(2024, 1, 1, 12, 0, 0, 250000), dt.datetime(2024, 6, 1)


def selected(records: list[dict[str, Any]], query: dict[str, Any]) -> list[Any]:
    return [r["_id"] for r in records if matches(r, query)]


# --- equality ------------------------------------------------------------------------------------
def test_numbers_are_equal_by_value_across_int_and_float_but_never_to_booleans():
    assert matches({"n": 1.0}, {"n": 1}) and matches({"n": 1}, {"n": 1.0})
    assert not matches({"n": True}, {"n": 1}) and not matches({"n": 1}, {"n": True})
    assert not matches({"n": False}, {"n": 0}) and matches({"n": False}, {"n": False})
    assert matches({"n": Decimal128("2.5")}, {"n": 2.5})
    assert not matches({"n": "1"}, {"n": 1})


def test_a_scalar_matches_an_array_that_holds_it_and_an_array_matches_an_equal_array():
    record = {"tags": ["a", "b"]}
    assert matches(record, {"tags": "a"}) and matches(record, {"tags": ["a", "b"]})
    assert not matches(record, {"tags": ["b", "a"]}) and not matches(record, {"tags": ["a"]})
    assert matches({"m": [[1, 2], 3]}, {"m": [1, 2]})  # an element that is an equal array
    assert not matches({"m": [[1, 2]]}, {"m": 1})  # arrays in arrays are not searched
    assert not matches({"n": [1]}, {"n": True})


def test_sub_documents_are_equal_only_with_the_same_fields_in_the_same_order():
    assert matches({"d": {"x": 1, "y": 2}}, {"d": {"x": 1, "y": 2.0}})
    assert not matches({"d": {"x": 1, "y": 2}}, {"d": {"y": 2, "x": 1}})
    assert not matches({"d": {"x": 1, "y": 2}}, {"d": {"x": 1}})
    assert not matches({"d": {"x": True}}, {"d": {"x": 1}})
    assert matches({"d": {}}, {"d": {}})


def test_null_matches_null_and_missing_fields_and_arrays_holding_null():
    records = [{"_id": 1, "a": None}, {"_id": 2}, {"_id": 3, "a": [None, 1]}, {"_id": 4, "a": 0}]
    records.append({"_id": 5, "a": []})
    assert selected(records, {"a": None}) == [1, 2, 3]
    assert selected(records, {"a": {"$ne": None}}) == [4, 5]
    assert selected(records, {"a": {"$in": [None]}}) == [1, 2, 3]
    assert selected(records, {"a": {"$gte": None}}) == [1, 2, 3]
    assert selected(records, {"a": {"$lte": None}}) == [1, 2, 3]
    assert selected(records, {"a": {"$lt": None}}) == selected(records, {"a": {"$gt": None}}) == []


def test_ne_and_nin_match_missing_fields_and_exclude_arrays_that_hold_the_value():
    records = [{"_id": 1, "a": 1}, {"_id": 2}, {"_id": 3, "a": [1, 2]}, {"_id": 4, "a": [2, 3]}]
    assert selected(records, {"a": {"$ne": 1}}) == [2, 4]
    assert selected(records, {"a": {"$nin": [1, 3]}}) == [2]
    assert selected(records, {"a": {"$nin": []}}) == [1, 2, 3, 4]
    assert selected(records, {"a": {"$in": []}}) == []
    assert selected(records, {"a": {"$in": [3, "x"]}}) == [4]


def test_nan_equals_nan_and_is_neither_above_nor_below_a_number():
    assert matches({"n": NAN}, {"n": NAN}) and matches({"n": NAN}, {"n": {"$in": [NAN]}})
    assert matches({"n": NAN}, {"n": {"$gte": NAN}}) and not matches({"n": NAN}, {"n": {"$gt": NAN}})
    assert not matches({"n": NAN}, {"n": {"$lt": 5}}) and not matches({"n": NAN}, {"n": {"$gte": -5}})
    assert not matches({"n": 1}, {"n": {"$lte": NAN}})


# --- comparisons ---------------------------------------------------------------------------------
def test_comparisons_stay_within_a_type_bracket():
    assert matches({"n": 2}, {"n": {"$gt": 1.5}}) and matches({"n": 1.5}, {"n": {"$lt": 2}})
    assert not matches({"n": "5"}, {"n": {"$gt": 1}}) and not matches({"n": 5}, {"n": {"$gt": "1"}})
    assert not matches({"n": True}, {"n": {"$gte": 1}}) and not matches({"n": 1}, {"n": {"$lte": True}})
    assert matches({"n": True}, {"n": {"$gt": False}})
    assert matches({"s": "b"}, {"s": {"$gt": "a"}}) and not matches({"s": "B"}, {"s": {"$gt": "a"}})
    assert matches({"at": DAY_2}, {"at": {"$gt": DAY_1}}) and not matches({"at": DAY_2}, {"at": {"$gt": 1}})
    aware = DAY_1.replace(tzinfo=dt.UTC)
    assert matches({"at": DAY_1}, {"at": aware}) and matches({"at": aware}, {"at": {"$lte": DAY_1}})
    assert matches({"o": OID_2}, {"o": {"$gt": OID_1}}) and not matches({"o": OID_2}, {"o": {"$gt": "0"}})
    assert not matches({"o": OID_1}, {"o": str(OID_1)})
    assert not matches({"n": None}, {"n": {"$lt": 1}}) and not matches({}, {"n": {"$gt": 1}})


def test_each_operator_holds_for_some_element_of_an_array_on_its_own():
    record = {"a": [0, 10]}
    assert matches(record, {"a": {"$gt": 5}}) and matches(record, {"a": {"$lt": 5}})
    assert matches(record, {"a": {"$gt": 1, "$lt": 5}})  # 10 > 1 and 0 < 5: no $elemMatch
    assert not matches(record, {"a": {"$gt": 20}})


def test_arrays_and_documents_compare_in_bson_order():
    assert matches({"a": [1, 3]}, {"a": {"$gt": [1, 2]}})
    assert matches({"a": [1, 2, 0]}, {"a": {"$gt": [1, 2]}})  # a longer array with the same start
    assert matches({"a": [1, "x"]}, {"a": {"$gt": [1, 2]}})  # a string sorts after a number
    assert matches({"d": {"x": 2}}, {"d": {"$gt": {"x": 1}}})
    assert not matches({"d": {"x": 2}}, {"d": {"$gt": 1}})


# --- paths ---------------------------------------------------------------------------------------
def test_dotted_paths_reach_into_documents_and_arrays_of_documents():
    record = {"d": {"x": {"y": 1}}, "docs": [{"x": 1}, {"x": [2, 3]}, {"z": 1}], "v": [5, [6]]}
    assert matches(record, {"d.x.y": 1}) and matches(record, {"d.x": {"y": 1}})
    assert matches(record, {"docs.x": 1}) and matches(record, {"docs.x": 3})
    assert matches(record, {"docs.x": None})  # the third document lacks x
    assert not matches(record, {"docs.x": {"$ne": 2}})
    assert matches(record, {"docs.1.x": 2}) and not matches(record, {"docs.0.x": 2})
    assert matches(record, {"v.0": 5}) and matches(record, {"v.1": [6]})
    assert not matches(record, {"v.1": 6})  # an element chosen by index is not searched again
    assert matches({"v": [{"0": 9}]}, {"v.0": 9})  # a field named "0" counts too
    assert not matches({"v": [1, 2]}, {"v.x": None})  # no document in the array: nothing to read
    assert matches({"v": 5}, {"v.x": None}) and matches({"v": 5}, {"v.x": {"$ne": 1}})


def test_has_path_is_what_exists_means():
    assert has_path({"a": {"b": None}}, "a.b") and not has_path({"a": {"c": 1}}, "a.b")
    assert has_path({"a": [{"c": 1}, {"b": 2}]}, "a.b") and not has_path({"a": [1, 2]}, "a.b")


# --- logic and the accepted set ------------------------------------------------------------------
def test_or_and_and_combine_clauses():
    records = [{"_id": i, "n": i, "tag": "even" if i % 2 == 0 else "odd"} for i in range(6)]
    assert selected(records, {"$or": [{"n": {"$lt": 1}}, {"n": {"$gt": 4}}]}) == [0, 5]
    query = {"$and": [{"n": {"$gte": 1}}, {"$or": [{"tag": "even"}, {"n": 5}]}], "n": {"$ne": 4}}
    assert selected(records, query) == [2, 5]
    assert selected(records, {}) == list(range(6))


@pytest.mark.parametrize(
    "query",
    [
        {"a": {"$regex": "x"}},
        {"a": {"$exists": True}},
        {"a": {"$elemMatch": {"b": 1}}},
        {"a": {"$eq": 1}},
        {"$nor": [{"a": 1}]},
        {"$where": "1"},
        {"a": {"$gt": 1, "b": 2}},
        {"a": {"$in": 1}},
        {"$or": {"a": 1}},
    ],
)
def test_operators_outside_the_feathers_set_are_refused(query):
    with pytest.raises(InvalidQuery):
        compile_query(query)
    assert not permission_matches({"a": 1}, query)  # an unsupported condition never grants


def test_filter_records_takes_the_shortcut_with_the_same_answers():
    records = [{"a": 1}, {"a": 1.0}, {"a": True}, {"a": [1]}, {"a": "1"}, {}, {"a": None}]
    for wanted in (1, 1.0, "1", True, None, NAN):
        assert filter_records(records, {"a": wanted}) == [r for r in records if matches(r, {"a": wanted})]


# --- users of the matcher ------------------------------------------------------------------------
def test_permissions_and_memory_service_decide_alike():
    service = MemoryService(id="_id")
    rows = [{"team": ["t", "u"]}, {"team": "t"}, {"level": True}, {"level": 1}, {"at": None}, {}]
    created = [service.create(row) for row in rows]
    for condition in (
        {"team": "t"},
        {"team": {"$in": ["u"]}},
        {"level": {"$gte": 1}},
        {"level": True},
        {"at": None},
        {"team": {"$ne": "t"}},
    ):
        found = {r["_id"] for r in service.find({"query": condition})}
        allowed = {r["_id"] for r in created if permission_matches(r, condition)}
        assert found == allowed, condition


def test_permissions_compare_object_ids_as_the_strings_the_services_answer():
    assert permission_matches({"owner": OID_1}, {"owner": str(OID_1)})
    assert permission_matches({"owners": [OID_1]}, {"owners": {"$in": [str(OID_1)]}})


def test_a_patch_contradicts_a_condition_only_on_the_fields_it_sets():
    condition = {"owner": "u1", "$and": [{"team": {"$in": ["t", "public"]}}]}
    assert not contradicts({"text": "x"}, condition)
    assert contradicts({"owner": "u2"}, condition) and contradicts({"team": "other"}, condition)
    assert not contradicts({"owner": ["u1", "u2"], "team": "t"}, condition)
    assert contradicts({"owner": 1}, {"owner": True})


# --- differential: the matcher against MongoDB ---------------------------------------------------
SCALARS: list[Any] = [
    *(-1, 0, 1, 2, 3, 1.0, 2.5, -0.5),
    True,
    False,
    None,
    *("", "a", "b", "ab", "B"),
    OID_1,
    OID_2,
    DAY_1,
    DAY_2,
    Decimal128("2"),
    NAN,
]
NAMES = ("x", "y", "0")
PATHS = ("a", "b", "c", "a.x", "a.y", "b.x", "a.0", "b.1", "a.x.y", "c.0.x", "a.0.x", "b.z")


def random_value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth <= 0 or roll < 0.55:
        return rng.choice(SCALARS)
    if roll < 0.8:
        return [random_value(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    names = rng.sample(NAMES, rng.randint(0, len(NAMES)))
    return {name: random_value(rng, depth - 1) for name in names}


def random_document(rng: random.Random, number: int) -> dict[str, Any]:
    document: dict[str, Any] = {"_id": number}
    for field in ("a", "b", "c"):
        roll = rng.random()
        if roll < 0.3:  # mostly sub-documents and arrays of them, so that dotted paths find something
            document[field] = {name: random_value(rng, 2) for name in rng.sample(NAMES, rng.randint(1, 3))}
        elif roll < 0.5:
            document[field] = [random_value(rng, 2) for _ in range(rng.randint(0, 3))]
        elif roll < 0.9:
            document[field] = random_value(rng, 3)
    return document


def random_operand(rng: random.Random) -> Any:
    return random_value(rng, 2) if rng.random() < 0.2 else rng.choice(SCALARS)


def random_condition(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.3:
        return random_operand(rng)
    operators = rng.sample(("$ne", "$in", "$nin", "$lt", "$lte", "$gt", "$gte"), rng.choice((1, 1, 2)))
    condition = {}
    for operator in operators:
        if operator in ("$in", "$nin"):
            condition[operator] = [random_operand(rng) for _ in range(rng.randint(0, 3))]
        else:
            condition[operator] = random_operand(rng)
    return condition


def random_query(rng: random.Random, depth: int = 2) -> dict[str, Any]:
    query: dict[str, Any] = {}
    for _ in range(rng.choice((1, 1, 1, 2))):
        query[rng.choice(PATHS)] = random_condition(rng)
    if depth > 0 and rng.random() < 0.25:
        logical = rng.choice(("$or", "$and"))
        query[logical] = [random_query(rng, depth - 1) for _ in range(rng.randint(1, 3))]
    return query


def test_generated_queries_select_what_mongodb_selects(mongo_client):
    rng = random.Random(20240611)
    database = mongo_client[f"t_matcher_{uuid.uuid4().hex[:8]}"]
    try:
        collection = database["documents"]
        collection.insert_many([random_document(rng, number) for number in range(150)])
        # The documents as MongoDB stores them (dates to the millisecond, Decimal128 …).
        documents = list(collection.find())
        disagreements = []
        queries = 0
        while queries < 400:
            query = random_query(rng)
            queries += 1
            expected = {d["_id"] for d in collection.find(query, {"_id": 1})}
            predicate = compile_query(query)
            found = {d["_id"] for d in documents if predicate(d)}
            if found != expected:
                disagreements.append((query, sorted(found - expected), sorted(expected - found)))
        assert not disagreements, "\n".join(
            f"{query!r}: only the matcher {extra}, only MongoDB {missing}"
            for query, extra, missing in disagreements[:10]
        )
    finally:
        mongo_client.drop_database(database.name)
