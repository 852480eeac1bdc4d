"""The authentication service's operations (``kdk_app/auth/service.py``): log in, log out.

``POST {api_path}/authentication`` with a strategy answers an access token (``local``: the
username and password fields of ``authentication.local``; ``jwt``: a token to check); ``DELETE``
(with the token, or with it as the id) logs out. Its shapes are not a marshmallow schema, so
they are written here from the service's own settings.
"""

from __future__ import annotations

from typing import Any

from .schemas import error_response
from .security import REQUIRED
from .services import rest_prefix


def authentication_paths(auth: Any, path: str, api_path: str) -> dict[str, dict[str, Any]]:
    prefix, _ = rest_prefix(api_path, path)
    request: dict[str, Any] = {
        "type": "object",
        "required": ["strategy"],
        "properties": {
            "strategy": {"type": "string", "enum": list(auth.strategies)},
            "accessToken": {"type": "string", "description": "strategy jwt"},
            auth.username_field: {"type": "string", "description": "strategy local"},
            auth.password_field: {"type": "string", "description": "strategy local"},
        },
    }
    result = {
        "type": "object",
        "required": ["accessToken", "authentication", auth.entity],
        "properties": {
            "accessToken": {"type": "string"},
            "authentication": {"type": "object", "required": ["strategy"]},
            auth.entity: {"type": "object"},
        },
    }

    def answer(description: str, codes: tuple[int, ...]) -> dict[str, Any]:
        responses: dict[str, Any] = {
            "200" if "out" in description else "201": {
                "description": description,
                "content": {"application/json": {"schema": result}},
            }
        }
        responses.update({str(code): error_response(code) for code in codes})
        return responses

    tags = [path]
    create = {
        "tags": tags,
        "summary": "Log in: an access token for the credentials of the strategy",
        "operationId": f"{path}.create",
        "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
        # a bad token or bad credentials are 401; the login throttle answers 429
        "responses": answer("Logged in", (400, 401, 413, 429, 500, 503)),
    }
    remove: dict[str, Any] = {
        "tags": tags,
        "summary": "Log out (the token of the Authorization header)",
        "security": REQUIRED,
        "responses": answer("Logged out", (400, 401, 500, 503)),
    }
    id_param = {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The access token itself (or any id: the header's token is checked)",
        "schema": {"type": "string", "pattern": "^[^/]+$"},
    }
    return {
        prefix: {"post": create, "delete": {**remove, "operationId": f"{path}.removeMany"}},
        f"{prefix.rstrip('/')}/{{id}}": {
            "delete": {
                **remove,
                "operationId": f"{path}.remove",
                "parameters": [id_param],
                # an id no route can take (a newline, an encoded "/") is a 404 before the service
                "responses": {**remove["responses"], "404": error_response(404)},
            }
        },
    }
