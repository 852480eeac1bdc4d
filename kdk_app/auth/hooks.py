"""Service hooks for authentication and authorization.

* ``authenticate("jwt")``: verify ``params["authentication"]`` and set ``params["user"]``,
  ``params["authentication"]`` and ``params["authenticated"]``; 401 for an external call
  without authentication; internal calls (no ``provider``) pass.
* ``authorize()``: apply the ``permissions`` setting (see ``permissions.py``) to external calls.
* ``set_owner("owner")``: the owner of a created record is the caller, whatever it sent.
* ``hash_password("password")``, ``protect("password")``, ``validate_role()``,
  ``allow_registration()``, ``throttle_registration()``: the users service's hooks;
  ``user_hooks()`` bundles them.

Hooks find the authentication service as ``context.app.authentication`` (set by
``configure_authentication``), so they can be written in configuration files before the app
exists.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from ..core import NOT_SET, STANDARD_METHODS, HookContext
from ..core.errors import BadRequest, Forbidden, GeneralError, NotAuthenticated, NotFound
from .permissions import contradicts, matches, merge_query, resolve

if TYPE_CHECKING:
    from .service import AuthenticationService

Hook = Callable[[HookContext], Any]
DATA_METHODS = ("create", "update", "patch")


def auth_service(context: HookContext) -> AuthenticationService:
    service = context.app.authentication
    if service is None:
        raise GeneralError("Authentication is not configured")
    return service


def _items(data: Any) -> list[Any]:
    return data if isinstance(data, list) else [data]


def _copy_data(context: HookContext) -> list[dict[str, Any]]:
    """Copies of the call's data items (the caller's objects are never changed)."""
    if isinstance(context.data, list):
        context.data = [dict(item) if isinstance(item, Mapping) else item for item in context.data]
    elif isinstance(context.data, Mapping):
        context.data = dict(context.data)
    return [item for item in _items(context.data) if isinstance(item, dict)]


def _run_authentication(context: HookContext, strategies: tuple[str, ...]) -> None:
    params = context.params
    if params.get("authenticated"):
        return
    authentication = params.get("authentication")
    if not authentication:
        return
    service = auth_service(context)
    result = service.authenticate(authentication, params, strategies)
    params["user"] = result[service.entity]
    params["authentication"] = result["authentication"]
    params["authenticated"] = True


def authenticate(*strategies: str, optional: bool | Collection[str] = False) -> Hook:
    """Require a valid token on external calls (``optional``: True, or the methods where not)."""
    names = strategies or ("jwt",)

    def hook(context: HookContext) -> None:
        _run_authentication(context, names)
        if context.params.get("authenticated") or not context.params.get("provider"):
            return
        if optional is True or (not isinstance(optional, bool) and context.method in optional):
            context.params.pop("user", None)  # only a verified user counts
            return
        raise NotAuthenticated("Not authenticated")

    return hook


def _visible(context: HookContext, condition: Mapping[str, Any]) -> bool:
    raw_get = getattr(context.service.impl, "_get", None)
    try:
        if raw_get is not None:
            raw_get(context.id, {"query": dict(condition)})
        else:
            context.service.get(context.id, {"query": dict(condition)})
        return True
    except NotFound:
        return False


def _not_found(context: HookContext) -> NotFound:
    make = getattr(context.service.impl, "not_found", None)
    return make(context.id) if callable(make) else NotFound(f"No record found for id '{context.id}'")


def authorize(*, strategies: tuple[str, ...] = ("jwt",)) -> Hook:
    """Check the caller's role against ``permissions`` and scope the call to allowed records.

    Verifies ``params["authentication"]`` first when ``authenticate`` did not run, so a service
    with only ``authorize()`` never trusts an unverified user. Internal calls pass.
    """

    def hook(context: HookContext) -> None:
        params = context.params
        if not params.get("provider"):
            return
        _run_authentication(context, strategies)
        user = params.get("user") if params.get("authenticated") else None
        permissions = auth_service(context).permissions
        role = permissions.role_of(user)
        method, path = context.method, context.path
        rule = permissions.rule(role, path, method)
        if rule is None:
            if user is None:
                raise NotAuthenticated("Not authenticated")
            raise Forbidden(f"You are not allowed to {method} on '{path}'")
        items = _copy_data(context) if method in DATA_METHODS or method not in STANDARD_METHODS else []
        readonly = permissions.readonly(role, path)
        if readonly and method in DATA_METHODS:
            written = sorted({field for item in items for field in item if field in readonly})
            if written:
                raise Forbidden(f"You are not allowed to change {', '.join(written)}", {"fields": written})
        if rule.condition is None:
            return
        condition = resolve(rule.condition, user)
        # Equalities of the condition are the values a record must have: impose them on the data.
        imposed = {
            k: v
            for k, v in condition.items()
            if not str(k).startswith("$") and "." not in str(k) and not isinstance(v, (Mapping, list))
        }
        if method == "create" or method not in STANDARD_METHODS:
            for item in items:
                item.update(imposed)
                if not matches(item, condition):
                    raise Forbidden(f"You are not allowed to {method} this data on '{path}'")
            return
        if method in ("update", "patch"):
            for item in items:
                if method == "update":
                    item.update(imposed)
                else:
                    item.update({k: v for k, v in imposed.items() if k in item})
                bad = not matches(item, condition) if method == "update" else contradicts(item, condition)
                if bad:
                    if context.id is not None and not _visible(context, condition):
                        raise _not_found(context)
                    raise Forbidden(f"You are not allowed to {method} this data on '{path}'")
        params["query"] = merge_query(condition, params.get("query"))

    return hook


def set_owner(field: str = "owner") -> Hook:
    """On external calls: ``create`` sets ``field`` to the caller's id (never what the client
    sent); ``update`` keeps the record's current owner (a full replacement cannot drop it)."""

    def hook(context: HookContext) -> None:
        params = context.params
        if not params.get("provider"):
            return
        user = params.get("user") if params.get("authenticated") else None
        if user is None:
            raise NotAuthenticated("Not authenticated")
        items = _copy_data(context)
        if context.method == "create":
            owner = auth_service(context).user_id(user)
            for item in items:
                item[field] = owner
        elif context.method == "update" and context.id is not None and items:
            raw_get = getattr(context.service.impl, "_get", None)
            try:
                current = raw_get(context.id, {"query": {}}) if raw_get else None
            except NotFound:
                return  # the update itself will answer NotFound
            if isinstance(current, Mapping) and field in current:
                items[0][field] = current[field]

    return hook


