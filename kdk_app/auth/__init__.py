"""Authentication and authorization: the ``authentication`` service (local + jwt strategies,
docs/protocol.md §5), hooks (``authenticate``, ``authorize``, ``set_owner`` …), role permissions as
MongoDB-style conditions, socket login state with expiry, and login throttling.

Wired by ``configure_authentication(kdk, flask_app, settings)``; see the README,
"Authentication and permissions".
"""

from .channels import owner_publisher, permission_publisher
from .configure import configure_authentication, resolve_secret
from .hooks import (
    allow_registration,
    authenticate,
    authorize,
    hash_password,
    protect,
    set_owner,
    throttle_registration,
    user_hooks,
    validate_role,
)
from .passwords import Passwords
from .permissions import Permissions
from .realtime import SocketAuth, token_from_header, user_room
from .service import AuthenticationService
from .throttle import LoginThrottle
from .tokens import TokenManager, parse_duration
from .users import UserSchema, users_service

__all__ = [
    "AuthenticationService",
    "LoginThrottle",
    "Passwords",
    "Permissions",
    "SocketAuth",
    "TokenManager",
    "UserSchema",
    "allow_registration",
    "authenticate",
    "authorize",
    "configure_authentication",
    "hash_password",
    "owner_publisher",
    "parse_duration",
    "permission_publisher",
    "protect",
    "resolve_secret",
    "set_owner",
    "throttle_registration",
    "token_from_header",
    "user_hooks",
    "user_room",
    "users_service",
    "validate_role",
]
