"""The qs-compatible query string parser (docs/protocol.md §2.2)."""

from __future__ import annotations

import ast
import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kdk_app.transports import qs
from kdk_app.transports.qs import QueryStringError, parse_query_string

QS_MODULE = Path(__file__).parents[1] / "js" / "node_modules" / "qs"


# -- docs/protocol.md §2.2: what the Feathers REST client sends ----------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "age[$gt]=10&$sort[name]=1&$select[0]=name&$select[1]=age",
            {"age": {"$gt": "10"}, "$sort": {"name": "1"}, "$select": ["name", "age"]},
        ),
        (
            "name[$in][0]=a&name[$in][1]=b&$limit=0&$skip=2",
            {"name": {"$in": ["a", "b"]}, "$limit": "0", "$skip": "2"},
        ),
        (
            "$or[0][name]=Alice&$or[1][age][$lt]=25",
            {"$or": [{"name": "Alice"}, {"age": {"$lt": "25"}}]},
        ),
        (
            "a=&d=true&e=1970-01-01T00%3A00%3A00.000Z&f=",
            {"a": "", "d": "true", "e": "1970-01-01T00:00:00.000Z", "f": ""},
        ),
    ],
)
def test_protocol_table_queries_parse_like_qs(raw: str, expected: dict) -> None:
    assert parse_query_string(raw) == expected


def test_fully_percent_encoded_wire_form_parses_like_the_decoded_form() -> None:
    wire = "age%5B%24gt%5D=10&%24sort%5Bname%5D=1&%24select%5B0%5D=name&%24select%5B1%5D=age"
    assert parse_query_string(wire) == {
        "age": {"$gt": "10"},
        "$sort": {"name": "1"},
        "$select": ["name", "age"],
    }


# -- hand-written styles from the Feathers docs ---------------------------------------------


def test_empty_brackets_append_to_a_list() -> None:
    assert parse_query_string("$select[]=text&$select[]=userId") == {"$select": ["text", "userId"]}


def test_repeated_key_builds_a_list() -> None:
    assert parse_query_string("roomId[$in]=1&roomId[$in]=3") == {"roomId": {"$in": ["1", "3"]}}
    assert parse_query_string("a=1&a=2&a=3") == {"a": ["1", "2", "3"]}


def test_nested_empty_brackets_append_to_a_nested_list() -> None:
    assert parse_query_string("roomId[$in][]=2&roomId[$in][]=5") == {"roomId": {"$in": ["2", "5"]}}
    assert parse_query_string("roomId[$in][]=2") == {"roomId": {"$in": ["2"]}}


# -- lists -----------------------------------------------------------------------------------


def test_objects_with_integer_keys_become_lists_beyond_qs_array_limit() -> None:
    raw = "&".join(f"id[$in][{i}]={i}" for i in range(50))
    assert parse_query_string(raw) == {"id": {"$in": [str(i) for i in range(50)]}}


def test_many_repeated_empty_bracket_keys_stay_a_list() -> None:
    raw = "&".join(f"x[]={i}" for i in range(30))
    assert parse_query_string(raw) == {"x": [str(i) for i in range(30)]}


def test_indexes_are_ordered_and_sparse_indexes_compacted() -> None:
    assert parse_query_string("a[2]=c&a[0]=a&a[1]=b") == {"a": ["a", "b", "c"]}
    assert parse_query_string("s[2]=z") == {"s": ["z"]}
    assert parse_query_string("s[10]=b&s[3]=a") == {"s": ["a", "b"]}


def test_huge_index_does_not_allocate_a_huge_list() -> None:
    assert parse_query_string("a[99999999999999999999]=x&a[1]=y") == {"a": ["y", "x"]}


def test_objects_under_the_same_index_merge() -> None:
    assert parse_query_string("a[0][b]=1&a[0][c]=2&a[1][b]=3") == {"a": [{"b": "1", "c": "2"}, {"b": "3"}]}


def test_list_of_objects_via_empty_brackets() -> None:
    assert parse_query_string("a[][b]=1") == {"a": [{"b": "1"}]}


def test_non_canonical_integer_keys_stay_object_keys() -> None:
    assert parse_query_string("a[01]=x&a[-1]=y") == {"a": {"01": "x", "-1": "y"}}
    assert parse_query_string("a[0]=x&a[01]=y") == {"a": {"0": "x", "01": "y"}}


def test_top_level_integer_keys_stay_a_dict() -> None:
    assert parse_query_string("0=a&1=b") == {"0": "a", "1": "b"}


def test_repeated_index_with_plain_values_nests_like_qs() -> None:
    assert parse_query_string("a[0]=x&a[0]=y") == {"a": [["x", "y"]]}


# -- decoding --------------------------------------------------------------------------------


def test_percent_escapes_and_plus_are_decoded_in_keys_and_values() -> None:
    assert parse_query_string("first+name=Jos%C3%A9+Mar%C3%ADa&%24limit=5") == {
        "first name": "José María",
        "$limit": "5",
    }
    assert parse_query_string("q=a%2Bb%26c%3Dd") == {"q": "a+b&c=d"}


def test_broken_escapes_are_kept_as_sent() -> None:
    assert parse_query_string("a=%zz%20&b=%E0%A4%A&c=100%") == {
        "a": "%zz%20",
        "b": "%E0%A4%A",
        "c": "100%",
    }


def test_double_encoded_brackets_stay_literal() -> None:
    assert parse_query_string("a%255Bb%255D=1") == {"a%5Bb%5D": "1"}


def test_bytes_input_is_read_as_utf8_with_latin1_fallback() -> None:
    assert parse_query_string(b"name=Jos%C3%A9&raw=\xc3\xa9") == {
        "name": "José",
        "raw": "é",
    }
    assert parse_query_string(b"raw=\xe9") == {"raw": "é"}


