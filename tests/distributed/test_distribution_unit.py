"""Distribution in one process: envelopes, settings, and two Applications on a real Redis."""

from __future__ import annotations

import time
import uuid

import pytest
from clients import wait_until

from kdk_app.channels import ChannelEmitter, Channels
from kdk_app.core import Application, errors
from kdk_app.distributed import Distribution, DistributionSettings, Refused, Signer, is_distributed
from kdk_app.distributed.envelope import NonceCache
from kdk_app.distributed.health import check
from kdk_app.distributed.settings import make_selector, make_transform
from kdk_app.logs import REQUEST_ID, current_request_id
from kdk_app.services.memory import MemoryService

SECRET = "unit-secret"


# --- envelopes ---------------------------------------------------------------------------
def test_sealed_messages_open_only_with_the_secret_the_partition_and_in_time():
    signer = Signer(b"s", "k", max_skew=30)
    message = signer.open(signer.seal("call", {"x": [1, "é"]}), "call")
    assert (message.kind, message.body) == ("call", {"x": [1, "é"]})
    with pytest.raises(Refused) as refused:
        Signer(b"other", "k", 30).open(signer.seal("call", {}))
    assert refused.value.reason == "forged"
    with pytest.raises(Refused) as refused:
        Signer(b"s", "other-key", 30).open(signer.seal("call", {}))
    assert refused.value.reason == "malformed"  # signed for another partition
    with pytest.raises(Refused) as refused:
        signer.open(b'{"kind": "call"}')
    assert refused.value.reason == "unsigned"
    with pytest.raises(Refused) as refused:
        signer.open(signer.seal("event", {}), "call")
    assert refused.value.reason == "malformed"
    tampered = signer.seal("call", {"n": 1}).replace(b'"n":1', b'"n":2')
    with pytest.raises(Refused) as refused:
        signer.open(tampered)
    assert refused.value.reason == "forged"


def test_stale_messages_and_seen_nonces_are_refused(monkeypatch):
    signer = Signer(b"s", "k", max_skew=30)
    old = signer.seal("reply", {})
    monkeypatch.setattr("kdk_app.signing.now_ms", lambda: int(time.time() * 1000) + 31_000)
    with pytest.raises(Refused) as refused:
        signer.open(old)
    assert refused.value.reason == "stale"
    nonces = NonceCache(window=30)
    assert nonces.add("a") and not nonces.add("a") and nonces.add("b")


# --- settings ----------------------------------------------------------------------------
def test_settings_are_off_without_a_section_or_redis_and_validated_otherwise():
    assert DistributionSettings.from_settings({"distribution": {"key": "k"}}) is None
    assert DistributionSettings.from_settings({"redis": {"url": "redis://x"}}) is None
    base = {"redis": {"url": "redis://x"}}
    with pytest.raises(ValueError, match="secret"):
        DistributionSettings.from_settings({**base, "distribution": {"key": "k"}})
    with pytest.raises(ValueError, match="Unknown"):
        DistributionSettings.from_settings({**base, "distribution": {"secret": "s", "nope": 1}})
    with pytest.raises(ValueError, match="ttl"):
        DistributionSettings.from_settings(
            {**base, "distribution": {"secret": "s", "ttl": 1, "heartbeat_interval": 2}}
        )
    derived = DistributionSettings.from_settings(
        {**base, "distribution": {"key": "k"}, "authentication": {"secret": "jwt"}}
    )
    assert derived is not None and derived.secret != b"jwt" and len(derived.secret) == 32
    options = DistributionSettings.from_settings({**base, "distribution": {"secret": 123, "timeout": 90}})
    assert options.secret == b"123" and options.key == "default" and options.max_skew == 95


def test_selectors_and_mount_paths():
    assert make_selector("*")("a/b") and make_selector(True)("x")
    assert not make_selector(None)("x") and not make_selector([])("x")
    assert make_selector(["messages", "geo/*"])("geo/layers") and not make_selector(["messages"])("users")
    assert make_selector("/cat*")("catalog")
    assert make_selector(lambda path: path.startswith("m"))("messages")
    assert make_transform(None)("messages") == "messages"
    assert make_transform("remote/")("messages") == "remote/messages"
    assert make_transform(lambda path: f"x-{path}")("messages") == "x-messages"


