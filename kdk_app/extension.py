"""kdk-app as a Flask extension: ``KDK(flask_app)``, or ``kdk = KDK(); kdk.init_app(flask_app)``.

It reads the configuration, builds the service-layer :class:`Application` (services, hooks,
MongoDB), then adds each layer as a :class:`~kdk_app.parts.Part`, in the order their
declarations give. ``create_app`` is this on a Flask app of its own; in a host app, kdk answers
errors as Feathers JSON on its own routes only, and the host's pages stay as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask

from .auth import configure_authentication
from .config import deep_merge, load_config
from .connection_urls import check_connection_urls
from .core import Application
from .database import DEFAULT_HEARTBEAT_FREQUENCY_MS, DEFAULT_MAX_POOL_SIZE, DEFAULT_TIMEOUT_MS, MongoProvider
from .distributed import configure_distribution
from .gateway import configure_gateway
from .health import register_healthcheck, register_livez
from .metrics import install_metrics
from .openapi import install_openapi
from .parts import Part, ordered
from .readiness import readiness_probes, register_readyz
from .realtime import configure_realtime
from .redis_client import redis_answers
from .request_id import install_request_id
from .services.factory import build_services
from .serving import start_on_first_request
from .sync import configure_sync
from .sync.brokers import broker_kind
from .testing import client_options_hook
from .transports.cors import CorsPolicy, install_cors
from .transports.rest import register_rest
from .web import register_web

logger = logging.getLogger(__name__)


def mongo_provider(settings: Mapping[str, Any]) -> MongoProvider:
    mongo_settings = settings.get("mongo") or {}
    return MongoProvider(
        mongo_settings.get("url"),
        database=mongo_settings.get("database"),
        timeout_ms=int(mongo_settings.get("timeout_ms") or DEFAULT_TIMEOUT_MS),
        server_selection_timeout_ms=int(mongo_settings.get("server_selection_timeout_ms") or 0) or None,
        max_pool_size=int(mongo_settings.get("max_pool_size") or DEFAULT_MAX_POOL_SIZE),
        heartbeat_frequency_ms=int(
            mongo_settings.get("heartbeat_frequency_ms") or DEFAULT_HEARTBEAT_FREQUENCY_MS
        ),
    )


def build_application(settings: dict[str, Any]) -> tuple[Application, MongoProvider]:
    """The service layer alone: settings, MongoDB, services, app hooks, ``configure`` callbacks."""
    kdk = Application(settings)
    mongo = mongo_provider(settings)
    kdk.set("mongodb", mongo.database)
    if (settings.get("testing") or {}).get("client_options"):
        kdk.hooks({"before": {"all": [client_options_hook]}})
    build_services(kdk, settings.get("services"))
    for configure in settings.get("configure") or ():
        configure(kdk)
    kdk.setup()
    return kdk, mongo


# --- the parts ---------------------------------------------------------------------------------


def _rest(flask_app: Flask, kdk: Application, settings: Mapping[str, Any]) -> None:
    standalone = bool(flask_app.extensions.get("kdk_standalone"))
    register_rest(flask_app, kdk, settings.get("api_path") or "", all_errors=standalone)


def _realtime(flask_app: Flask, kdk: Application, settings: Mapping[str, Any]) -> None:
    configure_realtime(flask_app, kdk, settings, flask_app.extensions["kdk_cors_policy"])


def _authentication(flask_app: Flask, kdk: Application, settings: Mapping[str, Any]) -> None:
    configure_authentication(kdk, flask_app, settings)


def _web(flask_app: Flask, kdk: Application, settings: Mapping[str, Any]) -> None:
    if not flask_app.extensions.get("kdk_standalone"):
        # The page takes "/" and the static folder: a host app's own, not ours to change.
        logger.info("web page not mounted: kdk was added to an app of its own")
        return
    register_web(flask_app, settings, kdk.services)


def _sync(flask_app: Flask, kdk: Application, settings: Mapping[str, Any]) -> None:
    flask_app.extensions["kdk_sync"] = configure_sync(kdk, settings)


def _distribution(flask_app: Flask, kdk: Application, settings: Mapping[str, Any]) -> None:
    configure_distribution(flask_app, kdk, settings)


def _gateway(flask_app: Flask, kdk: Application, settings: Mapping[str, Any]) -> None:
    configure_gateway(flask_app, kdk, settings)


def _health(flask_app: Flask, kdk: Application, settings: Mapping[str, Any]) -> None:
    mongo: MongoProvider = flask_app.extensions["kdk_mongo"]
    timeout_ms = int((settings.get("healthcheck") or {}).get("timeout_ms", 1000))
    checks: list[Any] = [("isDatabaseRunning", lambda: mongo.health_check(timeout_ms))]
    redis_url = (settings.get("redis") or {}).get("url")
    if redis_url:
        checks.append(("isRedisRunning", lambda: redis_answers(redis_url, timeout_ms)))
    probes = readiness_probes(flask_app, settings, timeout_ms)
    sync_url = str((settings.get("sync") or {}).get("url") or "")
    if sync_url and broker_kind(sync_url) != "redis":
        # A broker of its own (RabbitMQ, NATS): isRedisRunning says nothing about it. The bus's
        # own state, as /readyz reads it, with no round trip.
        checks.append(("isSyncRunning", lambda: probes["sync"]()[0]))
    register_healthcheck(flask_app, checks)
    register_livez(flask_app)
    register_readyz(flask_app, probes, timeout_ms)


def _cors(flask_app: Flask, kdk: Application, settings: Mapping[str, Any]) -> None:
    install_cors(flask_app, flask_app.extensions["kdk_cors_policy"])


# Middlewares wrap what is there when they are added: the gateway wraps the app (and the
# Socket.IO dispatch), CORS wraps everything, errors included.
DEFAULT_PARTS = (
    Part("rest", _rest),
    Part("realtime", _realtime),
    Part("authentication", _authentication, after=("realtime", "rest")),
    Part("web", _web, after=("rest",)),  # a service mounted at "/" owns the root
    Part("sync", _sync),
    Part("distribution", _distribution, after=("realtime", "rest")),  # remote events use channels
    Part("health", _health),
    Part("gateway", _gateway, after=("rest", "realtime", "authentication", "web", "distribution", "health")),
    Part("cors", _cors, after=("gateway",)),
    # Counts what the other layers do (sync bus, distribution, channels): after them.
    Part("metrics", install_metrics, after=("rest", "realtime", "sync", "distribution", "health")),
    Part("openapi", install_openapi, after=("rest", "authentication", "health")),  # documents their routes
    # Outermost: every layer's log lines carry the request id, CORS answers return it too.
    Part("request_id", install_request_id, after=("cors",)),
)


class KDK:
    """kdk-app on a Flask app: ``KDK(flask_app, config, **overrides)`` or ``init_app`` later.

    ``config`` defaults to :func:`~kdk_app.config.load_config`; ``overrides`` go on top.
    ``parts`` replaces the list of layers (default: :data:`DEFAULT_PARTS`).
    """

    def __init__(
        self,
        flask_app: Flask | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        parts: Iterable[Part] | None = None,
        **overrides: Any,
    ) -> None:
        self.config = config
        self.overrides = overrides
        self.parts = ordered(DEFAULT_PARTS if parts is None else parts)
        self.application: Application | None = None
        if flask_app is not None:
            self.init_app(flask_app)

    def init_app(self, flask_app: Flask, *, standalone: bool = False) -> Application:
        """Add kdk to ``flask_app``; ``standalone``: the app is kdk's alone (every error is JSON)."""
        settings = deep_merge(dict(self.config) if self.config is not None else load_config(), self.overrides)
        cors = CorsPolicy.from_settings(settings)  # first: a contradictory `cors` refuses to start
        check_connection_urls(settings)  # a bad URL stops here, not later in a thread
        kdk, mongo = build_application(settings)
        # Flask's default is None (no limit): kdk's applies unless a host app set its own.
        if standalone or flask_app.config.get("MAX_CONTENT_LENGTH") is None:
            flask_app.config["MAX_CONTENT_LENGTH"] = int(settings.get("max_body_size", 1024 * 1024))
        flask_app.extensions["kdk"] = kdk
        flask_app.extensions["kdk_cors_policy"] = cors
        flask_app.extensions["kdk_mongo"] = mongo
        flask_app.extensions["kdk_standalone"] = standalone
        for part in self.parts:
            part.init_app(flask_app, kdk, settings)
        start_on_first_request(flask_app)  # background work: see serving.py
        self.application = kdk
        return kdk
