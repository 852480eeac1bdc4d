"""Small WSGI helpers shared by the transports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def environ_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request headers, lower-cased as Node gives them (``params["headers"]`` in Feathers).

    Read straight from the environ: several times cheaper than werkzeug's header view.
    """
    headers = {
        key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key[:5] == "HTTP_"
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = environ["CONTENT_LENGTH"]
    return headers
