"""``kdk users create EMAIL``: a user made the way registration makes one, with any role.

The first admin of a fresh deployment: the call goes through the users service with no
provider, as any server-side call does, so its hooks (role check, Argon2id hashing with the
configured cost, password never returned) run exactly as for a registration.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import click

from ..core.errors import FeathersError
from ..serving import kdk_of
from .apps import app_on_database

MAX_PASSWORD_LENGTH = 1024  # the hash_password hook's bound


@click.group("users")
def users() -> None:
    """Manage the users of the authentication service."""


def _error_text(error: FeathersError) -> str:
    if isinstance(error.errors, Mapping):
        details = "; ".join(
            f"{field}: {' '.join(map(str, messages)) if isinstance(messages, list) else messages}"
            for field, messages in error.errors.items()
        )
        return f"{error.message} ({details})"
    return error.message


def _exists(users_service: Any, field: str, value: str) -> bool:
    found = users_service.find({"query": {field: value, "$limit": 1}})
    records = found.get("data", []) if isinstance(found, Mapping) else found
    return bool(records)


def read_password(password_stdin: bool, password_option: str | None) -> str:
    """From stdin's first line, from ``--password`` (with a warning), or asked twice on the terminal."""
    if password_option is not None:
        click.echo(
            "kdk users create: warning: a password given with --password is visible to other "
            "users (ps) and kept in shell history; prefer the prompt or --password-stdin",
            err=True,
        )
        return password_option
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on standard input")
        return password
    return click.prompt("Password", hide_input=True, confirmation_prompt="Repeat the password")


def _create(
    auth: Any, username: str, role: str, name: str | None, password_stdin: bool, password_option: str | None
) -> dict[str, Any]:
    service = auth.users
    # Before asking for a password, not after; the unique index still catches a race.
    if _exists(service, auth.username_field, username):
        raise click.ClickException(f"a user with {auth.username_field} {username} already exists")
    password = read_password(password_stdin, password_option)
    minimum = int((auth.settings.get("local") or {}).get("min_password_length", 8))
    if not minimum <= len(password) <= MAX_PASSWORD_LENGTH:
        raise click.ClickException(f"a password has {minimum} to {MAX_PASSWORD_LENGTH} characters")
    data: dict[str, Any] = {auth.username_field: username, auth.password_field: password}
    data[auth.permissions.role_field] = role
    if name:
        data["name"] = name
    return service.create(data, {})  # no provider: a server-side call, every hook runs


@users.command("create")
@click.argument("email")
@click.option("--role", help="one of the roles of `permissions` (default: authentication.default_role)")
@click.option("--name", help="display name")
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
@click.option(
    "--password",
    "password_option",
    metavar="PASSWORD",
    help="the password itself (visible in ps and shell history: prefer the prompt or --password-stdin)",
)
def create_user(
    email: str, role: str | None, name: str | None, password_stdin: bool, password_option: str | None
) -> None:
    """Create the user EMAIL, e.g. the first admin: kdk users create admin@example.com --role admin"""
    if password_stdin and password_option is not None:
        raise click.UsageError("--password and --password-stdin exclude each other")
    with app_on_database() as flask_app:
        auth = getattr(kdk_of(flask_app), "authentication", None)
        if auth is None:
            raise click.ClickException("authentication is off (authentication.enabled): there are no users")
        permissions = auth.permissions
        role = role or permissions.default_role
        if role not in permissions.roles:
            known = ", ".join(permissions.roles) or "none"
            raise click.ClickException(f"unknown role '{role}' (the roles of `permissions`: {known})")
        username = auth.normalize(email)
        try:
            user = _create(auth, username, role, name, password_stdin, password_option)
        except FeathersError as exc:
            raise click.ClickException(f"could not create the user: {_error_text(exc)}") from None
        click.echo(f"created user {username} (role {role}, id {auth.user_id(user)})")
