"""Bench-only WSGI entry: the app of ``wsgi.py`` with the ``messages`` service in memory.

``bench/fanout.py --adapter memory`` serves this module, to take the database out of the
create -> event -> fan-out path (each instance keeps its own store; events still travel through
Redis). Everything else (configuration, channels, Socket.IO, Redis queue) is the real app's.
"""

from gevent import monkey

monkey.patch_all()

from kdk_app.app import create_app  # noqa: E402
from kdk_app.config import load_config  # noqa: E402

_config = load_config()
_messages = dict(_config["services"]["messages"])
for _key in ("collection", "indexes"):
    _messages.pop(_key, None)
_messages["adapter"] = "memory"
_config["services"] = {**_config["services"], "messages": _messages}

app = create_app(_config)