# --- two applications on one Redis -------------------------------------------------------
class Catalog(MemoryService):
    def publish_all(self, data, params):
        return {"published": data, "provider": params.get("provider"), "user": params.get("user")}


@pytest.fixture
def pair(redis_url):
    """Provider and consumer apps of a fresh partition; both stopped afterwards."""
    started = []
    key = f"u{uuid.uuid4().hex[:8]}"

    def make(app, **options):
        settings = {
            "key": key,
            "secret": SECRET,
            "heartbeat_interval": 0.5,
            "ttl": 2,
            "timeout": 5,
            **options,
        }
        distribution = Distribution(
            app, DistributionSettings.from_settings({"redis": {"url": redis_url}, "distribution": settings})
        )
        started.append(distribution.start())
        return distribution

    yield make
    for distribution in reversed(started):
        distribution.stop()


def provider_app(seen=None):
    app = Application()
    service = app.use(
        "catalog",
        Catalog(paginate={"default": 10, "max": 50}, multi=True),
        methods=["find", "get", "create", "patch", "remove", "publish_all"],
        events=["published"],
    )

    def remember(context):
        if seen is not None:
            seen.append(dict(context.params))
        if context.params.get("query", {}).get("forbid"):
            raise errors.Forbidden("not you", {"why": "test"})

    service.hooks({"before": {"all": [remember]}})
    app.setup()
    return app


def test_remote_calls_run_through_the_providers_hooks_with_the_callers_identity(pair):
    seen = []
    provider, consumer = provider_app(seen), Application().setup()
    pair(provider, services=["catalog"])
    pair(consumer, services=[])
    assert wait_until(lambda: "catalog" in consumer.services, timeout=2)
    remote = consumer.service("catalog")
    assert remote.remote is True and "publish_all" in remote.methods and "published" in remote.events

    user = {"_id": "u1", "email": "a@b.c", "password": "hash", "role": "admin"}
    created = remote.create({"title": "map"}, {"user": user, "provider": "rest"})
    assert created == {"id": 0, "title": "map"}
    assert seen[-1]["provider"] == "remote" and seen[-1]["authenticated"] is True
    assert seen[-1]["user"] == {"_id": "u1", "email": "a@b.c", "role": "admin"}  # no password
    token = {"strategy": "jwt", "accessToken": "t"}
    remote.find({"authentication": token, "provider": "rest"})  # not verified here: A's hooks will
    assert seen[-1]["authentication"] == token and "user" not in seen[-1]
    answer = remote.publish_all({"x": 1}, {"user": user})
    assert answer == {"published": {"x": 1}, "provider": "remote", "user": seen[-1]["user"]}
    with pytest.raises(errors.NotFound):
        remote.get(42)
    with pytest.raises(errors.Forbidden) as forbidden:
        remote.find({"query": {"forbid": True}})
    assert (forbidden.value.code, forbidden.value.data) == (403, {"why": "test"})
    with pytest.raises(errors.MethodNotAllowed):
        remote.update(0, {})  # not declared by the provider
    assert remote.find({"query": {"title": "map"}})["total"] == 1


def test_a_remote_call_is_logged_on_the_provider_under_the_callers_request_id(pair):
    ids = []
    provider, consumer = provider_app(), Application().setup()
    provider.service("catalog").hooks(
        {"before": {"find": [lambda context: ids.append(current_request_id())]}}
    )
    pair(provider, services=["catalog"])
    pair(consumer, services=[])
    assert wait_until(lambda: "catalog" in consumer.services, timeout=2)
    token = REQUEST_ID.set("req-from-the-consumer")
    try:
        consumer.service("catalog").find({})
    finally:
        REQUEST_ID.reset(token)
    for outside in (None, "bad id with spaces"):  # outside a request; an id that is not sane
        token = REQUEST_ID.set(outside)
        try:
            consumer.service("catalog").find({})
        finally:
            REQUEST_ID.reset(token)
    assert ids == ["req-from-the-consumer", None, None]


