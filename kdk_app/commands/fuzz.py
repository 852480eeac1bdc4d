"""``kdk fuzz URL``: seeded hostile requests and frames against a running server (kdk_app.fuzz)."""

from __future__ import annotations

import json

import click


@click.command("fuzz")
@click.argument("url")
@click.option("--requests", "requests_", type=int, default=10_000, show_default=True, help="REST requests")
@click.option("--frames", type=int, default=10_000, show_default=True, help="Socket.IO frames")
@click.option("--seed", type=int, multiple=True, help="repeatable; default 1")
def fuzz_command(url: str, requests_: int, frames: int, seed: tuple[int, ...]) -> None:
    """Send seeded hostile requests and frames to URL (e.g. http://127.0.0.1:8081); exit 1 on a finding."""
    from ..fuzz import fuzz

    results = [fuzz(url, requests=requests_, frames=frames, seed=s) for s in seed or (1,)]
    click.echo(json.dumps(results, indent=2))
    if not all(result["ok"] for result in results):
        click.get_current_context().exit(1)
