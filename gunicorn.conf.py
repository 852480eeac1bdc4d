"""gunicorn settings: gevent workers (websockets through simple-websocket), bound to $PORT.

WEB_CONCURRENCY sets the number of workers. With more than one worker, Socket.IO clients
must use the websocket transport only, or each worker must run behind a sticky load
balancer (see the README, "Scaling out").
"""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8081')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gevent"
worker_connections = int(os.environ.get("KDK_WORKER_CONNECTIONS", "20000"))
# Long-lived websockets are normal: gevent workers notify the arbiter from their own greenlet.
timeout = int(os.environ.get("KDK_WORKER_TIMEOUT", "60"))
graceful_timeout = 10
keepalive = 5
# Request lines up to 8 KB (gunicorn's maximum, nginx's default): long Feathers queries fit.
limit_request_line = 8190
# Trust X-Forwarded-* from a local reverse proxy (nginx) only, unless told otherwise.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = os.environ.get("KDK_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("KDK_LOG_LEVEL", "info")
# gunicorn 27's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl): several
# servers on one machine would replace each other's. Off unless a path is given.
control_socket = os.environ.get("KDK_GUNICORN_CONTROL_SOCKET") or "gunicorn.ctl"
control_socket_disable = not os.environ.get("KDK_GUNICORN_CONTROL_SOCKET")


def post_worker_init(worker):
    # Background work (sync readers, registry heartbeats) runs in serving workers only.
    from kdk_app.serving import start_serving

    start_serving(worker.wsgi)


def worker_exit(server, worker):
    # Stop background work (sync readers, registry heartbeats) and unregister cleanly.
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", None) or {}
    kdk = extensions.get("kdk")
    if kdk is not None:
        kdk.teardown()
