"""bench/rest.py's verdicts and printed report: ratios, CPU per request, targets."""

from __future__ import annotations

import statistics
import sys
from typing import Any

from bench.rest_load import WORKERS, Figures

# ratio key: (framework scenario, baseline scenario). Interleaved pairs: median of the rounds.
RATIOS = {
    "kdk_get/flask_view_get": ("kdk_mongo.get", "flask_mongo.get"),
    "kdk_get/raw_pymongo_get": ("kdk_mongo.get", "raw_pymongo.get"),
    "kdk_get/raw_pymongo_serial_get": ("kdk_mongo.get", "raw_pymongo_serial.get"),
    "flask_view_get/raw_pymongo_get": ("flask_mongo.get", "raw_pymongo.get"),
    "kdk_find/flask_view_find": ("kdk_mongo.find", "flask_mongo.find"),
    "kdk_find/raw_pymongo_find": ("kdk_mongo.find", "raw_pymongo.find"),
    "kdk_create/flask_view_create": ("kdk_mongo.create", "flask_mongo.create"),
    "kdk_create/raw_pymongo_create": ("kdk_mongo.create", "raw_pymongo.create"),
    "kdk_memory_get/node_get": ("kdk_memory.get", "node_memory.get"),
    "kdk_memory_find/node_find": ("kdk_memory.find", "node_memory.find"),
    "kdk_memory_create/node_create": ("kdk_memory.create", "node_memory.create"),
    "kdk_memory_get/dict_view_get": ("kdk_memory.get", "flask_dict.get"),
    "kdk_memory_find/dict_view_find": ("kdk_memory.find", "flask_dict.find"),
    "kdk_memory_get/floor_gunicorn": ("kdk_memory.get", "floor_gunicorn.get"),
    "floor_gunicorn/floor_pywsgi": ("floor_gunicorn.get", "floor_pywsgi.get"),
    "node_get/floor_gunicorn": ("node_memory.get", "floor_gunicorn.get"),
}
# The pairs whose CPU per request is compared too (the framework's extra µs over its baseline).
CPU_PAIRS = {
    key: RATIOS[key]
    for key in (
        "kdk_get/flask_view_get",
        "kdk_find/flask_view_find",
        "kdk_create/flask_view_create",
        "kdk_memory_get/node_get",
        "kdk_memory_find/node_find",
        "kdk_memory_create/node_create",
        "kdk_memory_get/dict_view_get",
        "kdk_memory_find/dict_view_find",
        "kdk_memory_get/floor_gunicorn",
    )
}
# target name: (ratio key, lower bound). Issue 12's: kdk on MemoryService ≥ 1.0 × the Node
# anchor per scenario; on MongoDB, GET ≥ 0.9 × raw pymongo at the same concurrency and layout,
# find (with total) ≥ 1.0 × the hand-written view. The earlier ones are kept for comparison.
RATIO_TARGETS = {
    "memory_get_ge_1.0x_node": ("kdk_memory_get/node_get", 1.0),
    "memory_find_ge_1.0x_node": ("kdk_memory_find/node_find", 1.0),
    "memory_create_ge_1.0x_node": ("kdk_memory_create/node_create", 1.0),
    "get_ge_0.9x_raw_pymongo": ("kdk_get/raw_pymongo_get", 0.9),
    "find_ge_1.0x_flask_view": ("kdk_find/flask_view_find", 1.0),
    # The literal reading, against one in-process find_one loop: reported, see bench/README.md.
    "get_ge_0.9x_raw_pymongo_serial_literal": ("kdk_get/raw_pymongo_serial_get", 0.9),
    "get_ge_0.9x_flask_view": ("kdk_get/flask_view_get", 0.9),
    "memory_get_ge_0.8x_dict_view": ("kdk_memory_get/dict_view_get", 0.8),
    "memory_find_ge_0.8x_dict_view": ("kdk_memory_find/dict_view_find", 0.8),
}
# target name: (scenario, upper bound of its p99 in ms).
P99_TARGETS = {
    "memory_get_p99_le_30ms": ("kdk_memory.get", 30.0),
    "memory_find_p99_le_30ms": ("kdk_memory.find", 30.0),
    "memory_create_p99_le_30ms": ("kdk_memory.create", 30.0),
}


def compute_ratios(results: dict[str, Figures]) -> dict[str, float | None]:
    """Framework over baseline. Interleaved pairs: median of the per-round ratios."""

    def over(a: str, b: str) -> float | None:
        fa, fb = results.get(a), results.get(b)
        if fa is None or fb is None or not fb.rps:
            return None
        if fa.rounds_rps and len(fa.rounds_rps) == len(fb.rounds_rps):
            return round(
                statistics.median(x / y for x, y in zip(fa.rounds_rps, fb.rounds_rps, strict=True)), 3
            )
        return round(fa.rps / fb.rps, 3)

    return {key: over(a, b) for key, (a, b) in RATIOS.items()}


