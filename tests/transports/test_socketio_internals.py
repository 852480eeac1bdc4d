"""The python-socketio internals that kdk-app overrides or reads keep the shape it relies on.

``transports/rooms.py`` reimplements ``basic_disconnect`` from ``basic_leave_room`` and the
manager's bookkeeping; ``transports/redis_queue.py`` and ``kombu_queue.py`` replace the queue
managers' connect, publish and listen steps. A release that renames or reshapes any of these
fails here, before it fails in production. ``setup.cfg`` pins the floor to what is tested.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest
import socketio
from packaging.version import Version
from socketio import KombuManager, Manager, RedisManager
from socketio.base_manager import BaseManager

from kdk_app.transports.rooms import LocalManager

TESTED_FLOOR = Version("5.18")


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_the_installed_python_socketio_is_at_least_the_tested_floor():
    assert Version(version("python-socketio")) >= TESTED_FLOOR


def test_room_bookkeeping_has_the_shape_indexed_rooms_relies_on():
    assert parameters(BaseManager.basic_enter_room) == ["self", "sid", "namespace", "room", "eio_sid"]
    assert parameters(BaseManager.basic_leave_room) == ["self", "sid", "namespace", "room"]
    assert parameters(BaseManager.basic_disconnect) == ["self", "sid", "namespace", "kwargs"]
    manager = Manager()
    for attribute in ("rooms", "callbacks", "pending_connect", "pending_disconnect", "eio_to_sid"):
        assert hasattr(manager, attribute), attribute
    assert isinstance(manager.pending_connect, dict) and isinstance(manager.callbacks, dict)


def test_the_indexed_rooms_leave_nothing_behind_on_disconnect():
    manager = LocalManager()
    socketio.Server(client_manager=manager, async_mode="threading")  # a real server sets it up
    sid = manager.connect("eio-1", "/")
    manager.enter_room(sid, "/", "room-a")
    manager.disconnect(sid, "/")
    assert not any(sid in members for rooms in manager.rooms.values() for members in rooms.values())
    assert manager._rooms_of == {}


@pytest.mark.parametrize(
    ("manager", "methods"),
    [
        (RedisManager, ["_redis_connect", "_publish", "_redis_listen_with_retries", "_listen"]),
        (KombuManager, ["_connection", "_publish", "_listen"]),
    ],
)
def test_the_queue_steps_kdk_replaces_still_exist(manager, methods):
    for method in methods:
        assert callable(getattr(manager, method, None)), f"{manager.__name__}.{method}"
    assert parameters(manager._publish) == ["self", "data"]
    assert parameters(manager._listen) == ["self"]
