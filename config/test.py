"""Test configuration: the services the Feathers adapter-test suite drives (docs/protocol.md §8)."""

testing = {"client_options": True}
services = {
    "people": {"adapter": "mongodb", "collection": "people", "events": ["testing"]},
    "people-customid": {
        "adapter": "mongodb",
        "collection": "people_customid",
        "id": "customid",
        "events": ["testing"],
    },
}


def _record_synced_events(app):
    """A server-side listener the resilience tests can observe: synced `messages created` events
    are written to an in-memory `heard` service, readable over REST."""
    from kdk_app.services import MemoryService

    if "messages" not in app.services:  # an instance that consumes messages from elsewhere
        return
    heard = app.use("heard", MemoryService(multi=True))

    def record(data, context):
        if getattr(context, "remote", False):
            heard.create({"record_id": data.get("_id"), "text": data.get("text"), "origin": context.origin})

    app.service("messages").on("created", record)


configure = [_record_synced_events]

# Test suites register many users from 127.0.0.1; the registration throttle's tests set their own limit.
authentication = {"throttle": {"register_max_attempts": 100_000}}
