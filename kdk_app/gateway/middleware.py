"""The gateway as WSGI middleware: proxied paths go upstream, everything else to the app."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from .headers import raw_target
from .table import ProxyRule, find_rule
from .tunnel import is_websocket_upgrade, tunnel
from .upstream import forward

logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class GatewayMiddleware:
    """Wrap ``app`` (outermost, before Socket.IO's middleware) with the rules of a proxy table."""

    def __init__(self, app: WSGIApp, rules: list[ProxyRule]) -> None:
        self.app = app
        self.rules = rules

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, query = raw_target(environ)
        rule = find_rule(self.rules, path)
        if rule is None:
            return self.app(environ, start_response)
        target = rule.rewrite(path) + (f"?{query}" if query else "")
        if is_websocket_upgrade(environ) and rule.ws:
            return tunnel(environ, start_response, rule, target)
        return forward(environ, start_response, rule, target)
