"""The users service: schema and a ready service spec for ``config.services``."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, pre_load

from .channels import permission_publisher
from .hooks import user_hooks


class UserSchema(Schema):
    """A user: unique email (stored lower-case), Argon2id password hash, role, display name."""

    class Meta:
        unknown = RAISE

    email = fields.Email(required=True)
    password = fields.String(required=True)
    role = fields.String()
    name = fields.String()

    @pre_load
    def normalize_email(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("email"), str):
            data = {**data, "email": data["email"].strip().lower()}
        return data


def users_service(
    *,
    collection: str = "users",
    schema: Any = UserSchema,
    password_field: str = "password",
    **options: Any,
) -> dict[str, Any]:
    """The spec of a MongoDB users service: unique email, hashed and hidden password, the
    user hooks of ``hooks.user_hooks`` and events only to the user and admins."""
    spec: dict[str, Any] = {
        "adapter": "mongodb",
        "collection": collection,
        "schema": schema,
        "indexes": [{"keys": "email", "unique": True}],
        "protected_fields": [password_field],
        "hooks": user_hooks(password_field),
        "publish": permission_publisher(),
    }
    spec.update(options)
    return spec
