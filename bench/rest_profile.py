"""CPU per request of each bench app, in-process through WSGI (no sockets, no gunicorn).

    .venv/bin/python -m bench.rest_profile [--requests 3000] [--profile kdk_memory.find]

Calls the four apps of bench/rest.py directly with prebuilt WSGI environs (with the
``gunicorn.socket`` key gunicorn sets), one request at a time, and prints µs per request for
GET by id, find (``tag`` + ``$limit=10``) and create. The difference between kdk and its
hand-written baseline is the framework's own cost per request.
``--profile APP.MODE`` runs that scenario under cProfile and prints the top functions.
Starts an in-memory SecantusDB for the MongoDB apps and stops it by PID at the end.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import cProfile  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pymongo  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.rest import DATABASE, remove_created, seed  # noqa: E402
from bench.rest_common import COLLECTION, SEED_FILE_VARIABLE, TAG_COUNT  # noqa: E402
from kdk_app.embedded import MEMORY_STORAGE, start_secantusdb  # noqa: E402

logger = logging.getLogger("bench.rest_profile")

MODULES = {
    "kdk_mongo": "wsgi",
    "flask_mongo": "bench.rest_app_flask_mongo",
    "kdk_memory": "bench.rest_app_kdk_memory",
    "flask_dict": "bench.rest_app_flask_dict",
}
MODES = {"kdk_mongo": 3, "flask_mongo": 3, "kdk_memory": 2, "flask_dict": 2}
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Any]


def environs(mode: str, ids: list[str], count: int) -> list[dict[str, Any]]:
    built = []
    for i in range(count):
        if mode == "get":
            builder = EnvironBuilder(path=f"/messages/{random.choice(ids)}")
        elif mode == "find":
            builder = EnvironBuilder(path="/messages", query_string=f"tag=t{i % TAG_COUNT}&$limit=10")
        else:
            body = {"text": f"bench message {i}", "n": i, "tag": f"t{i % TAG_COUNT}"}
            builder = EnvironBuilder(path="/messages", method="POST", json=body)
        environ = builder.get_environ()
        # As under gunicorn: middleware that looks for the worker's socket behaves as in production.
        environ["gunicorn.socket"] = None
        built.append(environ)
    return built


def call_all(app: WsgiApp, requests: list[dict[str, Any]]) -> None:
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        statuses.append(status)

    for environ in requests:
        body = app(environ, start_response)
        b"".join(body)
        close = getattr(body, "close", None)
        if close is not None:
            close()
    bad = [s for s in statuses if not s.startswith(("200", "201"))]
    if bad:
        raise RuntimeError(f"unexpected statuses: {bad[:3]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000, help="requests per scenario (1-50000)")
    parser.add_argument("--profile", help="APP.MODE to run under cProfile, e.g. kdk_memory.find")
    parser.add_argument("--top", type=int, default=30, help="functions shown with --profile")
    args = parser.parse_args()
    if not 1 <= args.requests <= 50000:
        parser.error("--requests must be 1-50000")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    workdir = Path(tempfile.mkdtemp(prefix="kdk-bench-profile-"))
    db_process, db_url = start_secantusdb(MEMORY_STORAGE, log_path=workdir / "secantusdb.log")
    try:
        mongo_url = f"{db_url}{DATABASE}"
        client: pymongo.MongoClient = pymongo.MongoClient(mongo_url)
        collection = client[DATABASE][COLLECTION]
        seed_ids, _, seed_file = seed(collection, workdir)
        os.environ.update(
            {"MONGO_URL": mongo_url, SEED_FILE_VARIABLE: str(seed_file), "KDK_ENV": "development"}
        )
        os.environ.pop("REDIS_URL", None)
        os.chdir(REPO_ROOT)
        apps: dict[str, WsgiApp] = {name: importlib.import_module(m).app for name, m in MODULES.items()}
        ids = [str(i) for i in seed_ids]
        per_request: dict[str, float] = {}
        for name, app in apps.items():
            for mode in ("get", "find", "create")[: MODES[name]]:
                call_all(app, environs(mode, ids, 200))  # warm-up
                requests = environs(mode, ids, args.requests)
                profiler = cProfile.Profile() if args.profile == f"{name}.{mode}" else None
                started = time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                call_all(app, requests)
                if profiler is not None:
                    profiler.disable()
                per_request[f"{name}.{mode}"] = (time.perf_counter() - started) / len(requests) * 1e6
                remove_created(collection, seed_ids)
                if profiler is not None:
                    text = io.StringIO()
                    stats = pstats.Stats(profiler, stream=text)
                    stats.sort_stats("cumulative").print_stats(args.top)
                    stats.sort_stats("tottime").print_stats(args.top)
                    sys.stdout.write(text.getvalue())
        client.close()
    finally:
        db_process.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    out = sys.stdout.write
    out(f"\n{'scenario':<22}{'µs/request':>12}{'kdk - baseline':>16}\n")
    for key, value in per_request.items():
        name, mode = key.split(".")
        baseline = {"kdk_mongo": "flask_mongo", "kdk_memory": "flask_dict"}.get(name)
        extra = per_request.get(f"{baseline}.{mode}") if baseline else None
        diff = f"{value - extra:>16.0f}" if extra is not None else ""
        out(f"{key:<22}{value:>12.0f}{diff}\n")
    out("WSGI_PROFILE " + json.dumps({k: round(v, 1) for k, v in per_request.items()}) + "\n")


if __name__ == "__main__":
    main()