def test_remote_events_are_dispatched_once_marked_and_never_sent_back(pair):
    provider, consumer = provider_app(), Application().setup()
    consumer_sink, provider_sink = [], []
    consumer.event_sinks.append(consumer_sink.append)
    provider.event_sinks.append(provider_sink.append)
    pair(provider, services=["catalog"])
    distribution = pair(consumer, services="*")
    assert wait_until(lambda: "catalog" in consumer.services, timeout=2)
    heard = []
    consumer.service("catalog").on("created", lambda data, context: heard.append((data, context.method)))
    consumer.service("catalog").on("published", lambda data, context: heard.append((data, "custom")))

    consumer.service("catalog").create([{"title": "a"}, {"title": "b"}])  # through the proxy
    provider.service("catalog").create({"title": "c"})  # on the provider itself
    provider.service("catalog").emit("published", {"custom": True})
    assert wait_until(lambda: len(heard) == 4, timeout=3), heard
    assert heard == [
        ({"id": 0, "title": "a"}, "create"),
        ({"id": 1, "title": "b"}, "create"),
        ({"id": 2, "title": "c"}, "create"),
        ({"custom": True}, "custom"),
    ]
    assert all(is_distributed(e) and not e.remote for e in consumer_sink)
    assert len(consumer_sink) == 4
    assert distribution.stats.events_published == 0  # the consumer sends nothing back
    assert not any(is_distributed(e) for e in provider_sink)


@pytest.mark.parametrize("same_channel", [False, True])
def test_remote_events_reach_own_clients_once_or_not_at_all_when_the_queue_is_shared(pair, same_channel):
    provider, consumer = provider_app(), Application().setup()
    channels = Channels(consumer)
    consumer.channels = channels
    consumer.event_sinks.append(channels.publish)
    queued, local = [], []
    channels.emitters.append(
        ChannelEmitter(
            lambda name, payload, rooms: queued.append(name), lambda name, payload, rooms: local.append(name)
        )
    )
    pair(provider, services=["catalog"])
    distribution = pair(consumer, publish=["anonymous"])
    if not same_channel:
        distribution.receiver.channel = "consumer-only"
    assert wait_until(lambda: "catalog" in consumer.services, timeout=2)
    provider.service("catalog").create({"title": "x"})
    assert wait_until(lambda: distribution.stats.events_received == 1, timeout=3)
    assert queued == []  # never through the message queue: each process serves its own clients
    assert local == ([] if same_channel else ["catalog created"])


def test_no_live_provider_fails_at_once_and_the_proxy_goes_after_a_clean_stop(pair):
    provider, consumer = provider_app(), Application().setup()
    served = pair(provider, services=["catalog"])
    distribution = pair(consumer)
    assert wait_until(lambda: "catalog" in consumer.services, timeout=2)
    started = time.monotonic()
    with pytest.raises(errors.Unavailable):
        distribution.caller.call("nothing-here", "find")
    assert time.monotonic() - started < 0.2
    removed = []
    consumer.on("service-removed", lambda service: removed.append(service.path))
    served.stop()
    assert wait_until(lambda: "catalog" not in consumer.services, timeout=2)
    assert removed == ["catalog"]


def test_slow_calls_time_out_within_their_bound_and_health_reports_them(pair):
    provider = Application()

    class Slow:
        def find(self, params):
            time.sleep(1.5)
            return []

    provider.use("slow", Slow())
    provider.use("fast", MemoryService())
    provider.setup()
    consumer = Application().setup()
    pair(provider, services="*")
    distribution = pair(
        consumer, timeout=0.5, healthcheck_timeout=0.5, remote_services=["slow", "fast", "gone"]
    )
    assert wait_until(lambda: {"slow", "fast"} <= set(consumer.services), timeout=2)
    started = time.monotonic()
    with pytest.raises(errors.Timeout):
        consumer.service("slow").find()
    assert time.monotonic() - started < 0.5 + 0.3
    report = check(distribution)
    assert report["healthy"] is False and report["failing"] == ["gone"]  # a ping skips the service
    assert report["services"]["fast"]["healthy"] and report["services"]["slow"]["healthy"]


def test_remote_paths_can_be_mounted_under_a_prefix(pair):
    provider, consumer = provider_app(), Application().setup()
    consumer.use("catalog", MemoryService())  # a local service of the same name stays local
    pair(provider, services=["catalog"])
    pair(consumer, services=[], remote_service_path="remote")
    assert wait_until(lambda: "remote/catalog" in consumer.services, timeout=2)
    assert consumer.service("remote/catalog").create({"t": 1}) == {"id": 0, "t": 1}
    assert not getattr(consumer.service("catalog").impl, "remote", False)
