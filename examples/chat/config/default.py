"""The Feathers chat guide's server (feathers-chat) on kdk-app: users, messages, channels, public/.

    KDK_CONFIG_DIR=examples/chat/config kdk serve    # then open http://localhost:8081/

Every setting not named here is kdk's shipped default. Fields are named as in the guide
(createdAt, userId), since its client reads those names off the wire.
"""

import hashlib
import time
from pathlib import Path

import marshmallow
from marshmallow import fields, validate

import kdk_app as kdk
from kdk_app import auth
from kdk_app.config import shipped_defaults as _shipped_defaults

_shipped = _shipped_defaults()
globals().update(_shipped)
mongo = {**_shipped["mongo"], "database": "feathers_chat"}  # apart from the default app's data
web = {"enabled": True, "static_folder": str(Path(__file__).resolve().parents[1] / "public")}


# --- users (the guide's users.schema.ts and users.ts) ------------------------------------------
class UserSchema(auth.UserSchema):  # email: unique, lower-cased; password: hashed, never sent
    avatar = fields.String()
    githubId = fields.Integer()


def _gravatar(value, user, context):
    if value:
        return value
    email = str(user.get("email", "")).strip().lower()
    return f"https://s.gravatar.com/avatar/{hashlib.md5(email.encode()).hexdigest()}?s=60"


_METHODS = ["find", "get", "create", "patch", "remove"]  # the guide's: no update
_users = auth.users_service(schema=UserSchema, methods=_METHODS, publish=None)  # events: app.publish
_users["hooks"]["before"]["create"].append(kdk.resolve_data({"avatar": _gravatar}))


# --- messages (the guide's messages.schema.ts and messages.ts) ---------------------------------
class MessageSchema(marshmallow.Schema):
    class Meta:
        unknown = marshmallow.EXCLUDE  # nothing but these fields is stored

    text = fields.String(required=True, validate=validate.Length(max=400))
    createdAt = fields.Integer()  # ms since the epoch, set by the server
    userId = fields.Raw()  # the author's id, set by the server


def _own_only(value, query, context):
    # As the guide's query resolver: all messages can be found, only one's own changed.
    user = context.params.get("user")
    return user["_id"] if user and context.method != "find" else value


_message_data = {
    "userId": lambda value, message, context: context.params["user"]["_id"],
    "createdAt": lambda value, message, context: int(time.time() * 1000),
}
services = {
    "users": _users,
    "messages": {
        "adapter": "mongodb",
        "collection": "messages",
        "schema": MessageSchema,
        "indexes": ["createdAt"],
        "methods": _METHODS,
        "hooks": {
            # One users find per page, whatever the number of messages.
            "around": {"all": [kdk.resolve_result({"user": kdk.populate("users", key="userId")})]},
            "before": {
                "all": [auth.authenticate("jwt"), kdk.resolve_query({"userId": _own_only})],
                "create": [kdk.resolve_data(_message_data)],
                "patch": [kdk.prevent_changes("userId", "createdAt")],  # the text alone may change
            },
        },
    },
}
# Anyone may register; find/get/patch/remove of users need a token and see only the caller.
_SELF = {"_id": "$user._id"}
permissions = {
    "anonymous": {"users": {"create": True, "$readonly": ["role"]}},
    "user": {"users": {"find": _SELF, "get": _SELF, "patch": _SELF, "remove": _SELF, "$readonly": ["role"]}},
}


# --- channels (the guide's channels.ts, line by line) ------------------------------------------
def _channels(app, channels):
    app.on("connection", lambda connection: app.channel("anonymous").join(connection))

    def on_login(auth_result, params):
        if params.get("connection"):  # none when the login came over REST
            app.channel("anonymous").leave(params["connection"])
            app.channel("authenticated").join(params["connection"])

    app.on("login", on_login)
    app.publish(lambda data, context: app.channel("authenticated"))


channels = [_channels]
