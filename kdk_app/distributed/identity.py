"""Who a remote call runs as on the provider: never the user a consumer had cached.

* With the caller's credentials (``authentication``: a socket login's or a REST request's
  token), the provider gets them as ``params["authentication"]``, unverified: its own
  ``authenticate``/``authorize`` hooks verify the token and load the user from its users
  service on every call, so a deleted or demoted user takes effect at once.
* A server-side call with a ``user`` object and no token: when this app has authentication,
  the user is loaded again by id (gone: 401); without authentication nothing here checks users
  and the claims stand as the calling app's own trust (the envelope's signature only proves it
  came from an app of the key).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core import Application


def caller_identity(app: Application, body: Mapping[str, Any]) -> dict[str, Any]:
    """The identity params of one call envelope; raises NotAuthenticated for a user now gone."""
    authentication = body.get("authentication")
    if isinstance(authentication, dict) and authentication:
        return {"authentication": {k: v for k, v in authentication.items() if k != "payload"}}
    claims = body.get("user")
    if not isinstance(claims, dict):
        return {}
    auth = getattr(app, "authentication", None)
    if auth is None:
        return {"user": claims, "authenticated": True}
    return {"user": auth.load_user(auth.user_id(claims)), "authenticated": True}
