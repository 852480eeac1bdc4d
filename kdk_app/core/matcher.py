"""One matcher for records in memory, with MongoDB's semantics for the Feathers query syntax.

``MemoryService`` filters its records with it and permissions match data against their
conditions with it, so both decide exactly as ``MongoService`` (MongoDB) would:

* equality, ``$in``, ``$nin``, ``$ne``, ``$lt``, ``$lte``, ``$gt``, ``$gte``, ``$or``, ``$and``
  (the set ``services/query.py`` lets through); anything else raises :class:`InvalidQuery`;
* a path reaches into sub-documents and arrays: ``"a.b"`` reads ``b`` in every document of an
  array ``a``, ``"a.0"`` reads element 0 (and a field ``"0"`` of documents in the array);
* a value that is an array matches when the array or one of its elements matches (``{tags: "x"}``
  finds ``tags: ["x", "y"]``; ``{tags: ["x", "y"]}`` finds that exact array);
* ``None`` matches null and missing fields (also through ``$in``, ``$lte``, ``$gte``); ``$ne``
  and ``$nin`` match missing fields; both are the negation of the whole path's equality;
* comparisons stay within a BSON type bracket: numbers with numbers (int and float by value,
  bool is not a number), strings with strings, dates with dates, ObjectIds with ObjectIds …,
  so ``True`` never equals ``1`` and ``{n: {$gt: 1}}`` never matches a string;
* sub-documents are equal only with the same fields in the same order; NaN equals NaN and
  compares with nothing else.

``compile_query`` reads a query once into a predicate; ``filter_records`` applies one to many
records with a shortcut for the most common query (one top-level field equal to a scalar).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from operator import ge, gt, le, lt
from typing import Any, TypeVar

try:  # bson ships with pymongo; the service layer works without it.
    from bson import Decimal128, ObjectId
except ImportError:  # pragma: no cover - pymongo is a dependency of the package
    Decimal128 = ObjectId = None  # type: ignore[assignment,misc]

Record = Mapping[str, Any]
R = TypeVar("R", bound=Mapping[str, Any])
Predicate = Callable[[Record], bool]
ElementTest = Callable[[Any], bool]

LOGICAL = ("$and", "$or")
OPERATORS = frozenset({"$in", "$nin", "$ne", "$lt", "$lte", "$gt", "$gte"})


class InvalidQuery(ValueError):
    """A query the matcher does not evaluate: an operator outside the Feathers set, or a
    malformed operand (``$in`` without an array, ``$or`` without a list of queries)."""


class _Missing:
    """A path that reaches no value (a field a document lacks): null for equality."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()

# MongoDB's canonical type order; values compare only within one bracket (numbers with numbers).
_NULL, _NUMBER, _STRING, _OBJECT, _ARRAY, _BINARY, _OBJECT_ID, _BOOL, _DATE, _OTHER = (
    5,
    10,
    15,
    20,
    25,
    30,
    35,
    40,
    45,
    100,
)
_ARRAYS = (list, tuple)
_BRACKETS: dict[type, int] = {
    type(None): _NULL,
    _Missing: _NULL,
    bool: _BOOL,
    int: _NUMBER,
    float: _NUMBER,
    Decimal: _NUMBER,
    str: _STRING,
    dict: _OBJECT,
    list: _ARRAY,
    tuple: _ARRAY,
    bytes: _BINARY,
    dt.datetime: _DATE,
}
if ObjectId is not None:
    _BRACKETS[ObjectId] = _OBJECT_ID
    _BRACKETS[Decimal128] = _NUMBER


def _bracket(value: Any) -> int:
    bracket = _BRACKETS.get(type(value))
    if bracket is not None:
        return bracket
    # Subclasses (bson's Int64, Binary, SON …); bool before int, since bool is an int in Python.
    for kind, bracket in (
        (bool, _BOOL),
        (int, _NUMBER),
        (float, _NUMBER),
        (str, _STRING),
        (Mapping, _OBJECT),
        (_ARRAYS, _ARRAY),
        (bytes, _BINARY),
        (dt.datetime, _DATE),
    ):
        if isinstance(value, kind):
            return bracket
    if ObjectId is not None and isinstance(value, ObjectId):
        return _OBJECT_ID
    if Decimal128 is not None and isinstance(value, Decimal128):
        return _NUMBER
    return _OTHER


