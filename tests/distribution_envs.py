"""The environments of the distribution tests' three instances (A serves ``messages``, B
``catalog``, C consumes both) and their ``/distribution/stats``; heartbeat 1 s and TTL 3 s keep
the timings short.
"""

from __future__ import annotations

import json

import requests
from accounts import mint, unique_email
from pymongo import MongoClient

SECRET = "distribution-test-secret"
JWT_SECRET = "distribution-test-jwt-secret-" + "j" * 40
HEARTBEAT, TTL = 1.0, 3.0


def instance_env(redis_url, key, db, *, exposes, extra=None):
    env = {
        "REDIS_URL": redis_url,
        "KDK_MONGO__DATABASE": db,
        "KDK_CONFIGURE": "[]",  # the test config's listener needs a local messages service
        "KDK_DISTRIBUTION__KEY": key,
        "KDK_DISTRIBUTION__SECRET": SECRET,
        "JWT_SECRET": JWT_SECRET,
        "KDK_DISTRIBUTION__HEARTBEAT_INTERVAL": str(HEARTBEAT),
        "KDK_DISTRIBUTION__TTL": str(TTL),
        "KDK_DISTRIBUTION__TIMEOUT": "10",
        "KDK_DISTRIBUTION__SERVICES": json.dumps(exposes),
    }
    env.update(extra or {})
    return env


def a_env(redis_url, key, db):
    return instance_env(redis_url, key, db, exposes=["messages"])


def b_env(redis_url, key, db):
    extra = {"KDK_SERVICES__MESSAGES": "null", "KDK_SERVICES__CATALOG": json.dumps({"adapter": "memory"})}
    return instance_env(redis_url, key, db, exposes=["catalog"], extra=extra)


def c_env(redis_url, key, db, *, own_channel=True, remote=None):
    extra = {"KDK_SERVICES__MESSAGES": "null", "KDK_DISTRIBUTION__PUBLISH": '["anonymous"]'}
    if own_channel:  # else C shares A's Socket.IO message queue (the default channel)
        extra["KDK_SOCKETIO__CHANNEL"] = f"c-sockets-{key}"
    if remote is not None:
        extra["KDK_DISTRIBUTION__REMOTE_SERVICES"] = json.dumps(remote)
    return instance_env(redis_url, key, db, exposes=[], extra=extra)


def admin_token(server):
    """A token of an admin in the server's database: /distribution/stats is for admins."""
    token = getattr(server, "admin_token", None)
    if token is None:
        env = server.process.env
        with MongoClient(env["MONGO_URL"]) as client:
            users = client[env["KDK_MONGO__DATABASE"]].users
            admin = {"email": unique_email("stats-admin"), "role": "admin"}
            token = server.admin_token = mint(str(users.insert_one(admin).inserted_id), secret=JWT_SECRET)
    return token


def stats(server):
    headers = {"Authorization": f"Bearer {admin_token(server)}"}
    return requests.get(server.url + "/distribution/stats", headers=headers, timeout=5).json()


def mounted(server):
    return set(stats(server)["mounted"])
