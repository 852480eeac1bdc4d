"""Request and response headers as they cross the gateway: hop-by-hop ones stay behind."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .table import ProxyRule

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",  # we send the body at once; 100-continue is between the client and us
    }
)
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


def raw_target(environ: dict[str, Any]) -> tuple[str, str]:
    """The request path as the client sent it (still percent-encoded), and the query string."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw and raw.startswith("/"):
        path, _, query = raw.partition("?")
        return path, query
    path = quote(environ.get("PATH_INFO", "").encode("latin-1"), safe=_PATH_SAFE)
    return environ.get("SCRIPT_NAME", "") + path, environ.get("QUERY_STRING", "")


def request_headers(
    environ: dict[str, Any], rule: ProxyRule, *, upgrade: bool = False
) -> list[tuple[str, str]]:
    """Headers for the upstream request; with ``upgrade``, Connection and Upgrade pass through."""
    named = [v.strip().lower() for v in environ.get("HTTP_CONNECTION", "").split(",") if v.strip()]
    dropped = HOP_BY_HOP | set(named)
    if upgrade:
        dropped -= {"connection", "upgrade"}
    headers: list[tuple[str, str]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.replace("_", "-").title()
        else:
            continue
        if name.lower() in dropped or not value or name == "Host":
            continue
        headers.append((name, value))
    client_host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    headers.append(("Host", rule.netloc if rule.change_origin or not client_host else client_host))
    if rule.xfwd:
        headers = [(k, v) for k, v in headers if not k.lower().startswith("x-forwarded-")]
        previous = environ.get("HTTP_X_FORWARDED_FOR")
        address = environ.get("REMOTE_ADDR", "")
        headers += [
            ("X-Forwarded-For", f"{previous}, {address}" if previous else address),
            ("X-Forwarded-Proto", environ.get("wsgi.url_scheme", "http")),
            ("X-Forwarded-Host", client_host),
            ("X-Forwarded-Port", str(environ.get("SERVER_PORT", ""))),
        ]
    configured = {k.lower() for k in rule.headers}
    headers = [(k, v) for k, v in headers if k.lower() not in configured]
    headers += list(rule.headers.items())
    if upgrade:
        headers = [(k, v) for k, v in headers if k.lower() != "connection"] + [("Connection", "Upgrade")]
    return headers


def response_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    named = {v.strip().lower() for k, value in headers if k.lower() == "connection" for v in value.split(",")}
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() not in named]
