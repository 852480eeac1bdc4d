"""``kdk config``: the merged configuration as JSON, secrets masked; exit 2 on an unusable URL.
``kdk config --check``: the findings of :func:`~kdk_app.config_check.check_config` instead, one a
line; exit 1 on an error (a value of the wrong type), 0 with warnings only."""

from __future__ import annotations

import json
import re
from typing import Any

import click

MASK = "***"
# A key is a secret when its last word is one of these (``redis_password``, ``sync.secret``,
# ``X-Api-Key``), never when a secret word is only part of it (``password_field``).
SECRET_WORDS = frozenset({"secret", "password", "passwd", "token", "credentials", "authorization", "apikey"})
KEY_QUALIFIERS = frozenset({"api", "private", "secret", "signing", "access"})  # "api_key", not "key"
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)(.*)@")  # greedy: up to the last "@"
_QUERY_SECRET = re.compile(r"([?&](?:password|secret|token|auth)=)[^&#]*", re.IGNORECASE)


def _words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)
    return [word for word in re.split(r"[^a-z0-9]+", spaced.lower()) if word]


def is_secret_key(key: str) -> bool:
    words = _words(key)
    if not words:
        return False
    if words[-1] in SECRET_WORDS:
        return True
    return words[-1] == "key" and len(words) > 1 and words[-2] in KEY_QUALIFIERS


def mask_url(value: str) -> str:
    """Credentials out of a URL: ``redis://user:pw@h:6379/0`` -> ``redis://***@h:6379/0``."""
    masked = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", value, count=1)
    return _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, masked)


def masked(value: Any, key: str = "") -> Any:
    """``value`` with every secret replaced by ``***`` (unset secrets stay visible as unset)."""
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [masked(item, key) for item in value]
    if is_secret_key(key) and value not in (None, "", False):
        return MASK
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


@click.command("config")
@click.option("--check", is_flag=True, help="list unknown keys and wrong types instead; exit 1 on an error")
def config_command(check: bool) -> None:
    """Print the merged configuration, secrets masked; exit 2 when a connection URL is unusable."""
    from ..config import load_config
    from ..config_check import check_config
    from ..connection_urls import check_connection_urls

    sources: dict[str, list[str]] = {}
    loaded = load_config(sources=sources, check=False)
    config = {k: v for k, v in loaded.items() if not callable(v)}
    context = click.get_current_context()
    if check:
        findings = check_config(loaded, sources)
        for finding in findings:
            click.echo(str(finding))
        if not findings:
            click.echo("ok: no unknown keys, no values of the wrong type")
    else:
        click.echo(json.dumps(masked(config), indent=2, default=repr))
    try:
        check_connection_urls(config)
    except ValueError as exc:
        click.echo(f"kdk config: {exc}", err=True)
        context.exit(2)
    if check and any(finding.level == "error" for finding in findings):
        context.exit(1)
