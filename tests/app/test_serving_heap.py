"""A serving process freezes the heap it was built with, so full collections skip it."""

import gc

from kdk_app import create_app
from kdk_app.serving import start_serving


def test_starting_to_serve_freezes_the_objects_the_app_was_built_with(mongo_url):
    app = create_app(mongo={"url": mongo_url, "database": "heap"}, redis={"url": None})
    gc.unfreeze()
    try:
        start_serving(app)
        assert gc.get_freeze_count() > 10_000
        assert app.test_client().get("/messages").status_code == 200  # still serves
    finally:
        gc.unfreeze()
        app.extensions["kdk"].teardown()
