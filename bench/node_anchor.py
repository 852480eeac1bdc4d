"""The Node Feathers anchor: an installed copy outside the repo, and its server processes.

The anchor (a small FeathersJS 5 app with the same ``messages`` service) is not part of kdk-app.
The benches are given its source folder (``--node-anchor DIR`` or ``$BENCH_NODE_ANCHOR``); it is
copied to a cache folder keyed by the hash of its files and ``npm ci`` runs there once, so its
``node_modules`` never land in the repo. With ``STORE=memory`` each process seeds 200 records
with ids ``000…001`` to ``000…0c8`` (``text`` ``seed i``, ``n`` i, ``tag`` ``t{i % 10}``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

from bench.common import child_environment
from kdk_app.embedded import ManagedProcess, free_port

logger = logging.getLogger(__name__)

ANCHOR_VARIABLE = "BENCH_NODE_ANCHOR"
SEED_COUNT = 200
TAG_COUNT = 10
NPM_TIMEOUT = 600.0
START_TIMEOUT = 30.0
# The anchor's own files: what the cache key and the copy are made of.
ANCHOR_FILES = ("package.json", "package-lock.json")
ANCHOR_DIRS = ("src",)


def anchor_source(option: str | None) -> Path | None:
    """The anchor's folder from the option, else from ``$BENCH_NODE_ANCHOR``; None if neither."""
    value = option or os.environ.get(ANCHOR_VARIABLE)
    return Path(value).resolve() if value else None


def seed_records() -> list[dict[str, object]]:
    """The records each anchor process seeds with STORE=memory (its ``memorySeed``)."""
    return [
        {"_id": f"{i + 1:024x}", "text": f"seed {i}", "n": i, "tag": f"t{i % TAG_COUNT}"}
        for i in range(SEED_COUNT)
    ]


def _anchor_hash(source: Path) -> str:
    digest = hashlib.sha256()
    paths = [source / name for name in ANCHOR_FILES]
    for folder in ANCHOR_DIRS:
        paths += sorted(p for p in (source / folder).rglob("*") if p.is_file())
    for path in paths:
        digest.update(str(path.relative_to(source)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def prepare(source: Path) -> Path:
    """An installed copy of the anchor (``npm ci`` done) in the user's cache folder."""
    for name in ANCHOR_FILES:
        if not (source / name).is_file():
            raise RuntimeError(f"{source} is not the Node anchor: {name} is missing")
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("node and npm must be on PATH to run the Node anchor")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kdk-bench"
    target = cache / f"feathers-anchor-{_anchor_hash(source)}"
    marker = target / ".installed"
    if marker.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in ANCHOR_FILES:
        shutil.copy2(source / name, target / name)
    for folder in ANCHOR_DIRS:
        shutil.copytree(source / folder, target / folder)
    logger.info("npm ci for the Node anchor in %s", target)
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=target,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"npm ci failed in {target}:\n{done.stderr[-2000:]}")
    marker.write_text("ok\n")
    return target


def _answers(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def start_processes(
    installed: Path, redis_url: str, logdir: Path, count: int = 2, sync_key: str = "bench"
) -> list[tuple[ManagedProcess, str]]:
    """``count`` anchor processes (STORE=memory) on ports of their own; ``(process, base URL)``.

    Stops the ones already started if one fails to come up.
    """
    started: list[tuple[ManagedProcess, str]] = []
    try:
        for index in range(count):
            port = free_port()
            env = child_environment(
                {
                    "STORE": "memory",
                    "PORT": str(port),
                    "HOST": "127.0.0.1",
                    "REDIS_URL": redis_url,
                    "SYNC_KEY": sync_key,
                    "NODE_ENV": "production",
                }
            )
            base = f"http://127.0.0.1:{port}"
            process = ManagedProcess(
                ["node", "src/index.js"],
                name=f"node-anchor-{index}",
                log_path=logdir / f"node_memory-{index}.log",
                env=env,
                cwd=installed,
                ready_check=functools.partial(_answers, f"{base}/messages?$limit=1"),
                start_timeout=START_TIMEOUT,
            )
            started.append((process.start(), base))
    except BaseException:
        for process, _ in started:
            process.stop()
        raise
    return started
