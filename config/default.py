"""Default configuration of the example app. Every key is documented in the README."""

from marshmallow import Schema, fields

host = "0.0.0.0"
port = 8081
api_path = ""  # prefix of every REST route, e.g. "/api"
# Pagination for services that do not set their own; "count": False skips the total.
paginate = {"default": 10, "max": 50}
max_body_size = 1024 * 1024  # bytes; a larger request body gets 413

mongo = {
    "url": None,  # MONGO_URL / DB_URL; None: `kdk serve` starts an embedded SecantusDB
    "database": None,  # None: the database named in the URL, else "kdk"
    "embedded_path": "./var/db",  # where the embedded SecantusDB keeps its data
    "server_selection_timeout_ms": 2000,  # how long a call waits for MongoDB before 503
}
redis = {"url": None}  # REDIS_URL
healthcheck = {"timeout_ms": 1000}
testing = {"client_options": False}  # the adapter-test shim of PROTOCOL §8.3; never in production


class MessageSchema(Schema):
    text = fields.String(required=True)
    n = fields.Integer()
    tag = fields.String()


services = {
    "messages": {
        "adapter": "mongodb",
        "collection": "messages",
        "schema": MessageSchema,
        "multi": True,
        "indexes": ["tag"],
        # The example publishes messages events to every connection, logged in or not.
        "publish": lambda data, context: ["anonymous", "authenticated"],
    },
}


def _default_channels(app, channels):
    """Feathers' generated default: every connection starts in `anonymous`."""
    app.on("connection", lambda connection: channels.join(connection, "anonymous"))


channels = [_default_channels]
socketio = {
    "enabled": True,
    "path": "/socket.io",
    "cors_allowed_origins": "*",  # or a list of origins
    "channel": "kdk-socketio",  # Redis pub/sub channel of the Socket.IO message queue
}
# Cross-instance event sync for server-side listeners (Redis Streams); needs redis.url.
sync = {
    "enabled": True,
    "stream": "kdk:events",
    "retention_ms": 3_600_000,  # how far back a reconnecting instance can catch up
    "maxlen": 100_000,
    "outbox_size": 10_000,  # events kept in memory while Redis is down
}
