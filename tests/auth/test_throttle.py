"""The login and registration throttles count atomically, and /distribution/stats is for admins.

Real servers: gunicorn with two gevent workers sharing one real Redis and SecantusDB. Each
server gets its own counter prefix, so no other test's counters (all from 127.0.0.1) interfere.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from accounts import PASSWORD, Sock, assert_error, mint, unique_email
from servers import AppServerFactory

from kdk_app.auth import LoginThrottle, Passwords
from kdk_app.auth.throttle import LocalCounters
from kdk_app.core.errors import TooManyRequests

JWT_SECRET = "kdk-throttle-secret-" + "t" * 44
PARALLEL, THREADS = 200, 50


def throttled_env(redis_url, **limits):
    env = {
        "REDIS_URL": redis_url,
        "JWT_SECRET": JWT_SECRET,
        "KDK_MONGO__DATABASE": f"throttle_{uuid.uuid4().hex[:10]}",
        "KDK_AUTHENTICATION__THROTTLE__PREFIX": f"kdk:test:{uuid.uuid4().hex[:8]}:",
    }
    env.update(
        {f"KDK_AUTHENTICATION__THROTTLE__{name.upper()}": str(value) for name, value in limits.items()}
    )
    return env


def distributed(env):
    return {
        **env,
        "KDK_DISTRIBUTION__KEY": f"t{uuid.uuid4().hex[:8]}",
        "KDK_DISTRIBUTION__SECRET": "throttle-distribution-secret",
        "KDK_DISTRIBUTION__SERVICES": "[]",
    }


def add_user(mongo_client, server, role="user", password=PASSWORD):
    """A user written straight to the database (no registration, so no registration count)."""
    user = {"email": unique_email(role), "password": Passwords().hash(password), "role": role}
    inserted = mongo_client[server.env["KDK_MONGO__DATABASE"]].users.insert_one(user)
    return {**user, "_id": str(inserted.inserted_id)}


def token_of(user):
    return mint(user["_id"], secret=JWT_SECRET)


def login(url, email, password):
    body = {"strategy": "local", "email": email, "password": password}
    return requests.post(url + "/authentication", json=body, timeout=30)


def parallel_statuses(url, credentials):
    """POST every (email, password) at once from a bounded pool; the statuses, counted."""
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return Counter(pool.map(lambda pair: login(url, *pair).status_code, credentials))


@pytest.fixture(scope="module")
def factory(mongo_url, tmp_path_factory):
    servers = AppServerFactory(mongo_url, tmp_path_factory.mktemp("throttle"))
    try:
        yield servers
    finally:
        servers.stop_all()


def start(factory, env, workers=2):
    server = factory(env, workers=workers)
    server.env = env
    return server


@pytest.fixture(scope="module")
def email_limited(factory, redis_url):
    env = throttled_env(redis_url, max_attempts=5, ip_max_attempts=10_000, register_max_attempts=3)
    return start(factory, distributed(env))


# --- logins ----------------------------------------------------------------------------------
def test_parallel_wrong_passwords_get_at_most_max_attempts_verifications_per_email(
    email_limited, mongo_client
):
    user = add_user(mongo_client, email_limited)
    statuses = parallel_statuses(email_limited.url, [(user["email"], "wrong password")] * PARALLEL)
    assert statuses == {401: 5, 429: PARALLEL - 5}, statuses
    refused = assert_error(login(email_limited.url, user["email"], PASSWORD), 429, "TooManyRequests")
    assert 0 < refused["data"]["retryAfter"] <= 300


def test_parallel_guesses_over_many_emails_get_at_most_ip_max_attempts_verifications(
    factory, redis_url, mongo_client
):
    server = start(factory, throttled_env(redis_url, max_attempts=10_000, ip_max_attempts=5))
    user = add_user(mongo_client, server)
    guesses = [(unique_email("sprayed"), "wrong password") for _ in range(PARALLEL)]
    statuses = parallel_statuses(server.url, guesses)
    assert statuses == {401: 5, 429: PARALLEL - 5}, statuses
    assert_error(login(server.url, user["email"], PASSWORD), 429, "TooManyRequests")


def test_a_success_clears_the_email_and_gives_the_address_its_count_back(redis_url):
    throttle = LoginThrottle(
        max_attempts=2, ip_max_attempts=3, redis_url=redis_url, prefix=f"kdk:test:{uuid.uuid4().hex}:"
    )
    try:
        throttle.attempt("a@b.c", "10.0.0.1")
        throttle.attempt("a@b.c", "10.0.0.1")
        throttle.success("a@b.c", "10.0.0.1")  # the email starts over; the address is back to 1
        throttle.attempt("a@b.c", "10.0.0.1")
        throttle.attempt("a@b.c", "10.0.0.1")  # address at 3: its limit, still allowed
        with pytest.raises(TooManyRequests):
            throttle.attempt("other@b.c", "10.0.0.1")
    finally:
        throttle.close()


def test_local_counters_count_every_parallel_hit_once():
    counters = LocalCounters()
    seen: list[int] = []
    lock = threading.Lock()

    def hit(_):
        count, _ttl = counters.hit("k", 60)
        with lock:
            seen.append(count)

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(hit, range(500)))
    assert sorted(seen) == list(range(1, 501))


# --- registration ----------------------------------------------------------------------------
def test_registrations_from_one_address_are_refused_with_429_after_the_limit(email_limited, mongo_client):
    url = email_limited.url
    first = {"email": unique_email("reg"), "password": PASSWORD}
    assert requests.post(url + "/users", json=first, timeout=10).status_code == 201
    assert_error(requests.post(url + "/users", json=first, timeout=10), 409, "Conflict")
    short = {"email": unique_email("reg"), "password": "short"}
    assert_error(requests.post(url + "/users", json=short, timeout=10), 400, "BadRequest")
    # Every registration counted: a known email now gets the same 429 as a new one.
    for body in ({"email": unique_email("reg"), "password": PASSWORD}, first):
        refused = assert_error(requests.post(url + "/users", json=body, timeout=10), 429, "TooManyRequests")
        assert 0 < refused["data"]["retryAfter"] <= 3600
    sock = Sock(url)
    try:
        error = sock.error("create", "users", {"email": unique_email("reg"), "password": PASSWORD}, {})
        assert error["code"] == 429
    finally:
        sock.close()
    admin = add_user(mongo_client, email_limited, role="admin")
    headers = {"Authorization": f"Bearer {token_of(admin)}"}
    created = requests.post(
        url + "/users",
        json={"email": unique_email("by-admin"), "password": PASSWORD},
        headers=headers,
        timeout=10,
    )
    assert created.status_code == 201, created.text  # authenticated creates are not registrations


# --- /distribution/stats ---------------------------------------------------------------------
def test_distribution_stats_answers_only_admins(email_limited, mongo_client):
    url = email_limited.url + "/distribution/stats"
    assert_error(requests.get(url, timeout=10), 401, "NotAuthenticated")
    bad = {"Authorization": "Bearer not-a-token"}
    assert_error(requests.get(url, headers=bad, timeout=10), 401, "NotAuthenticated")
    user = add_user(mongo_client, email_limited)
    as_user = {"Authorization": f"Bearer {token_of(user)}"}
    assert_error(requests.get(url, headers=as_user, timeout=10), 403, "Forbidden")
    admin = add_user(mongo_client, email_limited, role="admin")
    answer = requests.get(url, headers={"Authorization": f"Bearer {token_of(admin)}"}, timeout=10)
    assert answer.status_code == 200 and "stats" in answer.json(), answer.text
    mongo_client[email_limited.env["KDK_MONGO__DATABASE"]].users.update_one(
        {"email": admin["email"]}, {"$set": {"role": "user"}}
    )
    demoted = requests.get(url, headers={"Authorization": f"Bearer {token_of(admin)}"}, timeout=10)
    assert_error(demoted, 403, "Forbidden")  # the role is read now, not from the token


def test_distribution_stats_is_open_when_the_app_has_no_authentication(factory, redis_url):
    env = {**distributed(throttled_env(redis_url)), "KDK_AUTHENTICATION__ENABLED": "false"}
    server = start(factory, env, workers=0)
    answer = requests.get(server.url + "/distribution/stats", timeout=10)
    assert answer.status_code == 200 and "stats" in answer.json(), answer.text
