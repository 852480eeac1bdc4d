"""gunicorn settings for the bench's apps that are not kdk-app (hand-written views, the floor).

The settings of the repo's gunicorn.conf.py, read from it, so every server runs the same
gevent layout; only its ``post_worker_init``, which starts kdk-app's background work and
refuses any other app, runs for kdk-app apps alone.

    gunicorn -c bench/rest_gunicorn_conf.py -w 2 -k gevent bench.rest_app_floor:app
"""

from pathlib import Path

_CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
# Executed here rather than imported: gunicorn reads the settings from this file's globals.
exec(compile(_CONF.read_text(), str(_CONF), "exec"))  # noqa: S102

_kdk_post_worker_init = globals()["post_worker_init"]


def post_worker_init(worker):  # noqa: F811 - replaces the one read above
    if "kdk" in (getattr(worker.wsgi, "extensions", None) or {}):
        _kdk_post_worker_init(worker)