def compute_cpu_ratios(results: dict[str, Figures]) -> dict[str, dict[str, float | None]]:
    """Per pair: server CPU per request (app workers + database) of baseline over framework,
    i.e. the throughput ratio to expect when the servers are CPU-bound, and the framework's
    extra app CPU per request. Much less sensitive to other load on the machine than req/s."""
    out: dict[str, dict[str, float | None]] = {}
    for key, (a, b) in CPU_PAIRS.items():
        fa, fb = results.get(a), results.get(b)
        if fa is None or fb is None or fa.app_cpu_us is None or fb.app_cpu_us is None:
            continue
        total_a = fa.app_cpu_us + (fa.db_cpu_us or 0.0)
        total_b = fb.app_cpu_us + (fb.db_cpu_us or 0.0)
        out[key] = {
            "cpu_ratio": round(total_b / total_a, 3) if total_a else None,
            "extra_app_cpu_us": round(fa.app_cpu_us - fb.app_cpu_us, 1),
        }
    return out


def check_targets(ratios: dict[str, float | None], results: dict[str, Figures]) -> dict[str, bool | None]:
    """True (met), False (not met) or None (not measured in this run, e.g. ``--only``)."""
    targets: dict[str, bool | None] = {}
    for name, (key, bound) in RATIO_TARGETS.items():
        value = ratios.get(key)
        targets[name] = None if value is None else value >= bound
    for name, (scenario, bound_ms) in P99_TARGETS.items():
        figures = results.get(scenario)
        targets[name] = None if figures is None else figures.p99_ms <= bound_ms
    return targets


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else "met" if ok else "not met"


def write_report(result: dict[str, Any], results: dict[str, Figures]) -> None:
    out = sys.stdout.write
    settings, machine, code = result["settings"], result["machine"], result["code"]
    out(f"\nkdk-app REST benchmark, {result['date']}\n")
    out(
        f"machine: {machine['cpus']} CPU ({machine['cpu_model']}), {machine['memory_gb']} GB, "
        f"Python {machine['python']}, {machine['wrk']}, node {machine.get('node') or 'n/a'}\n"
    )
    dirty = f" + {len(code['changed_paths'])} changed paths" if code["changed_paths"] else ""
    out(f"code: commit {code['commit']}{dirty}\n")
    out(
        f"settings: gunicorn -k gevent -w {WORKERS}; Node anchor: 2 processes, a wrk each with half "
        f"the connections; wrk -t{settings['threads']} -c{settings['connections']} in total, "
        f"{settings['rounds']} rounds x {settings['round_seconds']}s per scenario after "
        f"{settings['warmup_s']}s warm-up; groups: {', '.join(settings['only'])}\n"
    )
    busy = result["cpu_busy_before"]
    out(f"CPU busy before the run: {busy:.0%}; load average after: {result['load_average_after']:.2f}\n")
    if busy > 0.15:
        out(
            "WARNING: other processes were using the CPUs when the run started. Ratios are "
            "per-round medians of interleaved runs; absolute figures are not comparable.\n"
        )
    out(
        f"\n{'scenario':<26}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}{'errors':>7}"
        f"{'app CPU µs/req':>16}{'DB CPU µs/req':>15}\n"
    )
    for name, figures in results.items():
        app_cpu = "" if figures.app_cpu_us is None else f"{figures.app_cpu_us:.0f}"
        db_cpu = "" if figures.db_cpu_us is None or not figures.db_cpu_us else f"{figures.db_cpu_us:.0f}"
        out(
            f"{name:<26}{figures.rps:>8.0f}{figures.p50_ms:>9.2f}{figures.p99_ms:>9.2f}"
            f"{figures.requests:>10}{figures.errors:>7}{app_cpu:>16}{db_cpu:>15}\n"
        )
    out("\nratios (req/s over req/s; interleaved runs: median of the rounds)\n")
    for key, value in result["ratios"].items():
        if value is not None:
            out(f"  {key:<36}{value:>8.3f}\n")
    out("\nCPU per request, baseline over framework (app + DB), and the framework's extra app CPU\n")
    for key, value in result["cpu_ratios"].items():
        ratio = "n/a" if value["cpu_ratio"] is None else f"{value['cpu_ratio']:.3f}"
        out(f"  {key:<36}{ratio:>8}{value['extra_app_cpu_us']:>+10.0f} µs\n")
    out("\ntargets\n")
    for key, ok in result["targets"].items():
        out(f"  {key:<44}{_verdict(ok):>14}\n")
    out("\n")
