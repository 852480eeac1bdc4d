"""The database-adapter contract shared by MongoService and MemoryService (docs/protocol.md §1.3–1.4).

Public methods (``find``, ``get`` …) validate data, check the multi rules and delegate to the
raw ``_find``, ``_get`` … of a subclass. Raw methods never call public ones, so hooks run once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from marshmallow import Schema

from ..core.errors import BadRequest, MethodNotAllowed, NotFound
from .query import Query, QueryValidator
from .schema import make_schema

MULTI_MESSAGES = {
    "create": "Can not create multiple entries",
    "patch": "Can not patch multiple entries",
    "remove": "Can not remove multiple entries",
}


def check_field_names(data: Any) -> None:
    """Refuse keys that a database would read as operators or paths (iterative: no recursion)."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str) or not key or key[0] == "$" or "." in key or "\x00" in key:
                    raise BadRequest(
                        f"Invalid field name {key!r}: names must not be empty, start with '$' or contain '.'"
                    )
                if isinstance(item, (Mapping, list)):
                    stack.append(item)
        elif isinstance(value, list):
            stack.extend(item for item in value if isinstance(item, (Mapping, list)))


class AdapterService:
    """Options, query parsing, multi rules, schemas and ``$select`` for database services.

    Options (all mutable through ``service.options``, and per call through ``params["adapter"]``):
    ``id``, ``paginate`` (False or ``{"default", "max", "count"}``), ``multi`` (bool or list of
    methods), ``operators`` and ``filters`` (allowed beyond the defaults), ``protected_fields``
    (never queried, sorted, selected or returned to external callers), ``query_fields``
    (``"schema"``: only declared fields may be queried when a schema is set; ``"any"``),
    ``special_keys`` (False: field names in data that are empty, start with ``$`` or hold a
    ``.`` are refused, at any depth, since MongoDB reads them as operators and paths).
    """

    def __init__(
        self,
        *,
        id: str = "id",
        paginate: Mapping[str, Any] | bool | None = None,
        multi: bool | Iterable[str] = False,
        operators: Iterable[str] = (),
        filters: Mapping[str, Any] | Iterable[str] = (),
        schema: Schema | type[Schema] | None = None,
        protected_fields: Iterable[str] = (),
        query_fields: str = "schema",
        special_keys: bool = False,
    ) -> None:
        self.options: dict[str, Any] = {
            "id": id,
            "paginate": dict(paginate) if isinstance(paginate, Mapping) else (paginate or False),
            "multi": multi if isinstance(multi, bool) else list(multi),
            "operators": list(operators),
            "filters": dict(filters) if isinstance(filters, Mapping) else list(filters),
            "protected_fields": list(protected_fields),
            "query_fields": query_fields,
            "special_keys": special_keys,
        }
        self.schema = make_schema(schema, id)
        # Validators by the options they depend on: options may change at run time.
        self._validators: dict[tuple[Any, ...], QueryValidator] = {}

    @property
    def id(self) -> str:
        return self.options["id"]

    # --- options and queries -------------------------------------------------------------
    def get_options(self, params: Mapping[str, Any] | None) -> Mapping[str, Any]:
        """The options of this call: the service's, with ``params["adapter"]`` and
        ``params["paginate"]`` over them. Read-only: without either it is ``self.options`` itself
        (a copy per call cost more than the rest of a get on MemoryService)."""
        params = params or {}
        if not params.get("adapter") and "paginate" not in params:
            return self.options
        options = {**self.options, **(params.get("adapter") or {})}
        if "paginate" in params:
            options["paginate"] = params["paginate"]
        return options

    def allows_multi(self, method: str, params: Mapping[str, Any] | None = None) -> bool:
        multi = self.get_options(params)["multi"]
        if isinstance(multi, bool):
            return multi
        return method in (multi or ())

    def convert_query_value(self, name: str, value: Any) -> Any:
        """Per-field conversion of query values; subclasses add id conversion."""
        if self.schema is not None:
            return self.schema.convert_query_value(name, value)
        return value

    def query_validator(self, options: Mapping[str, Any]) -> QueryValidator:
        filters = options.get("filters", ())
        key = (
            tuple(options.get("operators", ())),
            tuple(filters.items()) if isinstance(filters, Mapping) else tuple(filters),
            tuple(options.get("protected_fields", ())),
            options.get("query_fields", "schema"),
        )
        validator = self._validators.get(key)
        if validator is None:
            validator = self._validators[key] = self._make_validator(options)
        return validator

    def _make_validator(self, options: Mapping[str, Any]) -> QueryValidator:
        allowed = None
        if self.schema is not None and options.get("query_fields", "schema") == "schema":
            allowed = self.schema.field_names
        return QueryValidator(
            operators=options.get("operators", ()),
            filters=options.get("filters", ()),
            protected_fields=options.get("protected_fields", ()),
            allowed_fields=allowed,
            convert=self.convert_query_value,
        )

    def parse_query(self, params: Mapping[str, Any] | None, *, paginated: bool = True) -> Query:
        options = self.get_options(params)
        paginate = options["paginate"] if paginated else False
        return self.query_validator(options).parse((params or {}).get("query"), paginate)

    def paginate_options(self, params: Mapping[str, Any] | None) -> Any:
        paginate = self.get_options(params)["paginate"]
        # JS truthiness: {} turns pages on; False/None turn them off.
        return paginate if isinstance(paginate, Mapping) else (paginate or False)

    # --- data ----------------------------------------------------------------------------
    def validate_data(self, data: Any, *, partial: bool = False) -> Any:
        if not self.options.get("special_keys"):
            check_field_names(data)
        if self.schema is not None:
            return self.schema.load(data, partial=partial)
        if not isinstance(data, Mapping):
            raise BadRequest("Data must be an object")
        return dict(data)

    def select(self, record: Any, fields: list[str] | None, params: Mapping[str, Any]) -> Any:
        """Apply ``$select`` (the id is always kept); drop protected fields for external callers."""
        if not isinstance(record, Mapping):
            return record
        hidden = (self.options.get("protected_fields") or ()) if params.get("provider") else ()
        if fields is None:
            if not hidden:
                return record
            return {k: v for k, v in record.items() if k not in hidden}
        keep = {*fields, self.id}
        return {k: v for k, v in record.items() if k in keep and k not in hidden}

    @staticmethod
    def not_found(id: Any) -> NotFound:
        return NotFound(f"No record found for id '{id}'")

    # --- public methods ------------------------------------------------------------------
    def find(self, params: dict[str, Any] | None = None) -> Any:
        return self._find(params or {})

    def get(self, id: Any, params: dict[str, Any] | None = None) -> Any:
        return self._get(id, params or {})

    def create(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        params = params or {}
        if isinstance(data, list):
            if not self.allows_multi("create", params):
                raise MethodNotAllowed(MULTI_MESSAGES["create"])
            if not data:  # nothing to create is a client mistake, not an empty success
                raise BadRequest("Can not create from an empty array")
            data = [self.validate_data(item) for item in data]
        else:
            data = self.validate_data(data)
        return self._create(data, params)

    def update(self, id: Any, data: Any, params: dict[str, Any] | None = None) -> Any:
        if id is None or isinstance(data, list):
            raise BadRequest("You can not replace multiple instances. Did you mean 'patch'?")
        return self._update(id, self.validate_data(data), params or {})

    def patch(self, id: Any, data: Any, params: dict[str, Any] | None = None) -> Any:
        params = params or {}
        if id is None and not self.allows_multi("patch", params):
            raise MethodNotAllowed(MULTI_MESSAGES["patch"])
        data = self.validate_data(data, partial=True)
        data.pop(self.id, None)  # the id of a record never changes
        return self._patch(id, data, params)

    def remove(self, id: Any, params: dict[str, Any] | None = None) -> Any:
        params = params or {}
        if id is None and not self.allows_multi("remove", params):
            raise MethodNotAllowed(MULTI_MESSAGES["remove"])
        return self._remove(id, params)

    # --- raw methods, implemented by each adapter ---------------------------------------
    def _find(self, params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _get(self, id: Any, params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _create(self, data: Any, params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _update(self, id: Any, data: Any, params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _patch(self, id: Any, data: Any, params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _remove(self, id: Any, params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def page(self, query: Query, total: int | None, data: list[Any], paginate: Any) -> Any:
        """A page object when pagination is on (no ``limit`` key when none applies)."""
        if not isinstance(paginate, Mapping):  # {} is falsy in Python but means "pages on"
            return data
        body: dict[str, Any] = {"total": total}
        if query.limit is not None:
            body["limit"] = query.limit
        body["skip"] = query.skip
        body["data"] = data
        return body
