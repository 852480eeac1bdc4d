"""Baseline: the hand-written Flask app of ``rest_app_flask_mongo`` on a dict instead of MongoDB."""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
from typing import Any  # noqa: E402

from flask import Flask, Response, request  # noqa: E402

from bench.rest_common import load_seed_file  # noqa: E402

records: dict[str, dict[str, Any]] = {r["_id"]: r for r in load_seed_file()}
app = Flask(__name__)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")


@app.get("/messages/<id>")
def get_message(id: str) -> Response:
    record = records.get(id)
    if record is None:
        return json_response({"name": "NotFound", "code": 404}, 404)
    return json_response(record)


@app.get("/messages")
def find_messages() -> Response:
    tag = request.args.get("tag")
    found = [r for r in records.values() if tag is None or r.get("tag") == tag]
    limit = min(int(request.args.get("$limit", 10)), 50)
    return json_response({"total": len(found), "limit": limit, "skip": 0, "data": found[:limit]})
