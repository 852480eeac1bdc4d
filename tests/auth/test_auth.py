"""Authentication and authorization against a real server: wire shapes (docs/protocol.md §5), the attack
list (forged, expired and foreign tokens, query injection, field leaks, other users' records),
sockets (login state, rooms, events, handshake tokens, expiry) and login throttling.

One app process for the module (its own database, a known JWT secret so tests can mint tokens).
"""

from __future__ import annotations

import json
import threading
import uuid

import jwt
import pytest
import socketio
from accounts import (
    AUDIENCE,
    ISSUER,
    MISSING_ID,
    NO_STRATEGY,
    PASSWORD,
    SECRET,
    STRATEGY_NOT_ALLOWED,
    Api,
    Sock,
    assert_error,
    assert_nothing_leaked,
    b64,
    close_all,
    jwt_login,
    mint,
    unique_email,
)
from clients import wait_until
from servers import AppServerFactory


@pytest.fixture
def sockets():
    opened = []

    def open_socket(url, **kwargs):
        sock = Sock(url, **kwargs)
        opened.append(sock)
        return sock

    yield open_socket
    close_all(opened)


def make_admin(mongo_client, database, api):
    """A user promoted in the database (the API never lets anyone promote themself)."""
    created = api.register(email=unique_email("admin"))
    mongo_client[database].users.update_one({"email": created["email"]}, {"$set": {"role": "admin"}})
    return created, api.login(created["email"])["accessToken"]


# --- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(mongo_url, tmp_path_factory):
    factory = AppServerFactory(mongo_url, tmp_path_factory.mktemp("auth"))
    database = f"auth_{uuid.uuid4().hex[:10]}"
    try:
        running = factory({"JWT_SECRET": SECRET, "KDK_MONGO__DATABASE": database})
        running.database = database
        yield running
    finally:
        factory.stop_all()


@pytest.fixture
def api(server):
    return Api(server.url)


@pytest.fixture
def db(server, mongo_client):
    return mongo_client[server.database]


# --- shapes ----------------------------------------------------------------------------------
def test_register_then_local_and_jwt_logins_answer_the_feathers_shapes(api, db):
    email = unique_email()
    created = api.register(email=email.upper())  # stored lower-case
    assert created["email"] == email and created["role"] == "user" and "password" not in created
    stored = db.users.find_one({"email": email})
    assert stored["password"].startswith("$argon2id$") and PASSWORD not in stored["password"]

    body = api.login(email.upper())
    token = body["accessToken"]
    assert list(body) == ["accessToken", "authentication", "user"]
    assert body["user"] == created
    assert body["authentication"]["strategy"] == "local"
    payload = body["authentication"]["payload"]
    assert list(payload) == ["iat", "exp", "aud", "iss", "sub", "jti"]
    assert payload["sub"] == created["_id"] and payload["exp"] - payload["iat"] == 86400
    assert (payload["aud"], payload["iss"]) == (AUDIENCE, ISSUER)
    assert uuid.UUID(payload["jti"]).version == 4
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "access"}
    assert jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE) == payload

    again = api("POST", "/authentication", json={"strategy": "jwt", "accessToken": token})
    assert again.status_code == 201
    assert again.json() == {
        "accessToken": token,
        "authentication": {"strategy": "jwt", "accessToken": token, "payload": payload},
        "user": created,
    }
    logout = api("DELETE", "/authentication", token=token)
    assert logout.status_code == 200 and logout.json() == again.json()
    other_token = mint(created["_id"])
    assert_error(api("DELETE", f"/authentication/{other_token}", token=token), 401, "NotAuthenticated")
    assert_error(api("DELETE", "/authentication"), 401, "NotAuthenticated", "Not authenticated")


@pytest.mark.parametrize(
    "body, message",
    [
        ({}, NO_STRATEGY),
        ({"email": "a@b.c", "password": "x"}, NO_STRATEGY),
        ({"strategy": "oauth"}, STRATEGY_NOT_ALLOWED),
    ],
)
def test_missing_or_unknown_strategy(api, body, message):
    assert_error(api("POST", "/authentication", json=body), 401, "NotAuthenticated", message)


