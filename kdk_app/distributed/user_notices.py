"""Tell every process of every app of the key which users changed.

When the authentication's users service of this process patches, updates or removes users, a
signed ``user`` notice with their ids (never their data) goes out on the partition's users
channel, whether or not that service is exposed. Every other process emits the app event
``users-changed`` with ``(ids, event)``; the socket logins it holds then reload those users
themselves (``auth.realtime.SocketAuth.follow``), from the truth rather than from the notice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from ..auth.realtime import USER_CHANGES, USERS_CHANGED
from ..core import Application, ServiceEvent
from ..redis_connect import REDIS_ERRORS, AnyRedis
from .envelope import NonceCache, Refused, Signer
from .events import is_distributed
from .names import Names
from .stats import DistributionStats

logger = logging.getLogger(__name__)

KIND = "user"


def _ids(auth: Any, data: Any) -> list[str]:
    records = data if isinstance(data, list) else [data]
    return [auth.user_id(record) for record in records if isinstance(record, Mapping)]


class UserNotices:
    def __init__(
        self,
        app: Application,
        client: AnyRedis,
        names: Names,
        signer: Signer,
        stats: DistributionStats,
        instance: str,
        nonces: NonceCache,
    ) -> None:
        self.app = app
        self.client = client
        self.names = names
        self.signer = signer
        self.stats = stats
        self.instance = instance
        self.nonces = nonces

    def sink(self, event: ServiceEvent) -> None:
        """The ``app.event_sinks`` entry: changes made by this process to its users."""
        if event.remote or is_distributed(event) or event.event not in USER_CHANGES:
            return
        auth = getattr(self.app, "authentication", None)
        if auth is None or event.path != auth.service_path:
            return
        ids = _ids(auth, event.data)
        if not ids:
            return
        body = {"origin": self.instance, "event": event.event, "ids": ids}
        try:
            # Sent at once (users change rarely): another app's sockets must not wait on a queue.
            self.client.publish(self.names.users, self.signer.seal(KIND, body))
            self.stats.bump("user_notices_sent")
        except REDIS_ERRORS as exc:
            self.stats.bump("redis_errors")
            logger.warning("distribution: cannot announce a change of users %s: %s", ids, exc)

    def on_message(self, raw: bytes) -> None:
        try:
            message = self.signer.open(raw, KIND)
            if not self.nonces.add(message.nonce):
                raise Refused("replayed", "user notice nonce seen before")
            body = message.body
            ids, origin, event = body.get("ids"), body.get("origin"), body.get("event")
            if (
                not isinstance(origin, str)
                or event not in USER_CHANGES
                or not isinstance(ids, list)
                or not all(isinstance(i, str) for i in ids)
            ):
                raise Refused("malformed", "user notice without origin, event or ids")
        except Refused as refused:
            self.stats.bump(f"refused_{refused.reason}")
            logger.warning("distribution: refused a user notice: %s", refused)
            return
        if origin == self.instance:
            return
        self.stats.bump("user_notices_received")
        # Off the listener thread: reloading a user may itself need a remote reply.
        threading.Thread(
            target=self.app.emit, args=(USERS_CHANGED, ids, event), name="kdk-dist-users", daemon=True
        ).start()
