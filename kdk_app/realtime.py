"""The real-time layer: channels always, and the Socket.IO server, or without one a write-only
emitter on the message queue."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from .channels import ChannelEmitter, Channels
from .core import Application
from .redis_client import RedisTimeouts
from .transports.cors import CorsPolicy
from .transports.queues import queue_emitter, queue_url
from .transports.socketio import SocketTransport


def configure_realtime(
    flask_app: Flask, kdk: Application, settings: Mapping[str, Any], cors: CorsPolicy
) -> None:
    """Channels always; the Socket.IO server when enabled, else a write-only emitter on its queue."""
    channels = Channels(kdk)
    kdk.channels = channels
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
        channels.emitters.append(
            ChannelEmitter(queue_emitter(url, channel, RedisTimeouts.from_settings(settings)))
        )
    for configure in settings.get("channels") or ():
        configure(kdk, channels)
