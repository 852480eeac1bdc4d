"""Default configuration of the example app. Every key is documented in the README."""

from marshmallow import Schema, fields

from kdk_app import auth as _auth

host = "0.0.0.0"
port = 8081
api_path = ""  # prefix of every REST route, e.g. "/api"
# Pagination for services that do not set their own; "count": False skips the total.
paginate = {"default": 10, "max": 50}
max_body_size = 1024 * 1024  # bytes; a larger request body gets 413
max_data_depth = 32  # nesting levels of objects and arrays an external call may send; deeper: 400
# Reverse proxies whose X-Forwarded-For names the client (for the throttles); FORWARDED_ALLOW_IPS
# sets it for gunicorn and the app alike. Addresses or networks, or "*" for any.
trusted_proxies = ["127.0.0.1", "::1"]

mongo = {
    "url": None,  # MONGO_URL / DB_URL; None: `kdk serve` starts an embedded SecantusDB
    "database": None,  # None: the database named in the URL, else "kdk"
    "embedded_path": "./var/db",  # where the embedded SecantusDB keeps its data
    # The bound of one service call on MongoDB (pymongo's timeoutMS): finding the server,
    # waiting for a pooled connection, connecting and every read. A down or hung MongoDB
    # answers 503 within it, requests queued behind it too.
    "timeout_ms": 1000,
    # How long a call looks for a server while all are known to be down; None: timeout_ms - 500
    # (pymongo polls in 500 ms steps), never more than timeout_ms.
    "server_selection_timeout_ms": None,
    "max_pool_size": 100,  # connections per process; more requests wait (within timeout_ms)
    # How often each process re-checks every server; after an election error the retry waits
    # for the next check, so keep it well under timeout_ms (500 is pymongo's minimum).
    "heartbeat_frequency_ms": 500,
}
redis = {
    "url": None,  # REDIS_URL
    "socket_timeout_ms": 250,  # bound of one Redis round trip on the request path
    "connect_timeout_ms": 250,  # bound of opening a Redis connection
}
healthcheck = {"timeout_ms": 1000}
# /metrics (README "Metrics"): a bearer token (KDK_METRICS__TOKEN) when set; "bind" serves it on
# that address only (gunicorn.conf.py), not on the app's.
metrics = {"enabled": True, "token": None, "bind": None, "public": True}
# /openapi.json, generated from the services, and Swagger UI at docs_path (None: no UI).
openapi = {"enabled": True, "path": "/openapi.json", "docs_path": "/docs"}
# Lines of `kdk serve` and gunicorn (README "Logging"): "text" or "json" (KDK_LOG_FORMAT), the root
# level (KDK_LOG_LEVEL) and levels per logger, e.g. {"kdk_app.sync": "DEBUG"}.
logging = {"format": "text", "level": "INFO", "levels": {}}
# The browser page at "/" (README "The browser page"); static_folder (KDK_WEB__STATIC_FOLDER)
# serves a front-end folder of your own instead: index.html at "/", the other files beside it.
web = {"enabled": True, "service": "messages", "title": "Messages", "page_size": 25, "static_folder": None}
testing = {"client_options": False}  # the adapter-test shim of docs/protocol.md §8.2; never in production


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
# CORS for REST and Socket.IO alike (README "CORS"). The default lets a page of any origin call
# the API without credentials, as a generated Feathers app does; in production list the origins.
cors = {
    "origins": "*",  # or exact origins: ["https://app.example.com", "http://localhost:5173"]
    "methods": ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"],
    "headers": None,  # allowed request headers; None: those the preflight asks for
    "expose_headers": ["Location", "X-Request-Id"],  # response headers a page may read
    "credentials": False,  # True (cookies, TLS client certs) needs an explicit origins list
    "max_age": 600,  # s, how long a browser may cache a preflight answer
}
socketio = {
    "enabled": True,
    "path": "/socket.io",
    "serve_client": True,  # GET <path>/socket.io.js (and .min.js, .map): the official client
    "channel": "kdk-socketio",  # Redis pub/sub channel of the Socket.IO message queue
    # bytes of one packet the server sends: a larger ack answers 413, a larger event is dropped
    "max_answer_size": 16 * 1024 * 1024,
}
# Cross-instance event sync for server-side listeners (Redis Streams); needs redis.url.
sync = {
    "enabled": True,
    "stream": "kdk:events",
    "retention_ms": 3_600_000,  # how far back a reconnecting instance can catch up
    "maxlen": 100_000,
    "outbox_size": 10_000,  # events kept in memory while Redis is down
    # KDK_SYNC__SECRET, the same on every instance. None: derived from distribution.secret, else
    # from JWT_SECRET; with neither, KDK_ENV=production refuses to start.
    "secret": None,
    "max_skew": 60,  # s, a signed entry's time may differ from its stream id's by this much
}

