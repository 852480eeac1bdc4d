"""Feathers error classes (docs/protocol.md §3.4), JSON-serialisable in the wire shape of §3.3."""

from __future__ import annotations

from typing import Any


class FeathersError(Exception):
    """Base of every error a client can receive: name, message, code, className, data, errors."""

    code: int = 500
    class_name: str = "general-error"

    def __init__(self, message: Any = None, data: Any = None, *, errors: Any = None) -> None:
        # Mirror the JS constructor: an options dict may carry message and errors, the rest is data.
        if isinstance(message, dict):
            options = dict(message)
            errors = options.pop("errors", errors)
            message = options.pop("message", None)
            data = {**options, **(data or {})} if options or data else None
        elif isinstance(message, BaseException):
            message = str(message)
            data = data if data is not None else {}
        self.message: str = str(message) if message is not None else "Error"
        self.data = data
        self.errors = errors
        super().__init__(self.message)

    @property
    def name(self) -> str:
        return type(self).__name__

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "message": self.message,
            "code": self.code,
            "className": self.class_name,
        }
        if self.data is not None:
            body["data"] = self.data
        if self.errors is not None:
            body["errors"] = self.errors
        return body

    def __repr__(self) -> str:
        return f"{self.name}({self.message!r})"


class BadRequest(FeathersError):
    code, class_name = 400, "bad-request"


class NotAuthenticated(FeathersError):
    code, class_name = 401, "not-authenticated"


class PaymentError(FeathersError):
    code, class_name = 402, "payment-error"


class Forbidden(FeathersError):
    code, class_name = 403, "forbidden"


class NotFound(FeathersError):
    code, class_name = 404, "not-found"


class MethodNotAllowed(FeathersError):
    code, class_name = 405, "method-not-allowed"


class NotAcceptable(FeathersError):
    code, class_name = 406, "not-acceptable"


class Timeout(FeathersError):
    code, class_name = 408, "timeout"


class Conflict(FeathersError):
    code, class_name = 409, "conflict"


class Gone(FeathersError):
    code, class_name = 410, "gone"


class LengthRequired(FeathersError):
    code, class_name = 411, "length-required"


class PayloadTooLarge(FeathersError):
    # Not in the Feathers name map: clients rebuild it as a plain Error carrying code 413.
    code, class_name = 413, "payload-too-large"


class RequestHeaderFieldsTooLarge(FeathersError):
    # Not in the Feathers name map either: refused by kdk serve's request reader before the app.
    code, class_name = 431, "request-header-fields-too-large"


class Unprocessable(FeathersError):
    code, class_name = 422, "unprocessable"


class TooManyRequests(FeathersError):
    code, class_name = 429, "too-many-requests"


class GeneralError(FeathersError):
    code, class_name = 500, "general-error"


class NotImplementedFeathers(FeathersError):
    code, class_name = 501, "not-implemented"

    @property
    def name(self) -> str:
        return "NotImplemented"


class BadGateway(FeathersError):
    code, class_name = 502, "bad-gateway"


class Unavailable(FeathersError):
    code, class_name = 503, "unavailable"


ERROR_CLASSES: dict[str, type[FeathersError]] = {
    cls().name: cls
    for cls in (
        BadRequest,
        NotAuthenticated,
        PaymentError,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        NotAcceptable,
        Timeout,
        Conflict,
        Gone,
        LengthRequired,
        PayloadTooLarge,
        Unprocessable,
        TooManyRequests,
        GeneralError,
        NotImplementedFeathers,
        BadGateway,
        Unavailable,
    )
}
ERRORS_BY_CODE: dict[int, type[FeathersError]] = {cls.code: cls for cls in ERROR_CLASSES.values()}


def convert(error: BaseException) -> FeathersError:
    """Any exception as a FeathersError; unknown ones become a GeneralError that reveals nothing."""
    if isinstance(error, FeathersError):
        return error
    return GeneralError("Internal server error")


def from_json(body: dict[str, Any]) -> FeathersError:
    """Rebuild an error from its wire shape (used by remote calls and clients)."""
    code = body.get("code")
    by_code = ERRORS_BY_CODE.get(code, GeneralError) if isinstance(code, int) else GeneralError
    cls = ERROR_CLASSES.get(str(body.get("name"))) or by_code
    error = cls(body.get("message"), body.get("data"), errors=body.get("errors"))
    return error
