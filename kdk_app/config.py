"""Configuration: config/default.py, then config/<KDK_ENV>.py, then environment variables.

Config files are plain Python. Every public top-level name that is not a module or a class
becomes a key (prefix helpers with ``_`` to keep them out). Dicts merge deeply, other values
replace. Environment variables win: ``PORT``, ``HOST``, ``MONGO_URL`` (or ``DB_URL``),
``REDIS_URL``, ``JWT_SECRET``, and ``KDK_<KEY>`` with ``__`` for nesting, whose value is read as
JSON when it parses (``KDK_PAGINATE__MAX=100`` is the number 100) and as a string otherwise.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import runpy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Variables that configure the loader itself, or that gunicorn.conf.py alone reads (the access
# log, the control socket): not app settings.
LOADER_VARIABLES = {"KDK_ENV", "KDK_CONFIG_DIR", "KDK_ACCESS_LOG", "KDK_GUNICORN_CONTROL_SOCKET"}
# Short names of nested keys (gunicorn.conf.py read KDK_LOG_LEVEL before `logging` existed).
ENV_ALIASES = {"KDK_LOG_FORMAT": ["logging", "format"], "KDK_LOG_LEVEL": ["logging", "level"]}


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def default_config_dir() -> Path:
    """``$KDK_CONFIG_DIR``, else ./config, else the config folder shipped beside the package."""
    if os.environ.get("KDK_CONFIG_DIR"):
        return Path(os.environ["KDK_CONFIG_DIR"])
    local = Path.cwd() / "config"
    if (local / "default.py").exists():
        return local
    return Path(__file__).resolve().parent.parent / "config"


def read_config_file(path: Path) -> dict[str, Any]:
    namespace = runpy.run_path(str(path), run_name=f"kdk_config_{path.stem}")
    return {
        key: value
        for key, value in namespace.items()
        if not key.startswith("_") and not inspect.ismodule(value) and not inspect.isclass(value)
    }


def shipped_defaults() -> dict[str, Any]:
    """A fresh copy of kdk's own ``config/default.py``, for a project whose ``default.py``
    changes a few settings and keeps the rest (``load_config`` reads one ``default.py`` only)::

        globals().update(shipped_defaults())
        services = {...}  # then the project's own settings replace those keys
    """
    return read_config_file(Path(__file__).resolve().parent.parent / "config" / "default.py")


def _parse_env_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _set_path(config: dict[str, Any], path: list[str], value: Any) -> None:
    node = config
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


def environment_overrides(
    environ: Mapping[str, str], sources: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """The settings ``environ`` sets; ``sources`` (when given) gets each dotted key's variable."""
    overrides: dict[str, Any] = {}

    def put(path: list[str], value: Any, variable: str) -> None:
        _set_path(overrides, path, value)
        _record_sources(sources, {".".join(path): value}, variable)

    for name, raw in sorted(environ.items()):
        if name in ENV_ALIASES:
            put(ENV_ALIASES[name], raw, name)
        elif name.startswith("KDK_") and name not in LOADER_VARIABLES:
            path = [part.lower() for part in name[4:].split("__") if part]
            if path:
                put(path, _parse_env_value(raw), name)
    if environ.get("PORT"):
        put(["port"], int(environ["PORT"]), "PORT")
    if environ.get("HOST"):
        put(["host"], environ["HOST"], "HOST")
    mongo_variable = "MONGO_URL" if environ.get("MONGO_URL") else "DB_URL"
    if environ.get(mongo_variable):
        put(["mongo", "url"], environ[mongo_variable], mongo_variable)
    if environ.get("REDIS_URL"):
        put(["redis", "url"], environ["REDIS_URL"], "REDIS_URL")
    if environ.get("FORWARDED_ALLOW_IPS"):  # gunicorn's setting: the same proxies are trusted
        put(["trusted_proxies"], environ["FORWARDED_ALLOW_IPS"], "FORWARDED_ALLOW_IPS")
    if environ.get("JWT_SECRET"):
        put(["authentication", "secret"], environ["JWT_SECRET"], "JWT_SECRET")
    return overrides


def _record_sources(
    sources: dict[str, list[str]] | None, tree: Mapping[str, Any], label: str, prefix: str = ""
) -> None:
    """``label`` as a source of every key of ``tree``, nested ones included (by dotted key)."""
    if sources is None:
        return
    for key, value in tree.items():
        sources.setdefault(f"{prefix}{key}", []).append(label)
        if isinstance(value, Mapping):
            _record_sources(sources, value, label, f"{prefix}{key}.")


def load_config(
    env: str | None = None,
    config_dir: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    sources: dict[str, list[str]] | None = None,
    *,
    check: bool = True,
) -> dict[str, Any]:
    """The merged configuration for ``env`` (default ``$KDK_ENV``, else ``development``).

    ``sources``, when given, gets where each dotted key was set, in order (the last one wins): file
    paths and variable names (a variable's JSON object lists its keys too). ``check``: unknown
    keys are logged, values of the wrong type raise :class:`~kdk_app.config_check.ConfigError`.
    """
    environ = os.environ if environ is None else environ
    env = env or environ.get("KDK_ENV") or "development"
    folder = Path(config_dir) if config_dir else default_config_dir()
    default_file = folder / "default.py"
    if not default_file.exists():
        raise FileNotFoundError(f"No configuration found at {default_file}")
    sources = {} if sources is None and check else sources
    config = defaults = read_config_file(default_file)
    _record_sources(sources, config, str(default_file))
    env_file = folder / f"{env}.py"
    if env_file.exists():
        env_config = read_config_file(env_file)
        _record_sources(sources, env_config, str(env_file))
        config = deep_merge(config, env_config)
    config = deep_merge(config, environment_overrides(environ, sources))
    config["env"] = env
    if check:
        from .config_check import enforce_config  # here: that module imports this one

        enforce_config(config, sources or {}, default_file, defaults)
    return config
