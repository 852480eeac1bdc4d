"""The logging of a serving process (``kdk serve``, each gunicorn process): one setup for both.

Text lines by default, JSON lines (python-json-logger) with ``logging.format: "json"``
(``KDK_LOG_FORMAT=json``); the root level and per-logger levels from ``logging.level`` and
``logging.levels``. Every line carries the id of the request or socket call being served
(:mod:`kdk_app.request_id` sets it), ``-`` outside of one. gunicorn's access lines go through the
same formatter: their request id and latency come from the line's own atoms.

Only the standard library and python-json-logger are imported here: gunicorn's master reads this
module before any worker has patched the standard library with gevent.
"""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

# The id of the request or socket call this context serves. A ContextVar, not app state: each
# thread and (gevent >= 20.12) each greenlet has its own value, and a new greenlet starts empty.
REQUEST_ID: ContextVar[str | None] = ContextVar("kdk_request_id", default=None)

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(process)d %(message)s"
JSON_RENAMES = {"levelname": "level", "name": "logger"}
# gunicorn's access line: the time, level and request id are in the line's prefix (or fields).
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(f)s" "%(a)s"'
# gunicorn atoms copied onto the access record: JSON lines get them as fields.
ACCESS_FIELDS = {
    "remote_addr": "h",
    "method": "m",
    "path": "U",
    "query": "q",
    "status": "s",
    "bytes": "B",
    "duration_ms": "M",
    "user_agent": "a",
}
REQUEST_ID_ATOM = "{x-request-id}o"  # the X-Request-Id response header
DEFAULTS: dict[str, Any] = {"format": "text", "level": "INFO", "levels": {}}


def current_request_id() -> str | None:
    """The id of the request or socket call being served, or None."""
    return REQUEST_ID.get()


class RequestIdFilter(logging.Filter):
    """Puts ``request_id`` on every record; on gunicorn's access lines, the one the response
    carried (the request's context is over when gunicorn writes the line) and its atoms."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name == "gunicorn.access" and isinstance(args, Mapping):
            record.request_id = args.get(REQUEST_ID_ATOM) or "-"
            for field, atom in ACCESS_FIELDS.items():
                setattr(record, field, args.get(atom))
        elif not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get() or "-"
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object a line: timestamp, level, logger, process, message, request_id, extras."""
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(JSON_FIELDS, rename_fields=JSON_RENAMES, timestamp=True)


def logging_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``logging`` settings with their defaults, checked: a bad value is a ValueError."""
    merged = {**DEFAULTS, **(settings.get("logging") or {})}
    fmt = str(merged["format"]).lower()
    if fmt not in FORMATS:
        raise ValueError(f"logging.format must be 'text' or 'json', not {merged['format']!r}")
    levels = merged["levels"] or {}
    if not isinstance(levels, Mapping):
        raise ValueError("logging.levels must map logger names to levels")
    return {
        "format": fmt,
        "level": _level(merged["level"], "logging.level"),
        "levels": {str(name): _level(level, f"logging.levels.{name}") for name, level in levels.items()},
    }


def _level(value: Any, key: str) -> str:
    name = str(value).upper()
    if name not in logging.getLevelNamesMapping():
        raise ValueError(f"{key}: unknown level {value!r} (DEBUG, INFO, WARNING, ERROR or CRITICAL)")
    return name


def logging_config(settings: Mapping[str, Any], *, access_log: str | None = None) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` dict for ``settings``: lines to stderr; gunicorn's
    access lines to ``access_log`` (``"-"``: stdout, else a file path), none when it is None."""
    options = logging_settings(settings)
    formatter: dict[str, Any] = (
        {"()": json_formatter} if options["format"] == "json" else {"format": TEXT_FORMAT}
    )
    handlers: dict[str, Any] = {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "kdk",
            "filters": ["request_id"],
        }
    }
    # gunicorn's loggers propagate to the root's handler; its access lines have one of their own.
    loggers: dict[str, Any] = {
        "gunicorn.error": {"handlers": [], "propagate": True},
        "gunicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
    }
    if access_log:
        handlers["access"] = {"formatter": "kdk", "filters": ["request_id"]}
        if access_log == "-":
            handlers["access"].update({"class": "logging.StreamHandler", "stream": "ext://sys.stdout"})
        else:  # reopened when logrotate moves the file
            handlers["access"].update(
                {"class": "logging.handlers.WatchedFileHandler", "filename": access_log}
            )
        loggers["gunicorn.access"].update(handlers=["access"], level="INFO")
    for name, level in options["levels"].items():
        loggers.setdefault(name, {})["level"] = level
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"kdk": formatter},
        "handlers": handlers,
        "loggers": loggers,
        "root": {"level": options["level"], "handlers": ["console"]},
    }


def configure_logging(
    settings: Mapping[str, Any], *, level: str | None = None, access_log: str | None = None
) -> None:
    """Set up this process's logging from ``settings``; ``level`` (``--log-level``) wins over
    ``logging.level``. Replaces the root's handlers, so it may run again (a gunicorn worker does)."""
    if level:
        settings = {**settings, "logging": {**(settings.get("logging") or {}), "level": level}}
    logging.config.dictConfig(logging_config(settings, access_log=access_log))