# --- comparison --------------------------------------------------------------------------------
def _number(value: Any) -> Any:
    return value.to_decimal() if Decimal128 is not None and isinstance(value, Decimal128) else value


def _is_nan(value: Any) -> bool:
    if isinstance(value, float):
        return value != value
    if isinstance(value, Decimal):
        return value.is_nan()
    if Decimal128 is not None and isinstance(value, Decimal128):
        return value.to_decimal().is_nan()
    return False


def _compare_numbers(a: Any, b: Any) -> int:
    a, b = _number(a), _number(b)
    a_nan, b_nan = _is_nan(a), _is_nan(b)
    if a_nan or b_nan:  # NaN orders below every number and equal to NaN
        return 0 if a_nan and b_nan else (-1 if a_nan else 1)
    return int((a > b) - (a < b))


def _utc(value: dt.datetime) -> dt.datetime:
    """Naive UTC (what pymongo decodes), so aware and naive datetimes of one instant are equal."""
    offset = value.utcoffset()
    return value if offset is None else value.replace(tzinfo=None) - offset


def _compare_pairs(a: list[tuple[Any, Any]], b: list[tuple[Any, Any]]) -> int | None:
    # BSON order of two documents (arrays are documents keyed "0", "1" …): per field, the type
    # bracket, then the name, then the value; a prefix sorts first.
    for (name_a, value_a), (name_b, value_b) in zip(a, b, strict=False):
        bracket_a, bracket_b = _bracket(value_a), _bracket(value_b)
        if bracket_a != bracket_b:
            return -1 if bracket_a < bracket_b else 1
        if name_a != name_b:
            return -1 if name_a < name_b else 1
        result = _compare_same(value_a, value_b, bracket_a)
        if result != 0:
            return result
    return (len(a) > len(b)) - (len(a) < len(b))


def _compare_same(a: Any, b: Any, bracket: int) -> int | None:
    """BSON order of two values of one bracket; None when they cannot be ordered."""
    if bracket == _NUMBER:
        return _compare_numbers(a, b)
    if bracket in (_STRING, _BOOL, _OBJECT_ID):
        return int((a > b) - (a < b))
    if bracket == _NULL:
        return 0
    if bracket == _DATE:
        a, b = _utc(a), _utc(b)
        return int((a > b) - (a < b))
    if bracket == _OBJECT:
        return _compare_pairs(list(a.items()), list(b.items()))
    if bracket == _ARRAY:
        return _compare_pairs(list(enumerate(a)), list(enumerate(b)))
    if bracket == _BINARY:
        key_a = (len(a), getattr(a, "subtype", 0), bytes(a))
        key_b = (len(b), getattr(b, "subtype", 0), bytes(b))
        return (key_a > key_b) - (key_a < key_b)
    # A type BSON does not know (stored only in memory): equal to itself, ordered if Python can.
    if type(a) is not type(b):
        return None
    try:
        if a == b:
            return 0
        return -1 if a < b else (1 if a > b else None)
    except TypeError:
        return None


def compare(a: Any, b: Any) -> int | None:
    """MongoDB's order of two values (-1, 0, 1) across brackets; None for unorderable values."""
    bracket_a, bracket_b = _bracket(a), _bracket(b)
    if bracket_a != bracket_b:
        return -1 if bracket_a < bracket_b else 1
    return _compare_same(a, b, bracket_a)


def equal(a: Any, b: Any) -> bool:
    """MongoDB equality of two values: ``1 == 1.0``, ``True != 1``, documents in field order."""
    kind = type(a)
    if kind is type(b) and (kind is str or kind is int):
        return bool(a == b)
    bracket = _bracket(a)
    return bracket == _bracket(b) and _compare_same(a, b, bracket) == 0


# --- paths -------------------------------------------------------------------------------------
def _is_index(part: str) -> bool:
    # ASCII digits only ("²".isdigit() is true, int("²") fails), short enough for a cheap int().
    return len(part) <= 19 and part.isascii() and part.isdigit()