def test_authorization_header_schemes(api):
    _, token = api.user()
    for header in (f"Bearer {token}", f"bearer {token}", f"JWT {token}", token):
        assert api("GET", "/notes", headers={"Authorization": header}).status_code == 200, header
    for header in ("Basic dXNlcjpwdw==", f"Token {token}", ""):
        assert_error(api("GET", "/notes", headers={"Authorization": header}), 401, "NotAuthenticated")
    assert_error(api("GET", "/notes"), 401, "NotAuthenticated", "Not authenticated")
    assert api("GET", "/messages").status_code == 200  # messages stays open to everyone


# --- the attack list -------------------------------------------------------------------------
def _attack_tokens(user_id, good):
    header, payload, signature = good.split(".")
    claims = jwt.decode(good, SECRET, algorithms=["HS256"], audience=AUDIENCE)
    forged_payload = b64({**claims, "sub": MISSING_ID})
    return {
        "alg none": (f"{b64({'alg': 'none', 'typ': 'access'})}.{payload}.", "jwt signature is required"),
        "alg none with signature": (
            f"{b64({'alg': 'none', 'typ': 'access'})}.{payload}.{signature}",
            "jwt signature is required",
        ),
        "tampered payload": (f"{header}.{forged_payload}.{signature}", "invalid signature"),
        "tampered signature": (f"{header}.{payload}.{signature[:-4]}AAAA", "invalid signature"),
        "other secret": (mint(user_id, secret="another-secret-" + "x" * 60), "invalid signature"),
        "expired": (mint(user_id, exp_in=-10), "jwt expired"),
        "wrong audience": (
            mint(user_id, aud="https://x.example"),
            f"jwt audience invalid. expected: {AUDIENCE}",
        ),
        "wrong issuer": (mint(user_id, iss="evil"), f"jwt issuer invalid. expected: {ISSUER}"),
        "HS512": (mint(user_id, algorithm="HS512"), "invalid algorithm"),
        "malformed": ("not-a-jwt", "jwt malformed"),
        "garbage segments": ("a.b.c", "jwt malformed"),
    }


def test_forged_expired_and_foreign_tokens_are_refused_with_jsonwebtoken_messages(api):
    user, good = api.user()
    for label, (token, message) in _attack_tokens(user["_id"], good).items():
        body = assert_error(api("GET", "/notes", token=token), 401, "NotAuthenticated", message)
        assert body["message"] == message, label
        again = api("POST", "/authentication", json={"strategy": "jwt", "accessToken": token})
        assert_error(again, 401, "NotAuthenticated", message)
    expired_token = mint(user["_id"], exp_in=-5)
    expired = api("POST", "/authentication", json={"strategy": "jwt", "accessToken": expired_token})
    data = expired.json()["data"]
    assert data["name"] == "TokenExpiredError" and data["expiredAt"].endswith("Z")


def test_a_token_of_a_deleted_user_is_refused(api):
    user, token = api.user()
    assert api("DELETE", f"/users/{user['_id']}", token=token).status_code == 200
    assert_error(api("GET", "/notes", token=token), 401, "NotAuthenticated")
    again = api("POST", "/authentication", json={"strategy": "jwt", "accessToken": token})
    assert_error(again, 401, "NotAuthenticated")
    assert_error(api("GET", "/notes", token=mint(MISSING_ID)), 401, "NotAuthenticated")


@pytest.mark.parametrize(
    "credentials",
    [
        {"email": {"$gt": ""}, "password": PASSWORD},
        {"email": {"$ne": "x"}, "password": {"$ne": "x"}},
        {"email[$ne]": "x", "password": PASSWORD},
        {"email": ["a", "b"], "password": PASSWORD},
        {"email": "EMAIL", "password": {"$gt": ""}},
        {"email": "EMAIL", "password": None},
        {"email": "EMAIL"},
        {"email": "EMAIL", "password": "wrong password"},
        {"email": "nobody@example.com", "password": PASSWORD},
        {"email": "not an email", "password": PASSWORD},
    ],
)
def test_login_refuses_injection_and_bad_credentials_with_invalid_login(api, credentials):
    user = api.register()
    credentials = {k: (user["email"] if v == "EMAIL" else v) for k, v in credentials.items()}
    response = api("POST", "/authentication", json={"strategy": "local", **credentials})
    assert_error(response, 401, "NotAuthenticated", "Invalid login")


