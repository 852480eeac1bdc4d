"""Permissions: what each role may do on each service, as MongoDB-style conditions.

The setting ``permissions`` maps role -> service path -> method -> rule::

    permissions = {
        "anonymous": {"users": {"create": True, "$readonly": ["role"]}},
        "user": {
            "users": {"find": {"_id": "$user._id"}, "get": {"_id": "$user._id"},
                      "patch": {"_id": "$user._id"}, "$readonly": ["role"]},
            "notes": {"*": {"owner": "$user._id"}},
        },
        "admin": "*",
    }

* A **role** is ``user[role_field]`` (default field ``role``; a user without one has the
  ``default_role``); a caller without a user has the role ``anonymous``.
* A role's value is ``"*"``/``True`` (everything), or a map of service paths (``"*"`` for any
  service). A service's value is ``"*"``/``True`` (every method) or a map of methods (``"*"``
  for any method) plus an optional ``"$readonly"`` list of data fields this role may not write.
* A **rule** is ``True``/``"*"`` (allowed on every record), ``False``/``None``/absent
  (denied), or a condition: a MongoDB-style query (``$in $nin $ne $lt $lte $gt $gte $or $and``)
  where a string ``"$user.<field>"`` stands for that field of the caller (``"$user._id"``).
  Data is matched against it by ``core.matcher``, the matcher of MemoryService, with MongoDB's
  semantics (a value inside an array matches, ``True`` is not ``1`` …), so a check on data
  agrees with what the service then finds; an operator outside that set denies.
* The most specific entry wins: service+method, service+``*``, ``*``+method, ``*``+``*``.
* A condition scopes ``find`` and multi ``patch``/``remove`` (``$and`` with the caller's
  query), restricts ``get``/``update``/``patch``/``remove`` by id the same way (a record
  outside it is 404 NotFound, never 403, so its existence does not leak), and is matched
  against the data of ``create`` (and of custom methods). ``update``/``patch`` data must not
  contradict it either (403 Forbidden), so an owner cannot give a record away.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.errors import Forbidden
from ..core.matcher import InvalidQuery, has_path
from ..core.matcher import matches as match_query

try:  # bson ships with pymongo
    from bson import ObjectId
except ImportError:  # pragma: no cover - pymongo is a dependency of the package
    ObjectId = None  # type: ignore[assignment,misc]

PLACEHOLDER = "$user."
READONLY_KEY = "$readonly"
ANY = "*"
LOGICAL = ("$and", "$or")


@dataclass(frozen=True)
class Rule:
    """An allowed method: unconditional (``condition is None``) or limited to matching records."""

    condition: dict[str, Any] | None = None


def _is_everything(value: Any) -> bool:
    return value is True or value == ANY


def _rule(value: Any) -> Rule | None:
    if _is_everything(value):
        return Rule()
    if isinstance(value, Mapping):
        return Rule(dict(value))
    return None


class Permissions:
    """The ``permissions`` setting, checked once at start and looked up per call."""

    def __init__(
        self,
        spec: Mapping[str, Any] | None,
        *,
        default_role: str = "user",
        anonymous_role: str = "anonymous",
        role_field: str = "role",
    ) -> None:
        self.spec: dict[str, Any] = dict(spec or {})
        self.default_role = default_role
        self.anonymous_role = anonymous_role
        self.role_field = role_field
        self._validate()

    @property
    def roles(self) -> list[str]:
        """Roles a user may hold (every configured role but the anonymous one)."""
        return [role for role in self.spec if role != self.anonymous_role]

    def _validate(self) -> None:
        for role, services in self.spec.items():
            if _is_everything(services):
                continue
            if not isinstance(services, Mapping):
                raise ValueError(f"permissions['{role}'] must be '*' or a map of services")
            for path, methods in services.items():
                if _is_everything(methods):
                    continue
                if not isinstance(methods, Mapping):
                    raise ValueError(f"permissions['{role}']['{path}'] must be '*' or a map of methods")
                for method, rule in methods.items():
                    if method == READONLY_KEY:
                        if not isinstance(rule, (list, tuple)) or not all(isinstance(f, str) for f in rule):
                            raise ValueError(f"permissions['{role}']['{path}']['$readonly'] must list fields")
                    elif not (rule is None or isinstance(rule, (bool, Mapping)) or rule == ANY):
                        raise ValueError(
                            f"permissions['{role}']['{path}']['{method}'] must be True, False, '*' or a query"
                        )

    def role_of(self, user: Mapping[str, Any] | None) -> str:
        if not user:
            return self.anonymous_role
        role = user.get(self.role_field)
        return role if isinstance(role, str) and role else self.default_role

    def _service_maps(self, role: str, path: str) -> list[Any]:
        services = self.spec.get(role)
        if services is None:
            return []
        if _is_everything(services):
            return [ANY]
        return [services[key] for key in (path, ANY) if key in services]

    def rule(self, role: str, path: str, method: str) -> Rule | None:
        """The rule for ``role`` calling ``method`` on ``path``; None when denied."""
        for methods in self._service_maps(role, path):
            if _is_everything(methods):
                return Rule()
            for key in (method, ANY):
                if key in methods:
                    return _rule(methods[key])
        return None

    def readonly(self, role: str, path: str) -> set[str]:
        fields: set[str] = set()
        for methods in self._service_maps(role, path):
            if isinstance(methods, Mapping):
                fields.update(methods.get(READONLY_KEY) or ())
        return fields


# --- conditions ----------------------------------------------------------------------------
def _user_value(user: Mapping[str, Any] | None, path: str) -> Any:
    value: Any = user
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    if value is not None and not isinstance(value, (str, int, float, bool, list)):
        value = str(value)  # ObjectId and friends: the string form the services use
    return value


def resolve(condition: Any, user: Mapping[str, Any] | None) -> Any:
    """``condition`` with every ``"$user.<field>"`` replaced; 403 when the caller lacks the field."""
    if isinstance(condition, str) and condition.startswith(PLACEHOLDER):
        value = _user_value(user, condition[len(PLACEHOLDER) :])
        if value is None:  # never let a missing value turn into a match on "no owner"
            raise Forbidden("You are not allowed to access this resource")
        return value
    if isinstance(condition, Mapping):
        return {key: resolve(value, user) for key, value in condition.items()}
    if isinstance(condition, list):
        return [resolve(value, user) for value in condition]
    return condition


def _clauses(query: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A property query as a list of ``$and`` clauses (an existing ``$and`` is flattened)."""
    clauses: list[dict[str, Any]] = []
    rest = {}
    for key, value in query.items():
        if key == "$and":
            if isinstance(value, Mapping) and all(str(k).isdigit() for k in value):
                value = [value[k] for k in sorted(value, key=int)]
            if isinstance(value, list):
                clauses.extend(value)
            else:
                clauses.append({"$and": value})  # invalid: left for the query validator to refuse
        else:
            rest[key] = value
    if rest:
        clauses.append(rest)
    return clauses


