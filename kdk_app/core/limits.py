"""Input limits checked on every call from outside, before any hook runs.

Whatever a transport decoded (a REST body, a socket frame, a remote envelope) must be data that
every later step can handle: MongoDB stores it, JSON encodes it, a JavaScript client reads it.
So an external call is refused with 400 when its data, id or query holds

* containers nested deeper than ``max_depth`` (MongoDB stops at 100 levels; recursive
  encoders in libraries stop sooner),
* integers outside BSON's 64-bit range, or floats that are not finite (JSON has no NaN),
* strings or keys with lone surrogates, which no UTF-8 encoder accepts.

The walk is iterative: a hostile depth can never exhaust the Python stack here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
DEFAULT_MAX_DEPTH = 32


@dataclass(frozen=True)
class InputLimits:
    """What an external call may carry; ``max_depth`` counts nested objects and arrays."""

    max_depth: int = DEFAULT_MAX_DEPTH

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> InputLimits:
        return cls(max_depth=int(settings.get("max_data_depth") or DEFAULT_MAX_DEPTH))

    def check(self, value: Any, where: str) -> None:
        """Raise BadRequest when ``value`` breaks a limit; ``where`` names it in the message."""
        if isinstance(value, (dict, list)):
            self._walk(value, where)
        else:
            _check_scalar(value, where)

    def _walk(self, root: dict[str, Any] | list[Any], where: str) -> None:
        stack: list[tuple[Any, int]] = [(root, 1)]
        while stack:
            value, depth = stack.pop()
            if depth > self.max_depth:
                raise BadRequest(f"Invalid {where}: nested deeper than {self.max_depth} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_scalar(key, where)
                    if isinstance(item, (dict, list)):
                        stack.append((item, depth + 1))
                    else:
                        _check_scalar(item, where)
            else:
                for item in value:
                    if isinstance(item, (dict, list)):
                        stack.append((item, depth + 1))
                    else:
                        _check_scalar(item, where)


def _check_scalar(value: Any, where: str) -> None:
    if isinstance(value, str):
        if not value.isascii() and not _is_encodable(value):
            raise BadRequest(f"Invalid {where}: text is not valid Unicode")
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise BadRequest(f"Invalid {where}: number out of range")
    elif isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f"Invalid {where}: number out of range")


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
