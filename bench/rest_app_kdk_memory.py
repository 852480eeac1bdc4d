"""kdk-app with the ``messages`` service on MemoryService: the framework with no database.

Same configuration as ``wsgi.py`` (config/default.py: schema, multi, publisher, Socket.IO,
pagination, the other services and their settings) except the adapter of ``messages``. The 200
records come from ``$BENCH_SEED_FILE`` with their ``_id`` hex strings, so the load scripts use
the same ids as the Node anchor (bench/rest.py writes the anchor's seed there). Created records
get a 24-hex string ``_id``, as the anchor's ``assignObjectId`` gives them (MemoryService's own
counter would give integers), so both answer a create with the same shape. Other services keep their
adapters; the benchmark never calls them.
"""

from gevent import monkey

monkey.patch_all()

from typing import Any  # noqa: E402

from bson import ObjectId  # noqa: E402

from bench.rest_common import COLLECTION, load_seed_file  # noqa: E402
from kdk_app.app import create_app  # noqa: E402
from kdk_app.config import load_config  # noqa: E402
from kdk_app.serving import kdk_of  # noqa: E402

# Keys of the MongoDB spec that MemoryService does not take.
MONGO_ONLY_KEYS = ("adapter", "collection", "indexes")


def memory_config() -> dict[str, Any]:
    config = load_config()
    spec = {k: v for k, v in config["services"][COLLECTION].items() if k not in MONGO_ONLY_KEYS}
    spec.update(adapter="memory", store=load_seed_file(), id="_id")
    config["services"] = {**config["services"], COLLECTION: spec}
    return config


app = create_app(memory_config())
# The anchor's assignObjectId in a before hook; here the schema drops a client-side `_id`, so the
# adapter's id counter is what gives created records their ids.
kdk_of(app).service(COLLECTION).impl._ids = iter(lambda: str(ObjectId()), None)