def test_key_without_value_empty_keys_and_leading_question_mark() -> None:
    assert parse_query_string("?flag&a=1&&=orphan&b=") == {
        "flag": "",
        "a": "1",
        "b": "",
    }
    assert parse_query_string("") == {}
    assert parse_query_string(b"") == {}


def test_equals_inside_brackets_belongs_to_the_key() -> None:
    assert parse_query_string("a[b=c]=d") == {"a": {"b=c": "d"}}
    assert parse_query_string("a=x]=y") == {"a": "x]=y"}


# -- depth -----------------------------------------------------------------------------------


def test_brackets_deeper_than_five_levels_stay_a_literal_key() -> None:
    assert parse_query_string("a[b][c][d][e][f][g]=1") == {
        "a": {"b": {"c": {"d": {"e": {"f": {"[g]": "1"}}}}}}
    }
    assert parse_query_string("a[b][c][d][e][f][g][h]=1") == {
        "a": {"b": {"c": {"d": {"e": {"f": {"[g][h]": "1"}}}}}}
    }


def test_depth_can_be_changed_and_zero_disables_nesting() -> None:
    assert parse_query_string("a[b][c]=1", depth=1) == {"a": {"b": {"[c]": "1"}}}
    assert parse_query_string("a[b][c]=1", depth=0) == {"a[b][c]": "1"}


# -- limits and malformed input --------------------------------------------------------------


def test_too_many_parameters_is_an_error() -> None:
    raw = "&".join(f"k{i}=v" for i in range(1001))
    with pytest.raises(QueryStringError, match="Too many query parameters"):
        parse_query_string(raw)
    assert len(parse_query_string(raw, max_params=1001)) == 1001
    assert len(parse_query_string("&".join(f"k{i}=v" for i in range(1000)))) == 1000


def test_empty_parts_do_not_count_towards_the_parameter_limit() -> None:
    assert parse_query_string("a=1&&&&b=2", max_params=2) == {"a": "1", "b": "2"}


def test_query_string_error_is_a_value_error() -> None:
    assert issubclass(QueryStringError, ValueError)


@pytest.mark.parametrize(
    "raw",
    ["a[b=1", "a]=1", "[a]=1", "[]=1", "a[b]c=1", "a[b[c]]=1", "a[b]]=1", "a%5Bb=1"],
)
def test_malformed_bracket_syntax_is_an_error(raw: str) -> None:
    with pytest.raises(QueryStringError, match="Malformed query parameter name"):
        parse_query_string(raw)


# -- conflicting shapes and prototype pollution ----------------------------------------------


def test_value_then_nested_key_keeps_both_in_a_list() -> None:
    assert parse_query_string("a=1&a[b]=2") == {"a": ["1", {"b": "2"}]}
    assert parse_query_string("a[b]=2&a=1") == {"a": [{"b": "2"}, "1"]}


def test_list_and_object_under_one_key_merge_into_an_object() -> None:
    assert parse_query_string("a[0]=x&a[b]=y") == {"a": {"0": "x", "b": "y"}}
    assert parse_query_string("a[b]=y&a[0]=x") == {"a": {"b": "y", "0": "x"}}


def test_empty_value_does_not_replace_nested_values() -> None:
    assert parse_query_string("a[b]=1&a=") == {"a": {"b": "1"}}


def test_proto_segments_are_dropped_like_qs() -> None:
    assert parse_query_string("__proto__[x]=1&__proto__=2&ok=1") == {"ok": "1"}
    assert parse_query_string("a[__proto__][x]=1&a[b]=2") == {"a": {"b": "2"}}
    assert parse_query_string("a[__proto__]=1") == {"a": {}}


def test_object_prototype_names_are_kept_like_express() -> None:
    assert parse_query_string("constructor=1&a[toString]=2") == {
        "constructor": "1",
        "a": {"toString": "2"},
    }


def test_module_imports_nothing_from_flask() -> None:
    tree = ast.parse(Path(qs.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert not {name for name in imported if name.split(".")[0] in {"flask", "werkzeug"}}


# -- cross-check against the real qs, when tests/js has it installed --------------------------


def _random_queries(count: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    segments = ["a", "b", "$in", "$or", "0", "1", "2", "5", "", "x y", "%24gt"]
    values = ["1", "", "x", "%20", "a+b", "%E2%9C%93", "%zz"]
    queries = []
    for _ in range(count):
        parts = []
        for _ in range(rnd.randint(1, 4)):
            key = rnd.choice(["a", "b", "$or", "c", "__proto__", "constructor"])
            for _ in range(rnd.randint(0, 7)):
                key += "[" + rnd.choice(segments) + "]"
            parts.append(key + ("=" + rnd.choice(values) if rnd.random() < 0.9 else ""))
        queries.append("&".join(parts))
    return queries


def test_matches_node_qs_without_array_limit_on_well_formed_queries(js_deps) -> None:
    # js_deps installs tests/js (qs comes with @feathersjs/rest-client), or skips without node.
    queries = _random_queries(2000, seed=20240601)
    script = (
        f"const qs = require({json.dumps(str(QS_MODULE))});"
        "const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        # Express parses with allowPrototypes: true; arrayLimit is the limit we drop on purpose.
        "const opts = {allowPrototypes: true, arrayLimit: Infinity};"
        "process.stdout.write(JSON.stringify(input.map((q) => qs.parse(q, opts))));"
    )
    completed = subprocess.run(
        ["node", "-e", script],
        input=json.dumps(queries),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    expected: list[Any] = json.loads(completed.stdout)
    mismatches = [
        (query, parse_query_string(query), want)
        for query, want in zip(queries, expected, strict=True)
        if parse_query_string(query) != want
    ]
    assert mismatches[:5] == []
