"""Checking the merged configuration at start: unknown keys (typos) and values of the wrong type.

Known keys are those of the shipped ``config/default.py`` (recursively), the optional keys of
:data:`OPTIONAL`, and every key a project's own ``default.py`` sets. A key's expected kind comes
from its shipped default (a number, a boolean, a string, a list, a mapping; a ``None`` default
takes anything) unless :data:`KINDS_OF` says otherwise. Open maps (:data:`OPEN_MAPS`: service
names, roles, proxy paths, logger names) take any key. ``None`` passes everywhere: it leaves a
setting unset.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .config import read_config_file
from .distributed.settings import DEFAULTS as DISTRIBUTION_DEFAULTS

logger = logging.getLogger(__name__)

SHIPPED_DEFAULTS = Path(__file__).resolve().parent.parent / "config" / "default.py"

NUMBER, BOOL, STR, LIST, MAP = "a number", "a boolean", "a string", "a list", "a mapping"
ANY: tuple[str, ...] = ()
TESTS: dict[str, Callable[[Any], bool]] = {
    NUMBER: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    BOOL: lambda v: isinstance(v, bool),
    # A variable's JSON makes KDK_SYNC__STREAM=42 the number 42: as good as "42" for a name.
    STR: lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool),
    LIST: lambda v: isinstance(v, (list, tuple)),
    MAP: lambda v: isinstance(v, Mapping),
}

# Selectors, path transforms and publishers: strings, lists or callables.
_ANY_DISTRIBUTION = frozenset({"services", "remote_services", "remote_service_path", "publish"})


def _kind_of_distribution(key: str, default: Any) -> tuple[str, ...]:
    if key in _ANY_DISTRIBUTION or default is None:
        return ANY
    return (NUMBER,) if TESTS[NUMBER](default) else (STR,)


# Keys the code reads that config/default.py does not set (README "Configuration").
OPTIONAL: dict[str, tuple[str, ...]] = {
    "env": (STR,),
    "query_depth": (NUMBER,),
    "configure": (LIST,),
    "cors.enabled": (BOOL,),
    "socketio.queue_url": (STR,),
    "socketio.cors_allowed_origins": ANY,  # deprecated, still read
    "socketio.cors_credentials": (BOOL,),
    "socketio.ping_interval": (NUMBER,),
    "socketio.ping_timeout": (NUMBER,),
    "socketio.max_http_buffer_size": (NUMBER,),
    "socketio.async_mode": (STR,),
    "sync.url": (STR,),
    "sync.outbox": (STR,),
    "sync.block_ms": (NUMBER,),
    "sync.socket_timeout": (NUMBER,),
    "sync.instance_id": (STR,),
    "sync.start_id": (STR,),
    "sync.refusal_log_interval": (NUMBER,),
    "sync.orphan_after": (NUMBER,),
    "authentication.anonymous_room": (STR,),
    "authentication.authenticated_room": (STR,),
    "authentication.jwt.public_key": (STR,),
    "authentication.throttle.prefix": (STR,),
    "distribution": (MAP,),
    **{
        f"distribution.{key}": _kind_of_distribution(key, value)
        for key, value in DISTRIBUTION_DEFAULTS.items()
    },
}
# Where the code takes more than its default's own kind.
KINDS_OF: dict[str, tuple[str, ...]] = {
    "trusted_proxies": (STR, LIST),  # FORWARDED_ALLOW_IPS: "a,b"
    "paginate": (MAP, BOOL),  # False: no pagination
    "cors": (MAP, BOOL),  # False: no CORS headers
    "cors.origins": (STR, LIST),
    "cors.methods": (STR, LIST),
    "cors.headers": (STR, LIST),
    "cors.expose_headers": (STR, LIST),
    "authentication": (MAP, BOOL),
    "authentication.jwt.expires_in": (STR, NUMBER),  # seconds, or "15m", "1d"
    "logging.level": (STR, NUMBER),  # "DEBUG" or 10
}
# Maps whose keys are the project's own names (services, roles, paths, loggers).
OPEN_MAPS = frozenset(
    {"services", "permissions", "proxy_table", "logging.levels", "authentication.role_rooms"}
)
# Variables that gunicorn.conf.py or the test suite read, which the loader takes for settings too.
FOREIGN_VARIABLES = frozenset({"KDK_WORKER_CONNECTIONS", "KDK_WORKER_TIMEOUT"})
FOREIGN_PREFIXES = ("KDK_TEST_",)

Sources = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class Finding:
    level: Literal["warning", "error"]
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


class ConfigError(ValueError):
    """Settings of the wrong type: the app refuses to start, with one line naming each."""

    def __init__(self, findings: Iterable[Finding]) -> None:
        self.findings = [finding for finding in findings if finding.level == "error"]
        super().__init__("invalid configuration: " + "; ".join(f.message for f in self.findings))


def kind_of(value: Any) -> tuple[str, ...]:
    """The kinds a setting whose default is ``value`` accepts."""
    if value is None or callable(value):
        return ANY
    return next(((kind,) for kind in (BOOL, NUMBER, LIST, MAP) if TESTS[kind](value)), (STR,))


def schema_from(defaults: Mapping[str, Any], prefix: str = "") -> dict[str, tuple[str, ...]]:
    """Every dotted key of ``defaults``, with the kinds it accepts."""
    schema: dict[str, tuple[str, ...]] = {}
    for key, value in defaults.items():
        dotted = f"{prefix}{key}"
        schema[dotted] = KINDS_OF.get(dotted, kind_of(value))
        if isinstance(value, Mapping) and dotted not in OPEN_MAPS:
            schema.update(schema_from(value, dotted + "."))
    return schema


def shipped_schema(defaults: Mapping[str, Any] | None = None) -> dict[str, tuple[str, ...]]:
    """The known keys: the shipped defaults' (``defaults`` when read already) and :data:`OPTIONAL`."""
    if defaults is None:
        defaults = read_config_file(SHIPPED_DEFAULTS) if SHIPPED_DEFAULTS.exists() else {}
    return {**schema_from(defaults), **OPTIONAL}


