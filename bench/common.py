"""Shared by every bench script: percentiles, and the environment of the servers they start."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

# What the bench's own shell may have set that would leak into the servers under test.
ISOLATED_PREFIXES = ("KDK_",)
ISOLATED_VARIABLES = ("REDIS_URL", "MONGO_URL", "DB_URL", "JWT_SECRET", "PORT", "HOST", "WEB_CONCURRENCY")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when there are none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without the isolated variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ISOLATED_VARIABLES and not k.startswith(ISOLATED_PREFIXES)
    }
    env.update(extra)
    return env
