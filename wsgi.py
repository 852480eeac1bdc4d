"""The WSGI entry point for gunicorn: `gunicorn -c gunicorn.conf.py wsgi:app`."""

# Patch before anything else is imported, so that pymongo, redis and sockets cooperate.
from gevent import monkey

monkey.patch_all()

from kdk_app.app import create_app  # noqa: E402

app = create_app()
