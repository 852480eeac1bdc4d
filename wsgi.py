"""The WSGI entry point for gunicorn: `gunicorn -c gunicorn.conf.py wsgi:app`."""

# Patch before anything else is imported, so that pymongo, redis and sockets cooperate.
from gevent import monkey

monkey.patch_all()

from gunicorn.errors import AppImportError  # noqa: E402

from kdk_app.app import create_app  # noqa: E402
from kdk_app.config_check import ConfigError  # noqa: E402

try:
    app = create_app()
except ConfigError as exc:  # one line, and gunicorn halts ("App failed to load") instead of a traceback
    raise AppImportError(str(exc)) from None
