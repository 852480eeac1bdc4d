"""Test configuration: the services the Feathers adapter-test suite drives (PROTOCOL §8)."""

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
