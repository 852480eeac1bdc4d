"""gunicorn settings: gevent workers (websockets through simple-websocket), bound to $PORT.

WEB_CONCURRENCY sets the number of workers. With more than one worker, Socket.IO clients
must use the websocket transport only, or each worker must run behind a sticky load
balancer (see the README, "Scaling out").
"""

import os

from gunicorn.glogging import Logger

from kdk_app.config import environment_overrides
from kdk_app.logs import ACCESS_LOG_FORMAT, configure_logging, logging_config

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8081')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
# gevent, yielding between two requests of a keep-alive connection (kdk_app/gunicorn_worker.py).
worker_class = "kdk_app.gunicorn_worker.FairGeventWorker"
worker_connections = int(os.environ.get("KDK_WORKER_CONNECTIONS", "20000"))
# Long-lived websockets are normal: gevent workers notify the arbiter from their own greenlet.
timeout = int(os.environ.get("KDK_WORKER_TIMEOUT", "60"))
graceful_timeout = 10
keepalive = 5
# Request lines up to 8 KB (gunicorn's maximum, nginx's default): long Feathers queries fit.
limit_request_line = 8190
# Trust X-Forwarded-* from a local reverse proxy (nginx) only, unless told otherwise.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = os.environ.get("KDK_ACCESS_LOG") or None  # "-": stdout, or a file path
errorlog = "-"
loglevel = os.environ.get("KDK_LOG_LEVEL", "info")
# kdk's logging (kdk_app/logs.py) for gunicorn's own lines, its access lines and the app's, in
# the master and, inherited, in each worker. Only the KDK_* variables are read here: the config
# files import the app's modules, which must wait for the worker's gevent patches; each worker
# applies the whole configuration once it has loaded the app (post_worker_init).
access_log_format = ACCESS_LOG_FORMAT
logconfig_dict = logging_config(environment_overrides(os.environ), access_log=accesslog)


class _AccessLogWhenAsked(Logger):
    """gunicorn writes access lines whenever logconfig_dict is set: build them (~25 µs a request)
    only when KDK_ACCESS_LOG asks for them."""

    def access(self, resp, req, environ, request_time):
        if self.cfg.accesslog:
            super().access(resp, req, environ, request_time)


logger_class = _AccessLogWhenAsked

# Metrics of every worker in one scrape (README "Metrics"): prometheus-client's multiprocess mode
# writes each worker's values under this directory, which must exist before the workers fork.
_metrics_dir_made = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _metrics_dir_made:
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="kdk-metrics-")


def on_exit(server):
    # The directory made above goes with the server; one that was given is the owner's.
    if _metrics_dir_made:
        import shutil

        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def on_starting(server):
    # Files of an earlier run would add their counts to this one's.
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def when_ready(server):
    # metrics.bind ("127.0.0.1:9100"): the master serves every worker's metrics there alone.
    address = os.environ.get("KDK_METRICS__BIND")
    if address:
        from prometheus_client import CollectorRegistry, multiprocess, start_http_server

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        host, _, port = address.rpartition(":")
        start_http_server(int(port), addr=host or "0.0.0.0", registry=registry)


def child_exit(server, worker):
    # A dead worker's live gauges (open connections) stop counting.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# gunicorn 27's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl): several
# servers on one machine would replace each other's. Off unless a path is given.
control_socket = os.environ.get("KDK_GUNICORN_CONTROL_SOCKET") or "gunicorn.ctl"
control_socket_disable = not os.environ.get("KDK_GUNICORN_CONTROL_SOCKET")


def post_worker_init(worker):
    # Background work (sync readers, registry heartbeats) runs in serving workers only.
    from kdk_app.serving import kdk_of, start_serving

    configure_logging(kdk_of(worker.wsgi).settings, access_log=accesslog)
    start_serving(worker.wsgi)


def worker_exit(server, worker):
    # Stop background work (sync readers, registry heartbeats) and unregister cleanly.
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", None) or {}
    kdk = extensions.get("kdk")
    if kdk is not None:
        kdk.teardown()
