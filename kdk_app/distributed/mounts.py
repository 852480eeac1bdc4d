"""Keep the mounted proxies in step with the registry: ``app.use`` new paths, ``app.unuse`` gone ones."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from ..core import STANDARD_EVENTS, Application, Service
from .caller import Caller
from .registry import Declaration, Record
from .remote import RemoteService
from .stats import DistributionStats

logger = logging.getLogger(__name__)


def channel_publisher(spec: Any) -> Callable[..., Any] | None:
    """``distribution.publish``: a publisher, or channel names every event goes to."""
    if spec is None or callable(spec):
        return spec
    names = [spec] if isinstance(spec, str) else list(spec)
    return lambda data, context: names


class Mounts:
    def __init__(
        self,
        app: Application,
        caller: Caller,
        stats: DistributionStats,
        instance: str,
        *,
        consume: Callable[[str], bool],
        exposes: Callable[[str], bool],
        mount_path: Callable[[str], str],
        publish: Any = None,
    ) -> None:
        self.app = app
        self.caller = caller
        self.stats = stats
        self.instance = instance
        self.consume = consume
        self.exposes = exposes
        self.mount_path = mount_path
        self.publisher = channel_publisher(publish)
        # mounted path -> (remote path, declaration, the service we registered)
        self._mounted: dict[str, tuple[str, Declaration, Service]] = {}
        self._by_remote: dict[str, str] = {}

    @property
    def paths(self) -> dict[str, str]:
        """Mounted path -> remote path."""
        return {mounted: entry[0] for mounted, entry in self._mounted.items()}

    def proxy_for(self, remote_path: str) -> Service | None:
        mounted = self._by_remote.get(remote_path)
        entry = self._mounted.get(mounted) if mounted else None
        return entry[2] if entry else None

    def wanted(self, records: Iterable[Record]) -> dict[str, tuple[str, Declaration]]:
        wanted: dict[str, tuple[str, Declaration]] = {}
        for record in records:
            if record.instance == self.instance:
                continue
            for path, declaration in record.services.items():
                if not self.consume(path) or self.exposes(path):  # never consume what we serve
                    continue
                mounted = self.mount_path(path)
                previous = wanted.get(mounted)
                wanted[mounted] = (path, previous[1].merged(declaration) if previous else declaration)
        return wanted

    def reconcile(self, records: Iterable[Record]) -> None:
        wanted = self.wanted(records)
        for mounted, (path, declaration, _service) in list(self._mounted.items()):
            if wanted.get(mounted) != (path, declaration):
                self._unmount(mounted)
        for mounted, (path, declaration) in wanted.items():
            if mounted not in self._mounted:
                self._mount(mounted, path, declaration)

    def unmount_all(self) -> None:
        for mounted in list(self._mounted):
            self._unmount(mounted)

    def _mount(self, mounted: str, path: str, declaration: Declaration) -> None:
        existing = self.app.services.get(mounted)
        if existing is not None:
            # Never shadow a local service (nor a proxy someone else mounted).
            if getattr(existing.impl, "remote", False):
                logger.warning("distribution: '%s' is mounted by someone else; leaving it", mounted)
            return
        custom_events = [e for e in declaration.events if e not in STANDARD_EVENTS]
        impl = RemoteService(self.caller, path, declaration.methods)
        service = self.app.use(mounted, impl, methods=declaration.methods, events=custom_events)
        # The provider emits the standard events and they come back through the bus: the
        # proxy must not emit them a second time after its own calls.
        service.method_events = {}
        if self.publisher is not None:
            service.publish(self.publisher)
        self._mounted[mounted] = (path, declaration, service)
        self._by_remote[path] = mounted
        self.stats.bump("mounts")
        logger.info("distribution: mounted remote service '%s' at '%s'", path, mounted)

    def _unmount(self, mounted: str) -> None:
        path, _declaration, service = self._mounted.pop(mounted)
        if self._by_remote.get(path) == mounted:
            del self._by_remote[path]
        if self.app.services.get(mounted) is service:
            self.app.unuse(mounted)
        self.stats.bump("unmounts")
        logger.info("distribution: removed remote service '%s'", mounted)