def test_query_string_on_login_is_ignored(api):
    user = api.register()
    response = api("POST", "/authentication?email[$ne]=x", json={"strategy": "local", "password": PASSWORD})
    assert_error(response, 401, "NotAuthenticated", "Invalid login")
    good = {"strategy": "local", "email": user["email"], "password": PASSWORD}
    ok = api("POST", "/authentication?email[$ne]=x", json=good)
    assert ok.status_code == 201


def test_the_password_is_never_returned_selected_queried_or_stored_in_clear(api, db, server, mongo_client):
    user, token = api.user()
    path = f"/users/{user['_id']}"
    assert_error(api("GET", path + "?$select[]=password", token=token), 400, "BadRequest")
    assert_error(api("GET", "/users?$select[]=password", token=token), 400, "BadRequest")
    assert_error(api("GET", "/users?password[$ne]=x", token=token), 400, "BadRequest")
    assert_error(api("GET", "/users?$sort[password]=1", token=token), 400, "BadRequest")
    for response in (
        api("GET", path, token=token),
        api("GET", "/users", token=token),
        api("GET", path + "?$select[]=email", token=token),
        api("PATCH", path, token=token, json={"password": "a new long password"}),
    ):
        assert response.status_code == 200, response.text
        assert_nothing_leaked(response.text)
        assert "a new long password" not in response.text
    stored = db.users.find_one({"email": user["email"]})["password"]
    assert stored.startswith("$argon2id$")
    old = {"strategy": "local", "email": user["email"], "password": PASSWORD}
    assert_error(api("POST", "/authentication", json=old), 401, "NotAuthenticated")
    assert api.login(user["email"], "a new long password")["user"] == user
    for body, code, name in (
        ({"email": unique_email(), "password": "short"}, 400, "BadRequest"),
        ({"email": user["email"], "password": PASSWORD}, 409, "Conflict"),
        ({"email": unique_email(), "password": PASSWORD, "x": 1}, 400, "BadRequest"),
    ):
        assert_error(api("POST", "/users", json=body), code, name)
    _, admin_token = make_admin(mongo_client, server.database, api)
    everyone = api("GET", "/users?$limit=50", token=admin_token)
    assert everyone.json()["total"] >= 2
    assert_nothing_leaked(everyone.text)


