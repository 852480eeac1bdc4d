"""Gateway failures as Feathers JSON errors; 504 has no Feathers class, so it gets one here."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from ..core import errors
from ..core.serialization import dumps


class GatewayTimeout(errors.FeathersError):
    """The upstream refused the connection or did not answer in time (HTTP 504)."""

    code, class_name = 504, "gateway-timeout"


def error_response(start_response: Callable[..., Any], error: errors.FeathersError) -> Iterable[bytes]:
    body = dumps(error.to_json()).encode()
    start_response(
        f"{error.code} {HTTPStatus(error.code).phrase}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
