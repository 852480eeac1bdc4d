"""How commands get the app: Flask's ``--app`` when given, else ``create_app()`` on kdk's
configuration. Built, never served: no command here calls ``start_serving``."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from flask import Flask
from flask.cli import NoAppException, ScriptInfo, locate_app, prepare_import

from ..serving import kdk_of

logger = logging.getLogger(__name__)

T = TypeVar("T")

EMBEDDED_DEFAULT_PATH = "./var/db"


def script_info() -> ScriptInfo:
    return click.get_current_context().ensure_object(ScriptInfo)


def _build(build: Callable[..., T], *args: Any) -> T:
    try:
        return build(*args)
    except (NoAppException, click.ClickException):
        raise
    except Exception as exc:
        logger.debug("building the app failed", exc_info=True)
        raise click.ClickException(f"could not build the app: {type(exc).__name__}: {exc}") from exc


def _import_app(import_path: str) -> Flask:
    # Flask's own reading of --app (ScriptInfo.load_app), which a create_app callback bypasses.
    path, name = (re.split(r":(?![\\/])", import_path, maxsplit=1) + [None])[:2]
    return locate_app(prepare_import(path), name)


def load_app() -> Flask:
    """FlaskGroup's ``create_app``: the ``--app`` (``FLASK_APP``) import path, else ``create_app()``."""
    import_path = script_info().app_import_path
    if import_path:
        # Imported first: a module like wsgi.py patches with gevent before the app is imported.
        return _build(_import_app, import_path)
    from ..app import create_app

    return _build(create_app)


def start_embedded_database(path: str) -> tuple[Any, str]:
    """The embedded SecantusDB on ``path`` (as ``kdk serve`` starts it): ``(process, url)``."""
    from ..embedded import start_secantusdb

    try:
        return start_secantusdb(path)
    except RuntimeError as exc:
        if "already being managed by another process" in str(exc):
            raise click.ClickException(
                f"the embedded database in {path} is in use by another process (a running "
                "`kdk serve`?): stop it, or set MONGO_URL to the MongoDB it should use"
            ) from None
        raise click.ClickException(f"could not start the embedded database in {path}: {exc}") from None


@contextmanager
def app_on_database() -> Iterator[Flask]:
    """The app for a command that reads or writes data, torn down afterwards.

    With no MongoDB URL configured, that is the embedded SecantusDB in ``mongo.embedded_path``,
    the one ``kdk serve`` uses, started for the command and stopped after it.
    """
    info = script_info()
    embedded = None
    if info.app_import_path:
        flask_app = info.load_app()  # the given app, on whatever database it is configured with
    else:
        from ..app import create_app
        from ..config import load_config

        config = _build(load_config)
        mongo: dict[str, Any] = config.setdefault("mongo", {})
        if not mongo.get("url"):
            path = mongo.get("embedded_path") or EMBEDDED_DEFAULT_PATH
            embedded, mongo["url"] = start_embedded_database(path)
        try:
            flask_app = _build(create_app, config)
        except BaseException:
            if embedded is not None:
                embedded.stop()
            raise
    try:
        yield flask_app
    finally:
        try:
            kdk_of(flask_app).teardown()
        finally:
            if embedded is not None:
                embedded.stop()