def test_users_read_and_change_only_themselves_and_never_their_role(api, server, mongo_client):
    alice, alice_token = api.user()
    bob, _ = api.user()
    assert_error(api("GET", f"/users/{bob['_id']}", token=alice_token), 404, "NotFound")
    assert_error(api("PATCH", f"/users/{bob['_id']}", token=alice_token, json={"name": "x"}), 404, "NotFound")
    assert_error(api("DELETE", f"/users/{bob['_id']}", token=alice_token), 404, "NotFound")
    replacement = {"email": alice["email"], "password": PASSWORD}
    assert_error(api("PUT", f"/users/{alice['_id']}", token=alice_token, json=replacement), 403, "Forbidden")
    page = api("GET", "/users", token=alice_token).json()
    assert [u["_id"] for u in page["data"]] == [alice["_id"]]
    assert api("GET", f"/users?_id={bob['_id']}", token=alice_token).json()["total"] == 0
    assert api("GET", f"/users?$or[0][_id]={bob['_id']}", token=alice_token).json()["total"] == 0
    promote = {"role": "admin"}
    assert_error(api("PATCH", f"/users/{alice['_id']}", token=alice_token, json=promote), 403, "Forbidden")
    assert_error(api("PATCH", "/users", token=alice_token, json={"name": "all"}), 405, "MethodNotAllowed")
    as_admin = {"email": unique_email(), "password": PASSWORD, "role": "admin"}
    assert_error(api("POST", "/users", json=as_admin), 403, "Forbidden")
    another = {"email": unique_email(), "password": PASSWORD}
    assert_error(api("POST", "/users", token=alice_token, json=another), 403, "Forbidden")
    renamed = api("PATCH", f"/users/{alice['_id']}", token=alice_token, json={"name": "Alice"})
    assert renamed.status_code == 200 and renamed.json()["role"] == "user"

    _, admin_token = make_admin(mongo_client, server.database, api)
    promoted = api("PATCH", f"/users/{bob['_id']}", token=admin_token, json={"role": "admin"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    unknown_role = {"role": "emperor"}
    assert_error(
        api("PATCH", f"/users/{bob['_id']}", token=admin_token, json=unknown_role), 400, "BadRequest"
    )
    assert api("GET", f"/users/{alice['_id']}", token=admin_token).status_code == 200


def test_notes_belong_to_their_owner(api, server, mongo_client):
    alice, alice_token = api.user()
    bob, bob_token = api.user()
    note = api("POST", "/notes", token=alice_token, json={"text": "alice's", "owner": bob["_id"]})
    assert note.status_code == 201 and note.json()["owner"] == alice["_id"]  # the owner cannot be forged
    note = note.json()
    path = f"/notes/{note['_id']}"
    api("POST", "/notes", token=bob_token, json={"text": "bob's"})

    assert api("GET", path, token=alice_token).json() == note
    assert_error(api("GET", path, token=bob_token), 404, "NotFound")
    assert_error(api("PATCH", path, token=bob_token, json={"text": "mine"}), 404, "NotFound")
    assert_error(api("PUT", path, token=bob_token, json={"text": "mine"}), 404, "NotFound")
    assert_error(api("DELETE", path, token=bob_token), 404, "NotFound")
    for query in ("", f"?owner={alice['_id']}", f"?_id={note['_id']}", f"?$or[0][owner]={alice['_id']}"):
        page = api("GET", "/notes" + query, token=bob_token).json()
        assert all(n["owner"] == bob["_id"] for n in page["data"]), query
        assert note["_id"] not in [n["_id"] for n in page["data"]]
    assert api("PATCH", "/notes", token=bob_token, json={"text": "all mine"}).json()[0]["owner"] == bob["_id"]
    assert api("GET", path, token=alice_token).json()["text"] == "alice's"  # untouched by bob's multi patch

    given = api("PATCH", path, token=alice_token, json={"owner": bob["_id"], "text": "edited"})
    assert given.status_code == 200 and given.json()["owner"] == alice["_id"]
    replaced = api("PUT", path, token=alice_token, json={"text": "replaced"})
    assert replaced.json() == {"_id": note["_id"], "text": "replaced", "owner": alice["_id"]}

    _, admin_token = make_admin(mongo_client, server.database, api)
    everything = api("GET", "/notes?$limit=50", token=admin_token).json()
    assert {alice["_id"], bob["_id"]} <= {n["owner"] for n in everything["data"]}
    assert api("PUT", path, token=admin_token, json={"text": "by admin"}).json()["owner"] == alice["_id"]
    assert api("DELETE", path, token=alice_token).status_code == 200
    assert_error(api("GET", path, token=alice_token), 404, "NotFound")


# --- sockets ---------------------------------------------------------------------------------
def test_socket_login_carries_the_user_and_events_go_only_to_the_owner(api, server, sockets, mongo_client):
    alice = api.register()
    bob = api.register()
    _, admin_token = make_admin(mongo_client, server.database, api)
    anonymous = sockets(server.url)
    alice_sock = sockets(server.url)
    bob_sock = sockets(server.url)
    admin_sock = sockets(server.url)

    assert alice_sock.error("find", "notes", {})["message"] == "Not authenticated"
    result = alice_sock.login(alice["email"])
    assert result["user"] == alice and result["authentication"]["strategy"] == "local"
    bob_sock.login(bob["email"])
    admin_sock.call("create", "authentication", jwt_login(admin_token), {})

    mine = alice_sock.call("create", "notes", {"text": "secret"}, {})
    assert mine["owner"] == alice["_id"]
    bobs = bob_sock.call("create", "notes", {"text": "bob's"}, {})
    api("POST", "/messages", json={"text": "barrier"})  # reaches everyone, after the notes events
    for sock in (anonymous, alice_sock, bob_sock, admin_sock):
        assert wait_until(lambda s=sock: s.named("messages created")), "no barrier event"
    assert wait_until(lambda: len(admin_sock.named("notes created")) == 2)
    assert [n["_id"] for n in alice_sock.named("notes created")] == [mine["_id"]]
    assert [n["_id"] for n in bob_sock.named("notes created")] == [bobs["_id"]]
    assert anonymous.named("notes created") == []

    assert bob_sock.error("get", "notes", mine["_id"], {})["code"] == 404
    assert bob_sock.call("find", "notes", {})["total"] == 1
    alice_sock.call("patch", "users", alice["_id"], {"name": "A"}, {})
    assert wait_until(lambda: alice_sock.named("users patched"))
    assert_nothing_leaked(json.dumps(alice_sock.events + admin_sock.events))
    assert bob_sock.named("users patched") == [] and anonymous.named("users patched") == []

    logout = alice_sock.call("remove", "authentication", None, {})
    assert logout["user"]["_id"] == alice["_id"]
    assert alice_sock.error("find", "notes", {})["code"] == 401
    alice_again = sockets(server.url)
    alice_again.call("create", "authentication", jwt_login(result["accessToken"]), {})
    api("PATCH", f"/notes/{mine['_id']}", token=result["accessToken"], json={"text": "after logout"})
    assert wait_until(lambda: alice_again.named("notes patched"))
    assert alice_sock.named("notes patched") == []  # the logged-out socket left user:<id>


def test_handshake_tokens_and_bad_ones(api, server, sockets):
    user, token = api.user()
    by_auth = sockets(server.url, auth={"accessToken": token})
    assert by_auth.call("find", "notes", {})["total"] == 0
    by_header = sockets(server.url, headers={"Authorization": f"Bearer {token}"})
    note = by_header.call("create", "notes", {"text": "hi"}, {})
    assert wait_until(lambda: by_auth.named("notes created"))
    assert note["owner"] == user["_id"]
    refused = []

    def try_connect(**kwargs):
        try:
            Sock(server.url, **kwargs)
        except socketio.exceptions.ConnectionError as error:
            refused.append(error)

    attempts = [
        {"auth": {"accessToken": mint(user["_id"], exp_in=-5)}},
        {"auth": {"accessToken": token[:-3] + "abc"}},
        {"headers": {"Authorization": "Bearer garbage"}},
    ]
    threads = [threading.Thread(target=try_connect, kwargs=kwargs) for kwargs in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert len(refused) == len(attempts)


def test_a_socket_is_disconnected_when_its_token_expires(api, server, sockets):
    user = api.register()
    sock = sockets(server.url)
    sock.call("create", "authentication", jwt_login(mint(user["_id"], exp_in=2)), {})
    assert sock.call("find", "notes", {})["total"] == 0
    assert sock.disconnected.wait(6), "the socket was not disconnected at exp"
    keeper = sockets(server.url)  # a later token resets the timer: no disconnect at the first exp
    keeper.call("create", "authentication", jwt_login(mint(user["_id"], exp_in=2)), {})  # exp in 1-2 s
    keeper.call("create", "authentication", jwt_login(mint(user["_id"], exp_in=60)), {})
    assert not keeper.disconnected.wait(2.5)


# --- throttling -------------------------------------------------------------------------------
def test_repeated_failed_logins_are_refused_with_429(api):
    user = api.register()
    bad = {"strategy": "local", "email": user["email"], "password": "wrong password"}
    for _ in range(5):
        assert_error(api("POST", "/authentication", json=bad), 401, "NotAuthenticated", "Invalid login")
    refused = assert_error(api("POST", "/authentication", json=bad), 429, "TooManyRequests")
    assert 0 < refused["data"]["retryAfter"] <= 300
    good = {**bad, "password": PASSWORD}
    assert_error(api("POST", "/authentication", json=good), 429, "TooManyRequests")
    other = api.register()
    assert api.login(other["email"])["user"] == other  # only that email is throttled
