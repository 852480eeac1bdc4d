"""The throttles count the client's address, also behind a reverse proxy, and only a trusted
proxy can name it with X-Forwarded-For."""

from __future__ import annotations

import uuid

import pytest
import requests

from kdk_app.transports.client_address import ClientAddress

SECRET = "client-address-secret-" + "x" * 24


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "203.0.113.7", "203.0.113.7"),
        ("127.0.0.1", "198.51.100.1, 203.0.113.7", "203.0.113.7"),  # right-most untrusted hop
        ("127.0.0.1", "203.0.113.7, 127.0.0.1", "203.0.113.7"),  # two proxies on this host
        ("198.51.100.9", "203.0.113.7", "198.51.100.9"),  # not a proxy: the header is ignored
        ("127.0.0.1", "127.0.0.1", "127.0.0.1"),
    ],
)
def test_the_client_address_comes_from_x_forwarded_for_only_through_trusted_proxies(
    peer, forwarded, expected
):
    environ = {"REMOTE_ADDR": peer}
    if forwarded:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded
    assert ClientAddress().address(environ) == expected


def test_trusted_proxies_take_networks_and_a_comma_separated_string():
    addresses = ClientAddress("10.0.0.0/8, ::1")
    assert (
        addresses.address({"REMOTE_ADDR": "10.1.2.3", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}) == "203.0.113.7"
    )
    assert (
        addresses.address({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}) == "127.0.0.1"
    )


def failed_login(url: str, forwarded: str) -> int:
    body = {"strategy": "local", "email": f"{uuid.uuid4().hex}@example.com", "password": "wrong password"}
    headers = {"X-Forwarded-For": forwarded}
    return requests.post(url + "/authentication", json=body, headers=headers, timeout=30).status_code


def test_behind_a_local_proxy_each_client_address_is_throttled_on_its_own(app_server_factory):
    server = app_server_factory({"JWT_SECRET": SECRET, "KDK_AUTHENTICATION__THROTTLE__IP_MAX_ATTEMPTS": "3"})
    assert [failed_login(server.url, "203.0.113.7") for _ in range(3)] == [401, 401, 401]
    assert failed_login(server.url, "203.0.113.7") == 429
    assert failed_login(server.url, "198.51.100.1") == 401  # another client behind the proxy


def test_a_client_that_is_not_a_trusted_proxy_cannot_choose_its_address(app_server_factory):
    server = app_server_factory(
        {
            "JWT_SECRET": SECRET,
            "KDK_AUTHENTICATION__THROTTLE__IP_MAX_ATTEMPTS": "3",
            "FORWARDED_ALLOW_IPS": "10.0.0.1",
        }
    )
    statuses = [failed_login(server.url, f"203.0.113.{n}") for n in range(4)]
    assert statuses == [401, 401, 401, 429]
