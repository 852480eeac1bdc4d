"""Probe every remote service of the partition through the call path, each within a bound."""

from __future__ import annotations

import threading
import time
from typing import Any

from ..core import errors
from .node import Distribution

_JOIN_SLACK = 0.5  # s beyond the probe bound before a probe is reported as hung


def _probe(distribution: Distribution, remote_path: str, bound: float, out: dict[str, Any]) -> None:
    started = time.monotonic()
    try:
        distribution.caller.call(remote_path, "ping", ping=True, timeout=bound)
        out["healthy"] = True
    except errors.FeathersError as error:
        out.update(healthy=False, error=error.to_json())
    except Exception as exc:  # noqa: BLE001 - e.g. Redis down: unhealthy, not a crash
        out.update(healthy=False, error=errors.Unavailable(str(exc) or type(exc).__name__).to_json())
    out["ms"] = round((time.monotonic() - started) * 1000, 2)


def check(distribution: Distribution) -> dict[str, Any]:
    """``{key, healthy, services: {path: {healthy, ms, remote_path, error?}}, failing}``."""
    bound = distribution.settings.healthcheck_timeout
    mounted = distribution.mounts.paths
    results: dict[str, dict[str, Any]] = {}
    threads = []
    for path, remote_path in mounted.items():
        results[path] = {"remote_path": remote_path, "healthy": False}
        thread = threading.Thread(
            target=_probe, args=(distribution, remote_path, bound, results[path]), daemon=True
        )
        thread.start()
        threads.append(thread)
    deadline = time.monotonic() + bound + _JOIN_SLACK
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    for result in results.values():
        if "ms" not in result:
            result["error"] = errors.Timeout(f"No answer within {bound:g}s").to_json()
    for path in distribution.settings.required_remote:
        mounted_path = distribution.settings.mount_path(path)
        if mounted_path not in results:
            results[mounted_path] = {
                "remote_path": path,
                "healthy": False,
                "error": errors.Unavailable(f"No provider of '{path}' is registered").to_json(),
            }
    failing = sorted(path for path, result in results.items() if not result["healthy"])
    return {"key": distribution.key, "healthy": not failing, "services": results, "failing": failing}
