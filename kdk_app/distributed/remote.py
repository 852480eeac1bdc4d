"""``RemoteService``: the local stand-in for a service another instance serves.

Mounted with ``app.use``, it answers over REST and Socket.IO like a local service; this
instance's app hooks run first, then the provider runs the call through its own hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from ..core import STANDARD_METHODS
from .caller import Caller


class RemoteService:
    """The implementation behind a mounted remote path; ``app.service(path).remote`` is True."""

    remote = True

    def __init__(self, caller: Caller, path: str, methods: Iterable[str] = STANDARD_METHODS) -> None:
        self.caller = caller
        self.remote_path = path
        self.custom_methods = frozenset(m for m in methods if m not in STANDARD_METHODS)

    def _call(self, method: str, id: Any = None, data: Any = None, params: Any = None) -> Any:
        return self.caller.call(self.remote_path, method, id=id, data=data, params=params)

    def find(self, params: dict[str, Any] | None = None) -> Any:
        return self._call("find", params=params)

    def get(self, id: Any, params: dict[str, Any] | None = None) -> Any:
        return self._call("get", id=id, params=params)

    def create(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self._call("create", data=data, params=params)

    def update(self, id: Any, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self._call("update", id=id, data=data, params=params)

    def patch(self, id: Any, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self._call("patch", id=id, data=data, params=params)

    def remove(self, id: Any, params: dict[str, Any] | None = None) -> Any:
        return self._call("remove", id=id, params=params)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # Declared custom methods take (data, params), as local ones do.
        if name in self.__dict__.get("custom_methods", ()):
            return partial(self._custom, name)
        raise AttributeError(name)

    def _custom(self, method: str, data: Any = None, params: Any = None) -> Any:
        return self._call(method, data=data, params=params)

    def __repr__(self) -> str:
        return f"<RemoteService {self.remote_path}>"
