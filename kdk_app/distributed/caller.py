"""The consumer side of remote calls: send to the path's queue, wait for the reply.

A call is pushed only if a provider is alive (one Redis round trip checks and pushes); a fast
call costs nothing more. A slow one is watched: the provider that took it claimed its nonce
with its own id, so the caller checks that this provider is still alive. If it died, or the
call left the queue and was never claimed, an idempotent call is sent once more (another
replica takes it) and any other call fails at once with 503 instead of hanging.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core import errors
from ..core.serialization import to_jsonable
from ..logs import current_request_id
from ..redis_connect import REDIS_ERRORS, AnyRedis
from .envelope import Message, Signer, now_ms
from .liveness import Liveness
from .names import Names
from .stats import DistributionStats

logger = logging.getLogger(__name__)

IDEMPOTENT = frozenset({"find", "get"})
# Fields of a user never sent to another instance.
PRIVATE_USER_FIELDS = frozenset({"password"})


class ProviderLost(Exception):
    """The provider that had the call died (or the call vanished); ``instance`` if known."""

    def __init__(self, instance: str | None) -> None:
        super().__init__(instance or "unknown provider")
        self.instance = instance


@dataclass
class Pending:
    claim: str  # the Redis key where the provider that takes the call writes its id
    done: threading.Event = field(default_factory=threading.Event)
    reply: dict[str, Any] | None = None
    taken_by: str | None = None


def user_claims(user: Any) -> Any:
    """A server-side caller's user as plain JSON, minus secrets; the envelope's HMAC signs it.
    The provider reloads that user by id when it has authentication (see the responder)."""
    if user is None:
        return None
    if isinstance(user, Mapping):
        user = {k: v for k, v in user.items() if k not in PRIVATE_USER_FIELDS}
    return to_jsonable(user)


def forwarded_authentication(authentication: Any) -> dict[str, Any] | None:
    """The caller's credentials for the provider to verify itself: never a verified payload,
    which the provider must not take on trust."""
    if not isinstance(authentication, Mapping) or not authentication:
        return None
    return to_jsonable({k: v for k, v in authentication.items() if k != "payload"})


class Caller:
    def __init__(
        self,
        client: AnyRedis,
        liveness: Liveness,
        names: Names,
        signer: Signer,
        stats: DistributionStats,
        instance: str,
        providers: Callable[[str], list[str]],
        connected: Callable[[], bool],
        *,
        timeout: float,
        probe_interval: float,
        claim_grace: float,
    ) -> None:
        self.client = client
        self.liveness = liveness
        self.names = names
        self.signer = signer
        self.stats = stats
        self.instance = instance
        self.providers = providers
        self.connected = connected
        self.timeout = timeout
        self.probe_interval = probe_interval
        self.claim_grace = claim_grace
        self._pending: dict[str, Pending] = {}

    # --- what the listener hands over ----------------------------------------------------
    def on_reply(self, message: Message) -> None:
        pending = self._pending.get(str(message.body.get("call")))
        if pending is not None:
            pending.reply = message.body
            pending.done.set()

    # --- calls -----------------------------------------------------------------------------
    def call(
        self,
        path: str,
        method: str,
        *,
        id: Any = None,
        data: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        ping: bool = False,
    ) -> Any:
        """Run ``method`` on the remote ``path``; return its result or raise its error."""
        params = params or {}
        budget = timeout or self.timeout
        deadline = time.monotonic() + budget
        authentication = forwarded_authentication(params.get("authentication"))
        request = {
            "path": path,
            "method": method,
            "id": id,
            "data": data,
            "query": params.get("query") or {},
            "route": params.get("route") or {},
            # The token, when there is one, and no user: the provider verifies it and loads the
            # user as it is now on every call. Claims only for server-side calls without a token.
            "authentication": authentication,
            "user": None if authentication else user_claims(params.get("user")),
            "from": self.instance,
            "ping": ping,
            # The provider logs the call under the id of the request that made it.
            "request_id": current_request_id(),
        }
        attempts = 2 if ping or method in IDEMPOTENT else 1
        try:
            for attempt in range(attempts):
                try:
                    reply = self._attempt(request, deadline, budget)
                except ProviderLost as lost:
                    if attempt + 1 < attempts:
                        self.stats.bump("retries")
                        logger.info(
                            "distribution: provider %s lost during %s.%s, retrying", lost, path, method
                        )
                        continue
                    raise errors.Unavailable(
                        f"The provider of '{path}' stopped during the call; it may not have run"
                    ) from None
                if "error" in reply:
                    error = reply["error"]
                    raise errors.from_json(error if isinstance(error, dict) else {})
                return reply.get("result")
            raise AssertionError("unreachable")  # pragma: no cover
        except errors.FeathersError:
            self.stats.bump("calls_failed")
            raise
        except REDIS_ERRORS as exc:
            self.stats.bump("calls_failed")
            self.stats.bump("redis_errors")
            raise errors.Unavailable(f"The distribution bus is unavailable: {exc}") from None

    def _attempt(self, request: dict[str, Any], deadline: float, budget: float) -> dict[str, Any]:
        path = request["path"]
        if not self.connected():
            self.stats.bump("unavailable")
            raise errors.Unavailable("This instance is not connected to the distribution bus")
        call_id, nonce = uuid.uuid4().hex, uuid.uuid4().hex
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        body = {**request, "call": call_id, "deadline": now_ms() + remaining_ms}
        message = self.signer.seal("call", body, nonce=nonce)
        queue = self.names.calls(path)
        pending = Pending(claim=self.names.nonce(nonce))
        self._pending[call_id] = pending  # before sending: the reply may beat us back
        try:
            channels = [self.names.reply(i) for i in self.providers(path)]
            self.stats.bump("calls_sent")
            if not self.liveness.send_if_live(queue, channels, message):
                self.stats.bump("unavailable")
                raise errors.Unavailable(f"No live provider for service '{path}'")
            return self._wait(pending, request, queue, message, deadline, budget)
        finally:
            self._pending.pop(call_id, None)

    def _wait(
        self,
        pending: Pending,
        request: dict[str, Any],
        queue: str,
        message: bytes,
        deadline: float,
        budget: float,
    ) -> dict[str, Any]:
        path = request["path"]
        unclaimed_since: float | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if pending.taken_by is None:
                    # Nobody will run it late. (The ignores: redis-py types the value of
                    # LREM and LPOS as str, though it sends bytes as they are.)
                    self.client.lrem(queue, 1, message)  # type: ignore[arg-type]
                self.stats.bump("timeouts")
                raise errors.Timeout(f"Remote call {path}.{request['method']} timed out after {budget:g}s")
            if pending.done.wait(min(remaining, self.probe_interval)):
                assert pending.reply is not None
                return pending.reply
            # Slow call: is whoever has it still alive? The provider that took it claimed its
            # nonce with its own id before running it.
            if pending.taken_by is None:
                taker = self.client.get(pending.claim)
                pending.taken_by = taker.decode() if isinstance(taker, bytes) else taker
            if pending.taken_by is not None:
                if not self.liveness.alive([self.names.reply(pending.taken_by)]):
                    raise ProviderLost(pending.taken_by)
                continue
            if self.client.lpos(queue, message) is not None:  # type: ignore[arg-type]
                unclaimed_since = None
                channels = [self.names.reply(i) for i in self.providers(path)]
                if not self.liveness.alive(channels) and self.client.lrem(queue, 1, message):  # type: ignore[arg-type]
                    self.stats.bump("unavailable")
                    raise errors.Unavailable(f"No live provider for service '{path}'")
                continue
            if pending.done.is_set() or self.client.exists(pending.claim):
                continue  # answered, or claimed since: the next probe watches its taker
            # Taken from the queue but never claimed: its taker died in between (Redis can
            # hand a call to the blocked read of a process that was killed a moment ago). With
            # no provider left that is certain; otherwise give a slow taker some grace.
            unclaimed_since = unclaimed_since or time.monotonic()
            channels = [self.names.reply(i) for i in self.providers(path)]
            if time.monotonic() - unclaimed_since >= self.claim_grace or not self.liveness.alive(channels):
                raise ProviderLost(None)
