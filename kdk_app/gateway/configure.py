"""Put the gateway in front of the Flask app when ``proxy_table`` has entries."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from ..core import Application
from .middleware import GatewayMiddleware
from .table import parse_table

logger = logging.getLogger(__name__)


def configure_gateway(
    flask_app: Flask, kdk: Application, settings: Mapping[str, Any]
) -> GatewayMiddleware | None:
    """Wrap ``flask_app.wsgi_app`` (after Socket.IO wrapped it, so proxied ws paths come first)."""
    rules = parse_table(settings.get("proxy_table"))
    if not rules:
        return None
    gateway = GatewayMiddleware(flask_app.wsgi_app, rules)
    flask_app.wsgi_app = gateway  # type: ignore[method-assign]
    flask_app.extensions["kdk_gateway"] = gateway
    for rule in rules:
        logger.info("gateway: %s -> %s://%s%s", rule.context, rule.scheme, rule.netloc, rule.base_path)
    return gateway
