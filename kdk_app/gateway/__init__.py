"""Reverse proxy for the ``proxy_table`` (KDK's ``proxyTable``): REST, bodies and WebSockets."""

from .configure import configure_gateway
from .errors import GatewayTimeout
from .middleware import GatewayMiddleware
from .table import ProxyRule, parse_rule, parse_table

__all__ = [
    "GatewayMiddleware",
    "GatewayTimeout",
    "ProxyRule",
    "configure_gateway",
    "parse_rule",
    "parse_table",
]
