"""Build the distribution from application settings and hook it into the Flask app."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from ..core import Application
from .node import Distribution
from .routes import register_routes
from .settings import DistributionSettings

logger = logging.getLogger(__name__)


def configure_distribution(
    flask_app: Flask, kdk: Application, settings: Mapping[str, Any]
) -> Distribution | None:
    """The distribution, started by ``kdk.start()``; None when ``distribution`` or ``redis.url``
    is not configured.

    Call after the real-time layer: remote events are emitted through ``kdk.channels``. The
    distribution stops (and withdraws its record) on ``kdk.teardown()``.
    """
    options = DistributionSettings.from_settings(settings)
    if options is None:
        if settings.get("distribution"):
            logger.warning("distribution is configured but redis.url is not: distribution is off")
        return None
    distribution = Distribution(kdk, options)
    register_routes(flask_app, distribution)
    kdk.distribution = distribution
    flask_app.extensions["kdk_distribution"] = distribution
    kdk.on("teardown", lambda _app: distribution.stop())
    kdk.on_start(distribution.start)
    return distribution