def source_of(key: str, sources: Sources) -> str | None:
    """Where ``key`` was last set: its own entry, else its closest parent's."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        found = sources.get(".".join(parts[:end]))
        if found:
            return found[-1]
    return None


def check_config(
    settings: Mapping[str, Any], sources: Sources, schema: Mapping[str, tuple[str, ...]] | None = None
) -> list[Finding]:
    """Warnings for unknown keys (with the closest known one), errors for values of the wrong kind.

    ``sources`` is what :func:`~kdk_app.config.load_config` records (dotted key -> where it was set,
    in order); ``schema`` defaults to :func:`shipped_schema`.
    """
    schema = shipped_schema() if schema is None else schema
    findings: list[Finding] = []
    _check(settings, "", schema, sources, findings)
    return findings


def _declared(key: str, sources: Sources, schema: Mapping[str, tuple[str, ...]]) -> bool:
    """A project's own setting (its ``default.py`` sets it, outside kdk's sections); or a
    variable other programs read."""
    in_known_section = key.split(".")[0] in schema
    if not in_known_section and any(Path(source).name == "default.py" for source in sources.get(key) or ()):
        return True
    source = source_of(key, sources) or ""
    return source in FOREIGN_VARIABLES or source.startswith(FOREIGN_PREFIXES)


def _check(
    tree: Mapping[str, Any],
    prefix: str,
    schema: Mapping[str, tuple[str, ...]],
    sources: Sources,
    findings: list[Finding],
) -> None:
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        origin = source_of(dotted, sources)
        where = f" (from {origin})" if origin else ""
        if dotted not in schema:
            helper = not prefix and callable(value)  # a config file's own function
            if not helper and not _declared(dotted, sources, schema):
                findings.append(Finding("warning", dotted, _unknown(dotted, where, prefix, schema)))
            continue
        kinds = schema[dotted]
        if value is not None and kinds and not any(TESTS[kind](value) for kind in kinds):
            expected = " or ".join(kinds)
            message = f"setting {dotted}{where} must be {expected}, not {value!r} ({type(value).__name__})"
            findings.append(Finding("error", dotted, message))
            continue
        if isinstance(value, Mapping) and dotted not in OPEN_MAPS:
            if any(known.startswith(dotted + ".") for known in schema):  # else a free-form value
                _check(value, dotted + ".", schema, sources, findings)


def enforce_config(
    settings: Mapping[str, Any], sources: Sources, default_file: Path, defaults: Mapping[str, Any]
) -> list[Finding]:
    """:func:`check_config` at start: warnings logged, errors raised as one :class:`ConfigError`.

    ``defaults`` is ``default_file`` as read: reused when it is the shipped one.
    """
    shipped = defaults if default_file.resolve() == SHIPPED_DEFAULTS else None
    findings = check_config(settings, sources, shipped_schema(shipped))
    for finding in findings:
        if finding.level == "warning":
            logger.warning("%s", finding.message)
    if any(finding.level == "error" for finding in findings):
        raise ConfigError(findings)
    return findings


def _unknown(key: str, where: str, prefix: str, schema: Mapping[str, tuple[str, ...]]) -> str:
    siblings = [known for known in schema if known.startswith(prefix) and "." not in known[len(prefix) :]]
    # A "_" meant as "__" first (KDK_SYNC_URL -> sync.url), else a sibling (paginate.maxx -> .max).
    close = difflib.get_close_matches(key.replace("_", "."), list(schema), n=1, cutoff=0.9)
    close = close or difflib.get_close_matches(key, siblings, n=1)
    hint = f": did you mean {close[0]}?" if close else ""
    return f"unknown setting {key}{where}{hint}"
