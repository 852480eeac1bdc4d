"""The commands of ``kdk``, on :class:`flask.cli.FlaskGroup` (``--app``, ``--env-file``, ``--debug``).

Commands that need the app build it with ``create_app`` and never start serving it: only
``kdk serve`` (a serving process) calls ``start_serving``, so a CLI command never joins the
registry, reads the sync bus or starts any other background work.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import click
from flask.cli import FlaskGroup

from .. import __version__
from .apps import load_app
from .fuzz import fuzz_command
from .generate import generate
from .routes import routes_command
from .serve import serve_command
from .shell import shell_command
from .show_config import config_command
from .users import users

logger = logging.getLogger(__name__)


class KdkGroup(FlaskGroup):
    """Flask's group without its default commands (``kdk serve`` replaces ``flask run``) and
    without building the app to list commands: ``kdk --help`` needs no database nor secret."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(click.Group.list_commands(self, ctx))


@click.group(
    cls=KdkGroup,
    create_app=load_app,
    add_default_commands=False,
    add_version_option=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING… (INFO to serve, else WARNING)")
@click.version_option(__version__, prog_name="kdk-app")
@click.pass_context
def cli(ctx: click.Context, log_level: str | None) -> None:
    """Run and inspect a kdk-app application."""
    default = "INFO" if ctx.invoked_subcommand == "serve" else "WARNING"
    logging.basicConfig(
        level=(log_level or default).upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


for command in (
    serve_command,
    routes_command,
    shell_command,
    config_command,
    users,
    generate,
    fuzz_command,
):
    cli.add_command(command)


def run(argv: Sequence[str]) -> int:
    """Run the group on ``argv`` and return its exit code (click would call ``sys.exit``)."""
    try:
        cli.main(list(argv), prog_name="kdk")
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        logger.error("%s", exc.code)
        return 1
    return 0
