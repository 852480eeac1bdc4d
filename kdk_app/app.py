"""``create_app()``: read the configuration, wire the layers, return the Flask app.

This is the only module that knows every layer. The service-layer application is
``flask_app.extensions["kdk"]`` (also ``flask_app.kdk``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from .auth import configure_authentication
from .channels import Channels
from .config import deep_merge, load_config
from .connection_urls import check_connection_urls
from .core import Application
from .database import DEFAULT_HEARTBEAT_FREQUENCY_MS, DEFAULT_MAX_POOL_SIZE, DEFAULT_TIMEOUT_MS, MongoProvider
from .distributed import configure_distribution
from .gateway import configure_gateway
from .health import register_healthcheck
from .redis_client import RedisTimeouts, redis_answers
from .services.factory import build_services
from .serving import start_on_first_request
from .sync import configure_sync
from .testing import client_options_hook
from .transports.cors import CorsPolicy, install_cors
from .transports.queues import queue_emitter, queue_url
from .transports.rest import register_rest
from .transports.socketio import SocketTransport
from .web import register_web

logger = logging.getLogger(__name__)


def configure_realtime(
    flask_app: Flask, kdk: Application, settings: Mapping[str, Any], cors: CorsPolicy
) -> None:
    """Channels always; the Socket.IO server when enabled, else a write-only emitter on its queue."""
    channels = Channels(kdk)
    kdk.channels = channels  # type: ignore[attr-defined]
    kdk.event_sinks.append(channels.publish)
    socket_settings = dict(settings.get("socketio") or {})
    url = queue_url(settings)
    if socket_settings.get("enabled", True):
        # The top-level `cors` setting decides for Socket.IO too (origin check on handshake/upgrade).
        socket_settings["cors_allowed_origins"] = cors.engineio_origins()
        socket_settings["cors_credentials"] = cors.credentials
        transport = SocketTransport(flask_app, kdk, channels, socket_settings)
        flask_app.extensions["kdk_socketio"] = transport
    elif url:
        channel = socket_settings.get("channel", "kdk-socketio")
        channels.emit = queue_emitter(url, channel, RedisTimeouts.from_settings(settings))
    for configure in settings.get("channels") or ():
        configure(kdk, channels)


def create_app(config: Mapping[str, Any] | None = None, **overrides: Any) -> Flask:
    """The Flask app for ``config`` (default: :func:`load_config`), with ``overrides`` on top."""
    settings = deep_merge(dict(config) if config is not None else load_config(), overrides)
    cors = CorsPolicy.from_settings(settings)  # first: a contradictory `cors` refuses to start
    check_connection_urls(settings)  # a bad URL stops here, not later in a thread
    kdk = Application(settings)
    kdk.rest_params_builders = []  # type: ignore[attr-defined]

    mongo_settings = settings.get("mongo") or {}
    mongo = MongoProvider(
        mongo_settings.get("url"),
        database=mongo_settings.get("database"),
        timeout_ms=int(mongo_settings.get("timeout_ms") or DEFAULT_TIMEOUT_MS),
        server_selection_timeout_ms=int(mongo_settings.get("server_selection_timeout_ms") or 0) or None,
        max_pool_size=int(mongo_settings.get("max_pool_size") or DEFAULT_MAX_POOL_SIZE),
        heartbeat_frequency_ms=int(
            mongo_settings.get("heartbeat_frequency_ms") or DEFAULT_HEARTBEAT_FREQUENCY_MS
        ),
    )
    kdk.set("mongodb", mongo.database)

    if (settings.get("testing") or {}).get("client_options"):
        kdk.hooks({"before": {"all": [client_options_hook]}})
    build_services(kdk, settings.get("services"))
    for configure in settings.get("configure") or ():
        configure(kdk)
    kdk.setup()

    flask_app = Flask("kdk_app")
    flask_app.config["MAX_CONTENT_LENGTH"] = int(settings.get("max_body_size", 1024 * 1024))
    flask_app.extensions["kdk"] = kdk
    flask_app.kdk = kdk  # type: ignore[attr-defined]

    register_rest(flask_app, kdk, settings.get("api_path") or "")
    configure_realtime(flask_app, kdk, settings, cors)
    configure_authentication(kdk, flask_app, settings)
    register_web(flask_app, settings)
    flask_app.extensions["kdk_sync"] = configure_sync(kdk, settings)
    configure_distribution(flask_app, kdk, settings)  # after realtime: remote events use channels
    configure_gateway(flask_app, kdk, settings)  # last: outermost WSGI middleware
    timeout_ms = int((settings.get("healthcheck") or {}).get("timeout_ms", 1000))
    checks = [("isDatabaseRunning", lambda: mongo.health_check(timeout_ms))]
    redis_url = (settings.get("redis") or {}).get("url")
    if redis_url:
        checks.append(("isRedisRunning", lambda: redis_answers(redis_url, timeout_ms)))
    register_healthcheck(flask_app, checks)
    install_cors(flask_app, cors)  # outermost: preflights, and headers on every answer (errors too)
    start_on_first_request(flask_app)  # background work: see serving.py
    return flask_app
