"""Admin-only HTTP endpoints outside the services: who may call them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core import Application
from ..core.errors import Forbidden, NotAuthenticated
from .realtime import token_from_header

ADMIN_ROLE = "admin"


def require_admin(kdk: Application, authorization: Any) -> Mapping[str, Any] | None:
    """The caller's user when ``authorization`` holds a valid token of a user who has the admin
    role now (the user is loaded at each call, so a demoted admin is refused at once).

    401 NotAuthenticated without a valid token, 403 Forbidden for any other role. An app without
    authentication has no users and no admins: None, and the endpoint is open.
    """
    service = kdk.authentication
    if service is None:
        return None
    token = token_from_header(authorization)
    if not token:
        raise NotAuthenticated("Not authenticated")
    user = service.jwt(token)[service.entity]
    if service.permissions.role_of(user) != ADMIN_ROLE:
        raise Forbidden("Only admins may read this")
    return user
