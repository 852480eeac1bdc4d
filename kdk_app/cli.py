"""The ``kdk`` command: ``kdk serve`` runs the app, ``kdk config`` shows the merged configuration."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

logger = logging.getLogger(__name__)

SECRET_KEYS = ("secret", "password", "url")


def _masked(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _masked(v, k) for k, v in value.items()}
    if any(word in key.lower() for word in SECRET_KEYS) and isinstance(value, str) and "@" in value:
        return value.split("://", 1)[0] + "://***@" + value.rsplit("@", 1)[-1]
    if "secret" in key.lower() and value:
        return "***"
    return value


def serve(args: argparse.Namespace) -> int:
    # Patch before the app, pymongo or redis are imported, so that their sockets cooperate.
    from gevent import monkey

    monkey.patch_all()

    from .config import load_config
    from .server import run_server

    config = load_config()
    if args.host:
        config["host"] = args.host
    if args.port:
        config["port"] = args.port
    return run_server(config)


def show_config(args: argparse.Namespace) -> int:
    """Print the merged configuration; exit 2 when a connection URL in it is unusable."""
    from .config import load_config
    from .connection_urls import check_connection_urls

    config = {k: v for k, v in load_config().items() if not callable(v)}
    sys.stdout.write(json.dumps(_masked(config), indent=2, default=repr) + "\n")
    try:
        check_connection_urls(config)
    except ValueError as exc:
        sys.stderr.write(f"kdk config: {exc}\n")
        return 2
    return 0


def run_fuzz(args: argparse.Namespace) -> int:
    from .fuzz import fuzz

    seeds = args.seed or [1]
    results = [fuzz(args.url, requests=args.requests, frames=args.frames, seed=seed) for seed in seeds]
    sys.stdout.write(json.dumps(results, indent=2) + "\n")
    return 0 if all(result["ok"] for result in results) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kdk", description="Run and inspect a kdk-app application.")
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the app (starts SecantusDB when no MONGO_URL)")
    serve_parser.add_argument("--host")
    serve_parser.add_argument("--port", type=int)
    serve_parser.set_defaults(handler=serve)
    config_parser = commands.add_parser("config", help="print the merged configuration, secrets masked")
    config_parser.set_defaults(handler=show_config)
    fuzz_parser = commands.add_parser("fuzz", help="send seeded hostile requests and frames to a server")
    fuzz_parser.add_argument("url", help="the server, e.g. http://127.0.0.1:8081")
    fuzz_parser.add_argument("--requests", type=int, default=10_000)
    fuzz_parser.add_argument("--frames", type=int, default=10_000)
    fuzz_parser.add_argument("--seed", type=int, action="append", help="repeatable; default 1")
    fuzz_parser.set_defaults(handler=run_fuzz)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
