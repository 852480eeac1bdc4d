"""Test-mode hook for running the Feathers adapter tests through remote clients (docs/protocol.md §8.2).

The client shim sends ``query.$client`` as a JSON string carrying the service options the suite
sets (``multi``, ``paginate``) and the params that clients never send (``paginate``,
``adapter``). Enabled only by the ``testing.client_options`` setting (config/test.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

from .core import HookContext, errors

_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def restore_types(value: Any) -> Any:
    """What REST lost: numeric strings back to numbers, 'true'/'false' back to booleans."""
    if isinstance(value, dict):
        return {k: restore_types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [restore_types(v) for v in value]
    if isinstance(value, str):
        if _NUMBER.fullmatch(value):
            return float(value) if "." in value else int(value)
        if value in ("true", "false"):
            return value == "true"
    return value


def client_options_hook(context: HookContext) -> None:
    query = context.params.get("query")
    if not isinstance(query, dict) or "$client" not in query:
        return
    query = dict(query)
    raw = query.pop("$client")
    try:
        client = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise errors.BadRequest("Invalid $client") from None
    options = getattr(context.service.impl, "options", None)
    if isinstance(options, dict):
        options.update({k: v for k, v in (client.get("options") or {}).items() if k in ("multi", "paginate")})
    if "paginate" in client:
        context.params["paginate"] = client["paginate"]
    if isinstance(client.get("adapter"), dict):  # only what the suite uses: never protected_fields
        context.params["adapter"] = {k: v for k, v in client["adapter"].items() if k in ("multi", "paginate")}
    if context.params.get("provider") == "rest":
        query = restore_types(query)  # bodies are JSON and keep their types
    context.params["query"] = query
