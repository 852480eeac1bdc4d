"""A bounded, seeded fuzz run against a production-configured server with two gunicorn workers.

2,000 hostile REST requests and 2,000 hostile Socket.IO frames (``kdk_app.fuzz``): no answer
is a 5xx, every frame with an ack id is answered, no connection drops, no worker dies, and a
normal call still works afterwards. ``bench/fuzz.py`` runs the same generator at 10,000 each.
"""

from __future__ import annotations

import pytest
from servers import gunicorn_workers

from kdk_app.fuzz import FrameFuzzer, RestFuzzer, normal_calls_work

REQUESTS = 2000
FRAMES = 2000
SEED = 20261202


@pytest.fixture
def production_server(app_server_factory, redis_url, mongo_url):
    env = {
        "KDK_ENV": "production",
        "JWT_SECRET": "fuzz-secret-" + "x" * 32,
        "REDIS_URL": redis_url,
        "MONGO_URL": mongo_url.rstrip("/") + "/fuzz",
    }
    return app_server_factory(env, workers=2)


def test_fuzzed_requests_and_frames_never_get_a_5xx_drop_a_connection_or_kill_a_worker(production_server):
    master = production_server.process.pid
    before = gunicorn_workers(master)
    assert len(before) == 2

    rest = RestFuzzer(production_server.url).run(REQUESTS, SEED)
    frames = FrameFuzzer(production_server.url).run(FRAMES, SEED)

    assert rest.ok, rest.as_dict()
    assert frames.ok, frames.as_dict()
    assert rest.sent >= REQUESTS and frames.sent == FRAMES
    assert gunicorn_workers(master) == before, production_server.log_text()[-3000:]
    assert normal_calls_work(production_server.url)
    assert "Traceback" not in production_server.log_text()