def _walk(value: Any, parts: list[str], i: int, out: list[Any]) -> None:
    last = len(parts)
    while i < last:
        part = parts[i]
        if isinstance(value, Mapping):
            value = value.get(part, MISSING)
            i += 1
        elif isinstance(value, _ARRAYS):
            if _is_index(part):
                index = int(part)
                if index >= len(value):
                    out.append(MISSING)
                elif i + 1 == last:
                    out.append(value[index])  # an element chosen by index is not expanded again
                else:
                    _walk(value[index], parts, i + 1, out)
            # Arrays of documents: the same path in each document (arrays in arrays are not entered).
            for element in value:
                if isinstance(element, Mapping):
                    _walk(element, parts, i, out)
            return
        else:
            out.append(MISSING)  # a scalar (or null) on the way: the path is missing here
            return
    out.append(value)
    if isinstance(value, _ARRAYS):
        out.extend(value)


def path_values(record: Record, path: str) -> list[Any]:
    """Every value a query on ``path`` looks at in ``record``: the values the path reaches
    (``MISSING`` where a document lacks it) and, for each array among them, its elements."""
    out: list[Any] = []
    _walk(record, path.split("."), 0, out)
    return out


def has_path(record: Record, path: str) -> bool:
    """Whether ``path`` reaches a value in ``record`` (what ``$exists: true`` means)."""
    return any(value is not MISSING for value in path_values(record, path))


# --- element tests -----------------------------------------------------------------------------
def _equals_test(operand: Any) -> ElementTest:
    if operand is None:
        return lambda value: value is None or value is MISSING
    kind = type(operand)
    if kind is str:
        return lambda value: value == operand if value.__class__ is str else equal(value, operand)
    if (kind is int or kind is float) and operand == operand:

        def equals_number(value: Any) -> bool:
            cls = value.__class__
            if cls is int or cls is float:
                return bool(value == operand)
            return equal(value, operand)

        return equals_number
    return lambda value: equal(value, operand)


def _in_test(operands: Any) -> ElementTest:
    if not isinstance(operands, _ARRAYS):
        raise InvalidQuery("$in and $nin need an array")
    strings: set[str] = set()
    numbers: set[Any] = set()
    bools: set[bool] = set()
    others: list[Any] = []
    null = nan = False
    for item in operands:
        kind = type(item)
        if item is None:
            null = True
        elif kind is str:
            strings.add(item)
        elif kind is bool:
            bools.add(item)
        elif kind is int or kind is float:
            if item == item:
                numbers.add(item)  # 1 and 1.0 hash alike, as MongoDB sees them alike
            else:
                nan = True
        else:
            others.append(item)

    def is_in(value: Any) -> bool:
        cls = value.__class__
        if cls is str:
            found = value in strings
        elif cls is int or cls is float:
            found = value in numbers or (nan and value != value)
        elif cls is bool:
            found = value in bools
        elif value is None or value is MISSING:
            return null
        else:
            return any(equal(value, item) for item in operands)
        return found or (bool(others) and any(equal(value, item) for item in others))

    return is_in


_ORDER: dict[str, Callable[[Any, Any], bool]] = {"$lt": lt, "$lte": le, "$gt": gt, "$gte": ge}


def _range_test(operator: str, operand: Any) -> ElementTest:
    inclusive = operator in ("$lte", "$gte")
    if operand is None or _is_nan(operand):
        # null and NaN order only equal to themselves: $lte/$gte find them, $lt/$gt nothing.
        return _equals_test(operand) if inclusive else (lambda value: False)
    bracket = _bracket(operand)
    holds = _ORDER[operator]

    def in_order(value: Any) -> bool:
        if _bracket(value) != bracket:
            return False
        if bracket == _NUMBER and _is_nan(value):
            return False  # NaN is neither above nor below a number
        result = _compare_same(value, operand, bracket)
        return result is not None and holds(result, 0)

    kind = type(operand)
    if kind is str or kind is int or kind is float:
        # The common case without the bracket lookup; a NaN value compares False, as in MongoDB.
        same = (str,) if kind is str else (int, float)
        return lambda value: holds(value, operand) if value.__class__ in same else in_order(value)
    return in_order


