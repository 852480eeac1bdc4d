"""Parse URL query strings the way Node's ``qs.parse`` does (Express's "extended" parser).

Feathers REST clients send queries with ``qs.stringify`` and Feathers servers read them with
``qs.parse`` (docs/protocol.md §2.2), so this module reproduces that mapping:

- ``a[b][c]=1`` nests: ``{"a": {"b": {"c": "1"}}}``; ``$`` keys are ordinary keys.
- ``a[]=x&a[]=y`` appends, a repeated key builds a list (``a=1&a=2`` -> ``["1", "2"]``), and
  ``a[0]=x&a[1]=y`` is a list in index order. Sparse indexes are compacted (``a[5]=z`` ->
  ``["z"]``).
- Every value is a string; a key with no ``=`` gets ``""``; empty keys are ignored.
- Percent escapes are decoded (UTF-8) and ``+`` is a space. A value with a broken escape is
  kept as sent, as ``decodeURIComponent`` failing in qs would.
- Brackets nest at most ``depth`` levels; the rest of the key stays one literal key:
  ``a[b][c][d][e][f][g]=1`` -> ``{"a": {"b": {"c": {"d": {"e": {"f": {"[g]": "1"}}}}}}}``.

Deliberate differences from qs:

- No ``arrayLimit``: qs turns arrays with more than 20 items into objects ``{"0": .., "21": ..}``
  (feathersjs/feathers#2240). Here any index makes a list, and any nested object whose keys
  are all canonical non-negative integers (``"0"``, ``"17"``, not ``"01"``) becomes a list in
  index order. The top level is always a dict.
- Malformed bracket syntax raises ``QueryStringError`` instead of being guessed at: a key must be
  ``name`` or ``name[seg][seg]...`` where ``name`` is non-empty and no segment holds a bracket.
  ``a[b``, ``a]``, ``[a]``, ``a[b]c`` and ``a[b[c]]`` are rejected (qs yields odd keys for them).
- More than ``max_params`` non-empty ``&``-separated parts raise ``QueryStringError`` (qs would
  silently drop the excess).
- The key ends at the first ``=`` outside brackets (``a[b=c]=d`` -> ``{"a": {"b=c": "d"}}``,
  as in qs; ``a=x]=y`` -> ``{"a": "x]=y"}``, where qs would make the key ``"a=x]"``).

Conflicting shapes for one key follow qs 6.17's merge, so nothing is silently lost:

- value then nested (``a=1&a[b]=2``) -> ``["1", {"b": "2"}]``; nested then value
  (``a[b]=2&a=1``) -> ``[{"b": "2"}, "1"]``;
- list and object mixed (``a[0]=x&a[b]=y``) -> ``{"0": "x", "b": "y"}``;
- an empty value never replaces something already parsed (``a[b]=1&a=`` -> ``{"a": {"b": "1"}}``);
- the same index twice with plain values appends (``a[0]=x&a[]=y`` -> ``["x", "y"]``).

Prototype pollution: like Express (``allowPrototypes: true``), names such as ``constructor`` are
kept, but any ``__proto__`` segment is dropped with what is below it, exactly as qs does, so a
query cannot smuggle that key to a JavaScript consumer. Results are plain dicts, lists and
strings; nothing is ever set as an attribute.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

__all__ = ["QueryStringError", "parse_query_string"]

_BROKEN_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_OPEN_ESCAPE = re.compile(r"%5B", re.IGNORECASE)
_CLOSE_ESCAPE = re.compile(r"%5D", re.IGNORECASE)
_WELL_FORMED_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
_INDEX = re.compile(r"0|[1-9][0-9]*")
_PROTO = "__proto__"


class QueryStringError(ValueError):
    """The query string has too many parameters or key syntax that cannot be parsed."""


class _Array:
    """A JS-style sparse array while parsing: index -> value, compacted at the end."""

    __slots__ = ("items", "length")

    def __init__(self) -> None:
        self.items: dict[int, Any] = {}
        self.length = 0

    @classmethod
    def of(cls, *values: Any) -> _Array:
        array = cls()
        for value in values:
            array.push(value)
        return array

    def set(self, index: int, value: Any) -> None:
        self.items[index] = value
        self.length = max(self.length, index + 1)

    def push(self, value: Any) -> None:
        self.set(self.length, value)

    def values(self) -> list[Any]:
        return [self.items[i] for i in sorted(self.items)]

    def as_dict(self) -> dict[str, Any]:
        return {str(i): self.items[i] for i in sorted(self.items)}


def parse_query_string(raw: str | bytes, *, depth: int = 5, max_params: int = 1000) -> dict[str, Any]:
    """Parse ``raw`` (without or with a leading ``?``) into nested dicts, lists and strings.

    ``bytes`` are read as UTF-8 (Latin-1 if that fails), which suits WSGI's raw query string.
    ``depth`` is the number of bracket levels parsed (0 keeps every key literal). Raises
    ``QueryStringError`` for more than ``max_params`` parameters or a malformed key.
    """
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    else:
        text = raw
    text = text.removeprefix("?")
    if not text:
        return {}
    # qs turns encoded brackets into real ones before anything else, so both spellings nest.
    text = _CLOSE_ESCAPE.sub("]", _OPEN_ESCAPE.sub("[", text))
    parts = [part for part in text.split("&") if part]
    if len(parts) > max_params:
        raise QueryStringError(f"Too many query parameters: {len(parts)} (at most {max_params})")

    # First pass, as in qs: decode and group by the flat key; a repeated key builds a list.
    flat: dict[str, str | list[str]] = {}
    for part in parts:
        raw_key, raw_value = _split_part(part)
        key = _decode(raw_key)
        if not key:
            continue
        value = "" if raw_value is None else _decode(raw_value)
        previous = flat.get(key)
        if previous is None:
            flat[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            flat[key] = [previous, value]

    # Second pass: expand each flat key into a nested value and merge it into the result.
    result: dict[str, Any] = {}
    for key, grouped in flat.items():
        expanded = _expand(key, grouped, depth)
        if expanded is None:
            continue
        name, node = expanded
        result[name] = _merge(result[name], node) if name in result else node
    return {name: _finalize(node) for name, node in result.items()}


def _split_part(part: str) -> tuple[str, str | None]:
    """Split ``key=value`` at the first ``=`` outside brackets (``None``: no ``=`` at all)."""
    if "[" not in part:
        key, sep, value = part.partition("=")
        return key, value if sep else None
    level = 0
    first_equals = -1
    for i, char in enumerate(part):
        if char == "[":
            level += 1
        elif char == "]":
            level = max(level - 1, 0)
        elif char == "=":
            if level == 0:
                return part[:i], part[i + 1 :]
            if first_equals < 0:
                first_equals = i
    # Unclosed bracket: fall back to the first "=", which then fails key validation.
    if first_equals >= 0:
        return part[:first_equals], part[first_equals + 1 :]
    return part, None


def _decode(text: str) -> str:
    """qs's decoder: ``+`` is a space; on a broken escape the text stays as sent."""
    text = text.replace("+", " ")
    if "%" not in text or _BROKEN_ESCAPE.search(text):
        return text
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        return text