def merge_query(condition: Mapping[str, Any], query: Mapping[str, Any] | None) -> dict[str, Any]:
    """The caller's ``query`` restricted by ``condition``: filters kept, properties ``$and``-ed."""
    query = dict(query or {})
    filters = {k: v for k, v in query.items() if str(k).startswith("$") and k not in LOGICAL}
    properties = {k: v for k, v in query.items() if k not in filters}
    clauses = _clauses(condition) + _clauses(properties)
    return {**filters, "$and": clauses} if clauses else filters


def _ids_as_text(value: Any) -> Any:
    """``value`` with every ObjectId as its hex string: ``"$user._id"`` resolves to the string the
    services answer, so data and conditions are compared in that form."""
    if ObjectId is not None and isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, Mapping):
        return {key: _ids_as_text(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_ids_as_text(item) for item in value]
    return value


def matches(record: Mapping[str, Any], condition: Mapping[str, Any]) -> bool:
    """Whether ``record`` satisfies ``condition`` (a resolved MongoDB-style query), decided as
    MemoryService and MongoDB decide (``core.matcher``); a condition it cannot evaluate (an
    unsupported operator) never grants."""
    try:
        return match_query(_ids_as_text(record), _ids_as_text(condition))
    except InvalidQuery:
        return False


def contradicts(data: Mapping[str, Any], condition: Mapping[str, Any]) -> bool:
    """Whether partial ``data`` (a patch) sets a field the condition constrains to another value."""
    for key, expected in condition.items():
        if key == "$and":
            if any(contradicts(data, clause) for clause in expected):
                return True
        elif not str(key).startswith("$"):
            if has_path(data, key) and not matches(data, {key: expected}):
                return True
    return False