def _element_test(operator: str, operand: Any) -> tuple[ElementTest, bool]:
    """The test one value must pass, and whether the operator is the negation of it."""
    if operator == "$ne":
        return _equals_test(operand), True
    if operator == "$in":
        return _in_test(operand), False
    if operator == "$nin":
        return _in_test(operand), True
    if operator in _ORDER:
        return _range_test(operator, operand), False
    raise InvalidQuery(f"Unsupported query operator {operator}")


# --- queries -----------------------------------------------------------------------------------
def _holds(test: ElementTest, value: Any) -> bool:
    """The test on a value and, for an array, on each of its elements."""
    if test(value):
        return True
    if isinstance(value, _ARRAYS):
        for element in value:
            if test(element):
                return True
    return False


def _field_predicate(path: str, condition: Any) -> Predicate:
    if isinstance(condition, Mapping) and any(str(key).startswith("$") for key in condition):
        tests = []
        for operator, operand in condition.items():
            if operator not in OPERATORS:
                raise InvalidQuery(f"Unsupported query operator {operator}")
            tests.append(_element_test(operator, operand))
    else:
        tests = [(_equals_test(condition), False)]

    if "." not in path:
        if len(tests) == 1:
            test, negate = tests[0]
            if negate:
                return lambda record: not _holds(test, record.get(path, MISSING))
            return lambda record: _holds(test, record.get(path, MISSING))

        def field_holds(record: Record) -> bool:
            value = record.get(path, MISSING)
            return all(_holds(test, value) != negate for test, negate in tests)

        return field_holds

    parts = path.split(".")

    def path_holds(record: Record) -> bool:
        value: Any = record
        for part in parts:  # the common case first: plain documents all the way down
            if value.__class__ is not dict:
                break
            value = value.get(part, MISSING)
        else:
            return all(_holds(test, value) != negate for test, negate in tests)
        values: list[Any] = []
        _walk(record, parts, 0, values)
        return all(any(map(test, values)) != negate for test, negate in tests)

    return path_holds


def _clauses(key: str, value: Any) -> list[Predicate]:
    if not isinstance(value, _ARRAYS) or not all(isinstance(clause, Mapping) for clause in value):
        raise InvalidQuery(f"{key} needs an array of queries")
    return [compile_query(clause) for clause in value]


def compile_query(query: Mapping[str, Any]) -> Predicate:
    """A predicate for ``query``, read once rather than for every record it is applied to."""
    if not isinstance(query, Mapping):
        raise InvalidQuery("A query must be an object")
    predicates: list[Predicate] = []
    for key, condition in query.items():
        if key == "$or":
            clauses = _clauses(key, condition)
            predicates.append(_any_of(clauses))
        elif key == "$and":
            clauses = _clauses(key, condition)
            predicates.append(_all_of(clauses))
        elif not isinstance(key, str) or key.startswith("$"):
            raise InvalidQuery(f"Unsupported query operator {key}")
        else:
            predicates.append(_field_predicate(key, condition))
    if not predicates:
        return lambda record: True
    if len(predicates) == 1:
        return predicates[0]
    return lambda record: all(p(record) for p in predicates)


def matches(record: Record, query: Mapping[str, Any]) -> bool:
    """Whether ``record`` satisfies ``query`` (compile once with ``compile_query`` for many)."""
    if not query:  # a get by id with no conditions: nothing to compile
        return True
    return compile_query(query)(record)


def filter_records(records: Iterable[R], query: Mapping[str, Any]) -> list[R]:
    """The records that satisfy ``query``, in their order."""
    if not query:
        return list(records)
    if len(query) == 1:
        ((key, wanted),) = query.items()
        cls = wanted.__class__
        if (
            (cls is str or cls is int or (cls is float and wanted == wanted))
            and isinstance(key, str)
            and "." not in key
            and key[:1] != "$"
        ):
            # One top-level field equal to a scalar: no call per record unless the types differ.
            test = _equals_test(wanted)
            return [
                r
                for r in records
                if ((v := r.get(key, MISSING)).__class__ is cls and v == wanted)
                or (v.__class__ is not cls and v is not MISSING and _holds(test, v))
            ]
    predicate = compile_query(query)
    return [r for r in records if predicate(r)]


def _any_of(clauses: list[Predicate]) -> Predicate:
    return lambda record: any(p(record) for p in clauses)


def _all_of(clauses: list[Predicate]) -> Predicate:
    return lambda record: all(p(record) for p in clauses)
