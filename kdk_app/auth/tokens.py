"""Access tokens: Feathers-shaped JWTs (docs/protocol.md §5.2), signed and checked with PyJWT.

Header ``{"alg": "HS256", "typ": "access"}``; claims ``iat, exp, aud, iss, sub, jti`` in that
order. Failures are 401 NotAuthenticated with the messages of the ``jsonwebtoken`` package
that Feathers uses (``jwt expired``, ``invalid signature``, ``jwt malformed`` …), so clients
see the same errors as with a Node server.

Why PyJWT here rather than flask-jwt-extended's ``create_access_token``/``decode_token``:
tokens are made and checked by the service layer, from socket handlers, expiry timers and
internal calls that have no Flask app context; flask-jwt-extended always adds its own claims
(``fresh``, ``type``, ``nbf``) where Feathers has exactly six; and its errors would need the
same translation anyway. flask-jwt-extended (PyJWT underneath) is still configured on the
Flask app with the same secret, audience and issuer (see ``configure.py``), so a plain Flask
view can use ``@jwt_required()`` with these tokens.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import jwt

from ..core.errors import NotAuthenticated
from ..core.serialization import iso_datetime

RESERVED_CLAIMS = ("iat", "exp", "aud", "iss", "sub", "jti", "nbf")
_UNITS = {
    "ms": 0.001,
    "msec": 0.001,
    "msecs": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
    "y": 31557600,
    "yr": 31557600,
    "yrs": 31557600,
    "year": 31557600,
    "years": 31557600,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_duration(value: Any) -> float:
    """Seconds from a number (seconds) or a string like ``"1d"``, ``"2h"``, ``"90 minutes"``."""
    if isinstance(value, bool):
        raise ValueError(f"Invalid duration {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        unit = match.group(2).lower() if match else ""
        if not match or (unit and unit not in _UNITS):
            raise ValueError(f"Invalid duration {value!r}: use seconds or a string like '1d', '12h', '30m'")
        seconds = float(match.group(1)) * _UNITS.get(unit, 1)
    if seconds <= 0:
        raise ValueError(f"Invalid duration {value!r}: must be positive")
    return seconds


def _error(message: str, name: str = "JsonWebTokenError", **extra: Any) -> NotAuthenticated:
    return NotAuthenticated(message, {"name": name, **extra})


class TokenManager:
    """Signs and verifies access tokens with one configuration (``authentication.jwt``)."""

    def __init__(
        self,
        secret: str,
        *,
        algorithm: str = "HS256",
        audience: str | None = None,
        issuer: str | None = None,
        expires_in: Any = "1d",
        header: Mapping[str, Any] | None = None,
        leeway: float = 0,
        public_key: str | None = None,
    ) -> None:
        if not secret:
            raise ValueError("A JWT secret is required")
        self.algorithm = algorithm
        self.signing_key = secret
        self.verify_key = public_key or secret
        self.audience = audience or None
        self.issuer = issuer or None
        self.expires_in = parse_duration(expires_in)
        self.header = {"typ": "access", **dict(header or {})}
        self.leeway = float(leeway or 0)

    @classmethod
    def from_settings(cls, secret: str, jwt_settings: Mapping[str, Any]) -> TokenManager:
        return cls(
            secret,
            algorithm=jwt_settings.get("algorithm", "HS256"),
            audience=jwt_settings.get("audience"),
            issuer=jwt_settings.get("issuer"),
            expires_in=jwt_settings.get("expires_in", "1d"),
            header=jwt_settings.get("header"),
            leeway=jwt_settings.get("leeway", 0),
            public_key=jwt_settings.get("public_key"),
        )

    def create(self, subject: str, claims: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """A new token for ``subject`` (the user id as a string), and its payload."""
        now = int(time.time())
        payload: dict[str, Any] = {"iat": now, "exp": now + int(self.expires_in)}
        if self.audience:
            payload["aud"] = self.audience
        if self.issuer:
            payload["iss"] = self.issuer
        payload["sub"] = str(subject)
        payload["jti"] = str(uuid.uuid4())
        for key, value in (claims or {}).items():
            if key not in RESERVED_CLAIMS:
                payload[key] = value
        token = jwt.encode(payload, self.signing_key, algorithm=self.algorithm, headers=self.header)
        return token, payload

    def verify(self, token: Any) -> dict[str, Any]:
        """The payload of a valid token, or 401 with the message ``jsonwebtoken`` would give."""
        if not isinstance(token, str) or not token:
            raise _error("jwt must be provided")
        parts = token.split(".")
        if len(parts) != 3:
            raise _error("jwt malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _error("jwt malformed") from None
        if not parts[2] or str(header.get("alg", "")).lower() == "none":
            raise _error("jwt signature is required")
        if header.get("alg") != self.algorithm:
            raise _error("invalid algorithm")
        expected_type = self.header.get("typ")
        if expected_type and header.get("typ") != expected_type:
            raise _error("invalid token type")
        try:
            payload = jwt.decode(
                token,
                self.verify_key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _error("jwt expired", "TokenExpiredError", expiredAt=self._expired_at(token)) from None
        except jwt.InvalidSignatureError:
            raise _error("invalid signature") from None
        except jwt.InvalidAudienceError:
            raise _error(f"jwt audience invalid. expected: {self.audience}") from None
        except jwt.InvalidIssuerError:
            raise _error(f"jwt issuer invalid. expected: {self.issuer}") from None
        except jwt.MissingRequiredClaimError as exc:
            if exc.claim == "aud":
                raise _error(f"jwt audience invalid. expected: {self.audience}") from None
            if exc.claim == "iss":
                raise _error(f"jwt issuer invalid. expected: {self.issuer}") from None
            raise _error("jwt malformed") from None
        except jwt.ImmatureSignatureError:
            raise _error("jwt not active", "NotBeforeError") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise _error("jwt malformed") from None
        if not isinstance(payload.get("sub"), str) or not payload["sub"]:
            raise _error("jwt malformed")
        return payload

    @staticmethod
    def _expired_at(token: str) -> str | None:
        try:
            exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
            if exp is None:
                return None
            return iso_datetime(dt.datetime.fromtimestamp(float(exp), dt.UTC))
        except Exception:
            return None
