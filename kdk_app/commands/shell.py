"""``kdk shell``: Flask's interactive shell on the app, with its services at hand."""

from __future__ import annotations

import click
from flask.cli import shell_command as flask_shell

from ..serving import kdk_of
from .apps import app_on_database


@click.command("shell")
def shell_command() -> None:
    """A Python shell with `app` (Flask), `kdk` (the services) and `service(path)`; nothing serves."""
    with app_on_database() as flask_app:
        kdk = kdk_of(flask_app)
        flask_app.shell_context_processor(lambda: {"kdk": kdk, "service": kdk.service})
        with flask_app.app_context():
            click.get_current_context().invoke(flask_shell)
