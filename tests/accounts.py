"""Accounts and calls shared by the authentication tests and the distribution tests: the test
JWT secret, minted tokens, a REST client with users, a socket client whose calls raise on errors.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid

import jwt
import pytest
import requests
from clients import Listener

SECRET = "kdk-test-secret-" + "s" * 60
AUDIENCE = ISSUER = "kdk-app"
MISSING_ID = "568225fbfe21222432e836ff"
PASSWORD = "correct horse battery"
NO_STRATEGY = "Invalid authentication information (no `strategy` set)"
STRATEGY_NOT_ALLOWED = "Invalid authentication information (strategy not allowed in authStrategies)"


def unique_email(label="user"):
    return f"{label}-{uuid.uuid4().hex[:10]}@example.com"


def mint(sub, *, secret=SECRET, exp_in=3600, headers=None, algorithm="HS256", **claims):
    now = int(time.time())
    payload = {"iat": now, "exp": now + exp_in, "aud": AUDIENCE, "iss": ISSUER, "sub": sub}
    payload["jti"] = str(uuid.uuid4())
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm=algorithm, headers={"typ": "access", **(headers or {})})


def jwt_login(token):
    return {"strategy": "jwt", "accessToken": token}


def b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def assert_error(response, code, name, message=None):
    assert response.status_code == code, response.text
    body = response.json()
    assert (body["name"], body["code"]) == (name, code), body
    if message is not None:
        assert body["message"] == message, body
    assert_nothing_leaked(response.text)
    return body


def assert_nothing_leaked(text):
    assert "stack" not in text and "Traceback" not in text
    assert "$argon2" not in text and PASSWORD not in text
    assert not re.search(r'"password"\s*:\s*"', text)  # a field error may name it, never a value


class Api:
    """REST calls against one server, with helpers for users and tokens."""

    def __init__(self, url):
        self.url = url
        self.http = requests.Session()

    def __call__(self, method, path, token=None, headers=None, **kwargs):
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, self.url + path, headers=headers, timeout=10, **kwargs)

    def register(self, email=None, password=PASSWORD, **extra):
        email = email or unique_email()
        response = self("POST", "/users", json={"email": email, "password": password, **extra})
        assert response.status_code == 201, response.text
        return response.json()

    def login(self, email, password=PASSWORD):
        body = {"strategy": "local", "email": email, "password": password}
        response = self("POST", "/authentication", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def user(self, **extra):
        """A registered, logged-in user: (user, token)."""
        created = self.register(**extra)
        return created, self.login(created["email"])["accessToken"]


class CallError(Exception):
    def __init__(self, error):
        super().__init__(error.get("message"))
        self.error = error


class Sock(Listener):
    """A Feathers socket client whose calls return the result or raise CallError."""

    def __init__(self, url, *, auth=None, headers=None, reconnection=False):
        super().__init__(url, auth=auth, headers=headers, reconnection=reconnection)

    def call(self, method, *args):
        answer = self.client.call(method, args, timeout=10)
        if isinstance(answer, (list, tuple)) and len(answer) == 2 and answer[0] is None:
            return answer[1]
        raise CallError(answer if isinstance(answer, dict) else answer[0])

    def error(self, method, *args):
        with pytest.raises(CallError) as info:
            self.call(method, *args)
        assert "stack" not in info.value.error
        return info.value.error

    def login(self, email, password=PASSWORD):
        credentials = {"strategy": "local", "email": email, "password": password}
        return self.call("create", "authentication", credentials, {})


def close_all(socks):
    for sock in socks:
        sock.close()
