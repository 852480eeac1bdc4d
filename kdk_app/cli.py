"""The ``kdk`` command: a click group built on Flask's own CLI (see :mod:`kdk_app.commands`).

``kdk serve`` patches with gevent before anything else is imported, so that pymongo's, redis'
and the server's sockets cooperate; click and Flask import ``ssl`` and ``threading``, so the
command name is read from the arguments here, before either is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

# Options of the group that take a value: their value is not the command name.
GROUP_VALUE_OPTIONS = frozenset({"--log-level", "-A", "--app", "-e", "--env-file"})
# Set in the serving child of `kdk serve --reload`; not KDK_…, which would be a config key.
RELOADER_CHILD = "KDKAPP_RELOADER_CHILD"


def command_name(argv: Sequence[str]) -> str | None:
    """The subcommand in ``argv`` (``kdk --log-level DEBUG serve`` -> ``"serve"``), or None."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in GROUP_VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def needs_gevent(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """True for a process that serves: ``kdk serve``, but not the supervisor of ``--reload``,
    which only starts and restarts its serving child."""
    if command_name(argv) != "serve":
        return False
    supervisor = "--reload" in argv and environ.get(RELOADER_CHILD) != "true"
    return not supervisor


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kdk`` with ``argv`` (default: the process arguments); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if needs_gevent(args, os.environ):
        from gevent import monkey

        monkey.patch_all()
    # The project folder is importable (config files may import its service modules), as
    # under `flask --app` and gunicorn; the `kdk` script alone would only put its bin/ there.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())

    from .commands import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
