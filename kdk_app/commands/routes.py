"""``kdk routes``: every service with its methods, events, REST routes and whether it is remote.

Remote services are mounted by a serving process when it reads the distribution's registry; a
CLI command never starts that, so with ``distribution`` configured the registry is read once
here and the services other instances offer are listed as remote (nothing is mounted).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import click
from flask import Flask

from ..core import Application, Service
from ..core.protocol import REST_VERBS, STANDARD_EVENTS, STANDARD_METHODS
from ..serving import kdk_of
from .apps import script_info

logger = logging.getLogger(__name__)

ID_ROUTE = ("get", "update", "patch", "remove")
MULTI_METHODS = ("patch", "remove")  # without an id in the URL, when the service allows it


@dataclass
class RestRoute:
    verb: str
    url: str
    method: str
    header: str | None = None  # custom methods: X-Service-Method

    def text(self) -> str:
        suffix = f"  (X-Service-Method: {self.header})" if self.header else ""
        multi = "  (multi)" if self.method in MULTI_METHODS and not self.url.endswith("/:id") else ""
        return f"{self.verb:<6} {self.url}{suffix}{multi}"


@dataclass
class ServiceRoutes:
    path: str
    remote: bool
    methods: list[str]
    events: list[str]
    rest: list[RestRoute] = field(default_factory=list)
    provider: str | None = None  # remote: the path on the providing instances, and which ones
    instances: list[str] = field(default_factory=list)


def base_url(api_path: str, path: str) -> str:
    if path == "/":
        return api_path or "/"
    return f"{api_path.rstrip('/')}/{path}"


def _allows_multi(impl: Any, method: str) -> bool:
    allows = getattr(impl, "allows_multi", None)
    try:
        return bool(allows(method)) if callable(allows) else False
    except Exception:  # an adapter that needs params to decide: say nothing rather than guess
        return False


def rest_routes(api_path: str, path: str, methods: Iterable[str], impl: Any = None) -> list[RestRoute]:
    """The REST routes of a service's exposed ``methods``, in Feathers' order."""
    url = base_url(api_path, path)
    item = f"{url.rstrip('/')}/:id"
    exposed = list(methods)
    routes: list[RestRoute] = []
    for method in STANDARD_METHODS:
        if method not in exposed:
            continue
        if method in MULTI_METHODS and _allows_multi(impl, method):
            routes.append(RestRoute(REST_VERBS[method], url, method))
        routes.append(RestRoute(REST_VERBS[method], item if method in ID_ROUTE else url, method))
    for method in exposed:
        if method not in STANDARD_METHODS:
            routes.append(RestRoute("POST", url, method, header=method))
    return routes


def describe_service(service: Service, api_path: str) -> ServiceRoutes:
    return ServiceRoutes(
        path=service.path,
        remote=bool(getattr(service.impl, "remote", False)),
        methods=list(service.methods),
        events=list(service.events),
        rest=rest_routes(api_path, service.path, service.methods, service.impl),
        provider=getattr(service.impl, "remote_path", None),
    )


def registry_services(flask_app: Flask, kdk: Application, api_path: str) -> list[ServiceRoutes]:
    """What this app would mount from the distribution's registry now (read once, no mount)."""
    distribution = flask_app.extensions.get("kdk_distribution")
    if distribution is None:
        return []
    try:
        records = list(distribution.registry.read().values())
        wanted = distribution.mounts.wanted(records)
    except Exception as exc:  # Redis down or unreachable: the local services are still worth listing
        logger.warning("distribution registry not read, remote services not listed: %s", exc)
        return []
    listed = []
    for mounted, (path, declaration) in sorted(wanted.items()):
        if mounted in kdk.services:
            continue  # already mounted in this process (a shell that started serving)
        events = list(dict.fromkeys([*STANDARD_EVENTS, *declaration.events]))
        listed.append(
            ServiceRoutes(
                path=mounted,
                remote=True,
                methods=list(declaration.methods),
                events=events,
                rest=rest_routes(api_path, mounted, declaration.methods),
                provider=path,
                instances=sorted(r.instance for r in records if path in r.services),
            )
        )
    return listed


def app_routes(flask_app: Flask) -> list[ServiceRoutes]:
    """Every service of ``flask_app``: the local ones, then the remote ones, by path."""
    kdk = kdk_of(flask_app)
    api_path = kdk.get("api_path") or ""
    local = [describe_service(service, api_path) for _, service in sorted(kdk.services.items())]
    return local + registry_services(flask_app, kdk, api_path)


def format_routes(routes: list[ServiceRoutes]) -> str:
    lines: list[str] = []
    for entry in routes:
        where = "remote" if entry.remote else "local"
        if entry.remote and entry.provider:
            where += f": {entry.provider}"
            if entry.instances:
                where += " on " + ", ".join(entry.instances)
        lines.append(f"{entry.path}  ({where})")
        lines.append(f"  methods  {', '.join(entry.methods) or '-'}")
        lines.append(f"  events   {', '.join(entry.events) or '-'}")
        rest = [route.text() for route in entry.rest] or ["-"]
        lines.append(f"  REST     {rest[0]}")
        lines.extend(f"           {line}" for line in rest[1:])
        lines.append("")
    return "\n".join(lines)


@click.command("routes")
@click.option("--json", "as_json", is_flag=True, help="one JSON document instead of text")
def routes_command(as_json: bool) -> None:
    """Every service: path, methods, events, REST routes, local or remote."""
    flask_app = script_info().load_app()
    try:
        routes = app_routes(flask_app)
    finally:
        kdk_of(flask_app).teardown()
    if as_json:
        click.echo(json.dumps([asdict(entry) for entry in routes], indent=2))
    else:
        click.echo(format_routes(routes), nl=False)