def hash_password(field: str = "password") -> Hook:
    """Replace a clear-text password in the data by its Argon2id hash (length checked first)."""

    def hook(context: HookContext) -> None:
        service = auth_service(context)
        minimum = int((service.settings.get("local") or {}).get("min_password_length", 8))
        for item in _copy_data(context):
            if field not in item:
                continue
            password = item[field]
            if not isinstance(password, str) or not (minimum <= len(password) <= 1024):
                raise BadRequest(
                    "Validation failed",
                    errors={field: [f"Must be a string of {minimum} to 1024 characters."]},
                )
            item[field] = service.passwords.hash(password)

    return hook


def _strip(value: Any, fields: Collection[str]) -> Any:
    if isinstance(value, list):
        return [_strip(item, fields) for item in value]
    if isinstance(value, Mapping):
        if isinstance(value.get("data"), list) and "total" in value:  # a page
            return {**value, "data": _strip(value["data"], fields)}
        return {k: v for k, v in value.items() if k not in fields}
    return value


def protect(*fields: str) -> Hook:
    """After hook: ``fields`` removed from ``result`` and ``dispatch`` of every call, internal
    ones included, so no client, event, sync message or internal caller ever gets them (Feathers'
    ``protect`` only sets ``dispatch``; code that must read a password hash uses the adapter's
    raw ``_get``/``_find``, as the local strategy does)."""
    names = set(fields)

    def hook(context: HookContext) -> None:
        if context.dispatch is not NOT_SET:
            context.dispatch = _strip(context.dispatch, names)
        context.result = _strip(context.result, names)

    return hook


def allow_registration() -> Hook:
    """``create`` without a user is refused when ``authentication.disallow_registration``."""

    def hook(context: HookContext) -> None:
        if context.method != "create" or not context.params.get("provider"):
            return
        if context.params.get("authenticated"):
            return
        if auth_service(context).settings.get("disallow_registration"):
            raise NotAuthenticated("Not authenticated")

    return hook


def throttle_registration() -> Hook:
    """Every ``create`` by an external caller without a token counts against its address
    (``authentication.throttle.register_max_attempts``): 429 over the limit, before any hash."""

    def hook(context: HookContext) -> None:
        params = context.params
        if context.method != "create" or not params.get("provider") or params.get("authenticated"):
            return
        auth_service(context).throttle.register(params.get("remote_addr"))

    return hook


def validate_role() -> Hook:
    """The role field: one of the configured roles; the default role on create when absent."""

    def hook(context: HookContext) -> None:
        service = auth_service(context)
        permissions = service.permissions
        field = permissions.role_field
        for item in _copy_data(context):
            if field in item:
                if item[field] not in permissions.roles:
                    raise BadRequest("Validation failed", errors={field: ["Unknown role."]})
            elif context.method in ("create", "update"):
                item[field] = permissions.default_role

    return hook


def user_hooks(password_field: str = "password") -> dict[str, Any]:
    """The hooks of a users service: registration open (unless disallowed), everything else
    behind a token and the permissions, passwords hashed, never sent out."""
    return {
        "before": {
            "all": [authenticate("jwt", optional=("create",)), allow_registration(), authorize()],
            "create": [throttle_registration(), validate_role(), hash_password(password_field)],
            "update": [validate_role(), hash_password(password_field)],
            "patch": [validate_role(), hash_password(password_field)],
        },
        "after": {"all": [protect(password_field)]},
    }
