"""``kdk serve``: one gevent process serving the configured app (``kdk_app.server.run_server``).

The only command that starts serving: ``run_server`` calls ``start_serving`` (sync readers,
registry heartbeats). gevent's patches are already in place (``kdk_app.cli.main``).
"""

from __future__ import annotations

from typing import Any

import click

from .apps import script_info


@click.command("serve")
@click.option("--host", help="address to listen on (default: `host`, HOST)")
@click.option("--port", type=int, help="port to listen on (default: `port`, PORT)")
@click.option(
    "--reload",
    is_flag=True,
    help="development: restart the server when a Python file or a config file changes",
)
def serve_command(host: str | None, port: int | None, reload: bool) -> None:
    """Run the app (with no MONGO_URL, an embedded SecantusDB in mongo.embedded_path)."""
    if script_info().app_import_path:
        raise click.UsageError("kdk serve runs the configured kdk app; serve another WSGI app with gunicorn")

    root_params = click.get_current_context().find_root().params

    def config() -> dict[str, Any]:
        from ..config import load_config
        from ..config_check import ConfigError
        from ..logs import configure_logging

        try:
            settings = load_config()
        except ConfigError as exc:  # one line ("Error: invalid configuration: …"), exit 1
            raise click.ClickException(str(exc)) from None
        configure_logging(settings, level=root_params.get("log_level"))  # --log-level wins
        if host:
            settings["host"] = host
        if port:
            settings["port"] = port
        return settings

    if reload:
        from .reload import serve_with_reloader

        code = serve_with_reloader(config, _child_arguments(host, port))
    else:
        from ..server import run_server

        code = run_server(config())
    click.get_current_context().exit(code)


def _child_arguments(host: str | None, port: int | None) -> list[str]:
    """``kdk`` arguments of the reloader's serving child: this command, as it was given."""
    log_level = click.get_current_context().find_root().params.get("log_level")
    args = ["--log-level", log_level] if log_level else []
    args += ["serve", "--reload"]
    args += ["--host", host] if host else []
    args += ["--port", str(port)] if port else []
    return args
