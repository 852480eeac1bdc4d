"""``create_app()``: a Flask app of kdk's own, with every layer (see :mod:`kdk_app.extension`).

The service-layer application is ``flask_app.extensions["kdk"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from .extension import KDK


def create_app(config: Mapping[str, Any] | None = None, **overrides: Any) -> Flask:
    """The Flask app for ``config`` (default: :func:`load_config`), with ``overrides`` on top:
    a Flask app of kdk's own, every error answered as Feathers JSON."""
    flask_app = Flask("kdk_app")
    KDK(config=config, **overrides).init_app(flask_app, standalone=True)
    return flask_app
