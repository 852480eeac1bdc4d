"""The ``proxy_table``: which request paths go to which upstream, and how they are rewritten.

As KDK's ``proxyTable`` (http-proxy-middleware options, in snake_case; the camelCase names
are accepted too). Entries are tried in order and the first matching context wins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DEFAULT_TIMEOUT = 30.0  # s: connecting to the upstream, and each wait for it to send something
_ALIASES = {"changeOrigin": "change_origin", "pathRewrite": "path_rewrite", "proxyTimeout": "timeout"}
_KEYS = {"target", "change_origin", "path_rewrite", "headers", "xfwd", "timeout", "ws", "match"}


@dataclass(frozen=True)
class ProxyRule:
    context: str
    scheme: str
    host: str
    port: int
    base_path: str  # the target URL's own path, prepended to every forwarded path
    change_origin: bool = False
    path_rewrite: tuple[tuple[re.Pattern[str], str], ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    xfwd: bool = False
    timeout: float = DEFAULT_TIMEOUT
    ws: bool = False
    segment: bool = False  # match whole path segments only: /api matches /api and /api/x, not /apix

    @property
    def netloc(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"

    def matches(self, path: str) -> bool:
        if not path.startswith(self.context):
            return False
        if not self.segment or len(path) == len(self.context) or self.context.endswith("/"):
            return True
        return path[len(self.context)] == "/"

    def rewrite(self, path: str) -> str:
        """The first ``path_rewrite`` rule that matches applies; then the target's own path."""
        for pattern, replacement in self.path_rewrite:
            if pattern.search(path):
                path = pattern.sub(replacement, path, count=1)
                break
        if not path.startswith("/"):
            path = "/" + path
        return (self.base_path.rstrip("/") + path) if self.base_path not in ("", "/") else path


def _replacement(value: str) -> str:
    # JavaScript's $1 in replacements, as KDK configurations write them, is Python's \g<1>.
    return re.sub(r"\$(\d+)", r"\\g<\1>", value)


def parse_rule(context: str, spec: str | Mapping[str, Any]) -> ProxyRule:
    options: dict[str, Any] = {"target": spec} if isinstance(spec, str) else dict(spec)
    options = {_ALIASES.get(k, k): v for k, v in options.items()}
    unknown = set(options) - _KEYS
    if unknown:
        raise ValueError(f"proxy_table['{context}']: unknown options {', '.join(sorted(unknown))}")
    target = urlsplit(str(options.get("target") or ""))
    if target.scheme not in ("http", "https") or not target.hostname:
        raise ValueError(
            f"proxy_table['{context}']: target must be an http(s) URL, got {options.get('target')!r}"
        )
    rewrite = options.get("path_rewrite") or {}
    pairs = rewrite.items() if isinstance(rewrite, Mapping) else rewrite
    timeout = float(options.get("timeout") or DEFAULT_TIMEOUT)
    if "proxyTimeout" in (spec if isinstance(spec, Mapping) else {}):
        timeout /= 1000  # http-proxy-middleware counts milliseconds
    match = options.get("match", "prefix")
    if match not in ("prefix", "segment"):
        raise ValueError(f"proxy_table['{context}']: match must be 'prefix' or 'segment'")
    return ProxyRule(
        context=context if context.startswith("/") else "/" + context,
        scheme=target.scheme,
        host=target.hostname,
        port=target.port or (443 if target.scheme == "https" else 80),
        base_path=target.path,
        change_origin=bool(options.get("change_origin", False)),
        path_rewrite=tuple((re.compile(pattern), _replacement(str(repl))) for pattern, repl in pairs),
        headers={str(k): str(v) for k, v in (options.get("headers") or {}).items()},
        xfwd=bool(options.get("xfwd", False)),
        timeout=timeout,
        ws=bool(options.get("ws", False)),
        segment=match == "segment",
    )


def parse_table(table: Mapping[str, Any] | None) -> list[ProxyRule]:
    return [parse_rule(context, spec) for context, spec in (table or {}).items()]


def find_rule(rules: list[ProxyRule], path: str) -> ProxyRule | None:
    return next((rule for rule in rules if rule.matches(path)), None)