def _expand(key: str, value: str | list[str], depth: int) -> tuple[str, Any] | None:
    """Turn one flat ``key``/``value`` into ``(top-level name, nested value)``."""
    leaf: Any = _Array.of(*value) if isinstance(value, list) else value
    if depth <= 0 or ("[" not in key and "]" not in key):
        return None if key == _PROTO else (key, leaf)
    match = _WELL_FORMED_KEY.fullmatch(key)
    if match is None:
        raise QueryStringError(f"Malformed query parameter name: {key!r}")
    name, brackets = match.groups()
    if name == _PROTO:
        return None
    segments = _SEGMENT.findall(brackets)
    if len(segments) > depth:
        # Past the depth limit the remaining brackets form one literal key, like qs.
        rest = "".join(f"[{segment}]" for segment in segments[depth:])
        segments = [*segments[:depth], rest]
    if _PROTO in segments:
        # qs drops a __proto__ level together with everything below it.
        segments = segments[: segments.index(_PROTO)]
        leaf = {}
    node = leaf
    for segment in reversed(segments):
        if segment == "":
            # "[]" appends: a list of the leaf, or the leaf itself when it is already one.
            node = node if isinstance(node, _Array) else _Array.of(node)
        elif _INDEX.fullmatch(segment):
            array = _Array()
            array.set(int(segment), node)
            node = array
        else:
            node = {segment: node}
    return name, node


def _is_container(value: Any) -> bool:
    return isinstance(value, dict | _Array)


def _merge(target: Any, source: Any) -> Any:
    """Merge ``source`` into ``target`` following qs's ``utils.merge`` (see module doc)."""
    if isinstance(source, str):
        if source == "":
            return target
        if isinstance(target, _Array):
            target.push(source)
            return target
        return _Array.of(target, source)
    if isinstance(target, str):
        if isinstance(source, dict):
            return _Array.of(target, source)
        # [target].concat(source): indexes shift by one, holes included.
        shifted = _Array.of(target)
        for index, item in source.items.items():
            shifted.set(index + 1, item)
        return shifted
    if isinstance(target, _Array) and isinstance(source, _Array):
        for index in sorted(source.items):
            item = source.items[index]
            if index not in target.items:
                target.set(index, item)
            elif _is_container(target.items[index]) and _is_container(item):
                target.items[index] = _merge(target.items[index], item)
            else:
                target.push(item)
        return target
    merged = target.as_dict() if isinstance(target, _Array) else target
    additions = source.as_dict() if isinstance(source, _Array) else source
    for key, item in additions.items():
        merged[key] = _merge(merged[key], item) if key in merged else item
    return merged


def _finalize(node: Any) -> Any:
    """Compact sparse arrays and turn integer-keyed objects into lists."""
    if isinstance(node, _Array):
        return [_finalize(item) for item in node.values()]
    if isinstance(node, dict):
        if node and all(_INDEX.fullmatch(key) for key in node):
            return [_finalize(node[key]) for key in sorted(node, key=int)]
        return {key: _finalize(item) for key, item in node.items()}
    return node