# --- Authentication and permissions (kdk_app/auth; README "Authentication") -------------------
authentication = {
    "enabled": True,
    # JWT_SECRET. None: development generates one (shared through Redis when redis.url is set)
    # and warns; KDK_ENV=production refuses to start.
    "secret": None,
    "path": "authentication",  # the service: POST/DELETE {api_path}/authentication
    "service": "users",  # the entity service
    "entity": "user",  # key of the entity in results, params and connections
    "auth_strategies": ["jwt", "local"],
    "local": {
        "username_field": "email",
        "password_field": "password",
        "normalize": True,  # strip and lower-case the username before the lookup
        "min_password_length": 8,
        # Argon2id cost (OWASP minimum); raise memory_cost/time_cost on bigger machines.
        "hash": {"time_cost": 2, "memory_cost": 19456, "parallelism": 1},
    },
    "jwt": {
        "algorithm": "HS256",
        "audience": "kdk-app",
        "issuer": "kdk-app",
        "expires_in": "1d",  # seconds, or "15m", "12h", "1d", "1w"
        "header": {"typ": "access"},
        "leeway": 0,  # seconds of clock skew tolerated on exp
    },
    "disallow_registration": False,  # True: only authenticated callers (admins) create users
    "default_role": "user",  # the role of a user created without one
    "anonymous_role": "anonymous",  # the role of callers without a token, in `permissions`
    "role_field": "role",
    "role_rooms": {"admin": "admins"},  # Socket.IO room joined at login per role (else role:<name>)
    # Local logins per email (failures per client address) in a window, then 429; and every
    # registration without a token per client address in its own window.
    "throttle": {
        "enabled": True,
        "max_attempts": 5,
        "window_seconds": 300,
        "ip_max_attempts": 100,
        "register_max_attempts": 20,
        "register_window_seconds": 3600,
    },
}
_SELF = {"_id": "$user._id"}
# role -> service -> method (or "*") -> True | condition; "$readonly": fields the role may not write.
permissions = {
    "anonymous": {"users": {"create": True, "$readonly": ["role"]}},
    "user": {
        "users": {"find": _SELF, "get": _SELF, "patch": _SELF, "remove": _SELF, "$readonly": ["role"]},
        "notes": {"*": {"owner": "$user._id"}},
    },
    "admin": "*",
}


class NoteSchema(Schema):
    text = fields.String(required=True)
    owner = fields.String()  # always the creator's user id, set by the server


services["users"] = _auth.users_service()
services["notes"] = {
    "adapter": "mongodb",
    "collection": "notes",
    "schema": NoteSchema,
    "multi": ["patch", "remove"],
    "indexes": ["owner"],
    "hooks": {
        "before": {
            "all": [_auth.authenticate("jwt"), _auth.authorize()],
            "create": [_auth.set_owner("owner")],
            "update": [_auth.set_owner("owner")],
        },
    },
    # Events only where `permissions` lets a role read the note: user:<owner> and admins.
    "publish": _auth.permission_publisher(),
}

# Distributed services across apps (feathers-distributed on Redis); off while None or without
# redis.url. Keys and defaults: kdk_app/distributed/settings.py DEFAULTS, README "Scaling out".
# The secret comes from the environment: KDK_DISTRIBUTION__SECRET (same value on every app).
distribution = None  # e.g. {"key": "kdk", "services": ["messages"], "remote_services": "*"}
# Reverse proxy (KDK's proxyTable): {"/weacast/api": {"target": "http://localhost:8082",
# "change_origin": True, "path_rewrite": {"^/weacast/api": "/api"}}}; see kdk_app/gateway.
proxy_table = {}
