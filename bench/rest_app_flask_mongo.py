"""Baseline: a minimal hand-written Flask app on pymongo, with the same routes and answers.

``GET /messages/<id>`` (find_one by ObjectId), ``GET /messages?tag=..&$limit=..`` (count plus
find with limit, the same page object as kdk), ``POST /messages`` (a type check, insert_one).
No hooks, no query validation, no events: what a developer would write by hand.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
from typing import Any  # noqa: E402

from bson import ObjectId  # noqa: E402
from bson.errors import InvalidId  # noqa: E402
from flask import Flask, Response, request  # noqa: E402
from pymongo import MongoClient  # noqa: E402

from bench.rest_common import COLLECTION  # noqa: E402

# Imported after the fork (no --preload), so each worker owns its client.
client: MongoClient = MongoClient(os.environ["MONGO_URL"], tz_aware=False)
collection = client.get_default_database()[COLLECTION]
app = Flask(__name__)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")


def out(record: dict[str, Any]) -> dict[str, Any]:
    record["_id"] = str(record["_id"])
    return record


@app.get("/messages/<id>")
def get_message(id: str) -> Response:
    try:
        record = collection.find_one({"_id": ObjectId(id)})
    except InvalidId:
        record = None
    if record is None:
        return json_response({"name": "NotFound", "code": 404}, 404)
    return json_response(out(record))


@app.get("/messages")
def find_messages() -> Response:
    where = {"tag": request.args["tag"]} if "tag" in request.args else {}
    limit = min(int(request.args.get("$limit", 10)), 50)
    total = collection.count_documents(where)
    data = [out(r) for r in collection.find(where).limit(limit)]
    return json_response({"total": total, "limit": limit, "skip": 0, "data": data})


@app.post("/messages")
def create_message() -> Response:
    data = request.get_json()
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        return json_response({"name": "BadRequest", "code": 400}, 400)
    record = {k: data[k] for k in ("text", "n", "tag") if k in data}
    collection.insert_one(record)
    return json_response(out(record), 201)
