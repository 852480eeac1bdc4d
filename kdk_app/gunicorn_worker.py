"""gunicorn's gevent worker, made fair between keep-alive connections and quick to stop.

A gevent greenlet runs until it blocks. gunicorn's keep-alive loop reads the next request as soon
as it has answered one, and a busy client (a browser's next call, a load generator, a pipelined
batch) usually has it there already, so the read does not block: one connection is served again
and again while the others wait, for seconds under load (p50 1 ms, p99 1-2 s on 32 connections).
Yielding once between two requests of a connection, through a timer so that the loop polls for
I/O first (kdk_app/turns.py), lets every ready connection take its turn, as Node's event loop
does. The workers share one listening socket, and each takes its share of the connections
waiting there at each turn (kdk_app/listen_queue.py), so a burst of new connections is neither
left for many busy turns nor taken by one worker alone. The arbiter imports this module: it
imports gevent only, not the app.

gunicorn's own loop looks at its ``alive`` flag once a second, and again once a second while it
drains, so every graceful stop (a deploy, a restart, ``kill -TERM``) cost each worker a second
or two of doing nothing. This one wakes on SIGTERM and checks the drain ten times a second.
A keep-alive connection that sits between two requests held the drain too, until its keep-alive
timeout ran out (5 s): on SIGTERM such idle connections (plain TCP and TLS) are now closed at
once, as Node's ``server.close()`` does, while a connection that has read part of a request still
gets its answer.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import gevent
from gevent.event import Event
from gevent.pool import Pool
from gevent.ssl import SSLContext
from gunicorn.sock import ssl_context
from gunicorn.workers.ggevent import GeventWorker

from . import gunicorn_response
from .turns import take_turns
from .watched_connections import IdleWatch, WatchedTLSConnection, WatchingServer

# How often the worker tells the arbiter it is alive while serving (gunicorn's own interval).
HEARTBEAT_S = 1.0
# How often a stopping worker looks whether its last requests are done.
DRAIN_POLL_S = 0.1


class FairGeventWorker(GeventWorker):
    """``-k gevent`` with one yield to the hub after each request, a share of the waiting
    connections accepted per turn, one write per response and a quick graceful stop
    (gunicorn.conf.py's default)."""

    def init_process(self) -> None:
        self._exit_asked = Event()
        self._connections: set[IdleWatch] = set()
        gunicorn_response.install()  # one write per response, in this worker process only
        super().init_process()

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        if not isinstance(client, IdleWatch):
            return super().handle(listener, client, addr)
        client.idle = True
        self._connections.add(client)
        try:
            super().handle(listener, client, addr)
        finally:
            self._connections.discard(client)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        # Set from a greenlet of its own, not inside the signal handler (as gunicorn's handle_quit).
        gevent.spawn(self._exit_asked.set)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        if isinstance(sock, IdleWatch):
            sock.idle = False
        keep_reading = super().handle_request(listener_name, req, sock, addr)
        take_turns()  # through a timer, so that the loop polls first
        if isinstance(sock, IdleWatch):
            # Set after the yield: a pipelined request already buffered is parsed with no yield
            # in between, so a stop never sees it as idle.
            sock.idle = True
        return keep_reading

    def run(self) -> None:
        servers = [self._serve(listener) for listener in self.sockets]
        while self.alive:
            self.notify()
            self._exit_asked.wait(HEARTBEAT_S)
        for server in servers:
            server.close()  # no new connections; the ones open finish their request
        self.close_idle_connections()
        self.announce_stop()
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while any(server.pool.free_count() != server.pool.size for server in servers):
            if time.monotonic() >= deadline:
                self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
                for server in servers:
                    server.stop(timeout=1)
                return
            self.notify()
            gevent.sleep(DRAIN_POLL_S)
            # Again on each poll: a connection that was answering its last request when the
            # signal came only turns idle after its turn (kdk_app/turns.py).
            self.close_idle_connections()

    def close_idle_connections(self) -> None:
        for connection in list(self._connections):
            connection.close_if_idle()

    def announce_stop(self) -> None:
        """Let a kdk-app close its websockets and long polls, which would otherwise hold the
        drain until graceful_timeout (imported late: the arbiter loads this module too)."""
        if "kdk" in (getattr(self.wsgi, "extensions", None) or {}):
            from .serving import begin_stop

            begin_stop(self.wsgi)

    def _serve(self, listener: Any) -> WatchingServer:
        """What gunicorn's gevent worker starts per listening socket (its server_class is None)."""
        listener.setblocking(1)
        tls = {"ssl_context": self._watching_ssl_context()} if self.cfg.is_ssl else {}
        pool = Pool(self.worker_connections)
        server = WatchingServer(listener, handle=partial(self.handle, listener), spawn=pool, **tls)
        # Workers share the listener: a share of what waits each turn, not gevent's 100 (one
        # worker would take a whole burst) nor one (a burst would wait many busy turns).
        server.sharing_workers = self.cfg.workers
        server.start()
        return server

    def _watching_ssl_context(self) -> Any:
        """gunicorn's TLS context, wrapping accepted connections as WatchedTLSConnection (a
        context from a user's own ``ssl_context`` hook that is not gevent's stays as it is)."""
        context = ssl_context(self.cfg)
        if isinstance(context, SSLContext):
            context.sslsocket_class = WatchedTLSConnection
        return context
