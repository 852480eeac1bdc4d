"""The client's address as the throttles must count it, also behind a reverse proxy.

Behind nginx every request comes from the proxy's address, so a per-address limit would count
all clients as one (and one attacker could lock everybody out). When the peer is a trusted
proxy, the address is taken from ``X-Forwarded-For``: the right-most entry that is not itself
a trusted proxy, since each proxy appends the address it saw and only the entries added by
trusted proxies can be believed. A client that is not a trusted proxy cannot choose its
address with the header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

# The same default as gunicorn's FORWARDED_ALLOW_IPS: a proxy on this host.
DEFAULT_TRUSTED_PROXIES = ("127.0.0.1", "::1")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddress:
    """``address(environ)``: the client address, given the proxies to trust (``"*"``: any)."""

    def __init__(self, trusted_proxies: Iterable[str] | str = DEFAULT_TRUSTED_PROXIES) -> None:
        if isinstance(trusted_proxies, str):
            trusted_proxies = [part.strip() for part in trusted_proxies.split(",") if part.strip()]
        entries = list(trusted_proxies)
        self.trust_all = "*" in entries
        self.networks: list[Network] = [
            ipaddress.ip_network(entry, strict=False) for entry in entries if entry != "*"
        ]

    def is_trusted(self, address: str) -> bool:
        if self.trust_all:
            return True
        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def address(self, environ: Mapping[str, Any]) -> str | None:
        peer = environ.get("REMOTE_ADDR")
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        if not peer or not forwarded or not self.is_trusted(peer):
            return peer
        hops = [hop.strip() for hop in str(forwarded).split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.is_trusted(hop):
                return hop[:64]  # a bound on what a counter key holds
        return hops[0][:64] if hops else peer
