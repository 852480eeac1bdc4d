"""The provider side of remote calls: take calls from the queues of exposed paths, run them.

One fetcher per process BLPOPs every exposed path's queue, and only while it has a free slot,
so a busy replica leaves calls to the others. Each call runs in its own thread (a greenlet
under gevent) through the service's hooks with ``provider="remote"`` and the caller's identity
as ``identity.caller_identity`` rebuilds it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..background import BackgroundThread, Backoff
from ..core import Application, errors
from ..logs import REQUEST_ID
from ..redis_connect import REDIS_ERRORS, AnyRedis
from ..request_id import SANE_ID
from .envelope import Message, Refused, Signer, now_ms
from .identity import caller_identity
from .names import Names
from .stats import DistributionStats

logger = logging.getLogger(__name__)

BLOCK_SECONDS = 1  # how long one BLPOP waits; bounds how quickly stop() is noticed
_CALL_FIELDS = {"call": str, "path": str, "method": str, "from": str, "deadline": int}


class Responder:
    def __init__(
        self,
        app: Application,
        connect: Callable[[float], AnyRedis],
        client: AnyRedis,
        names: Names,
        signer: Signer,
        stats: DistributionStats,
        instance: str,
        exposed: Callable[[], list[str]],
        *,
        concurrency: int,
    ) -> None:
        self.app = app
        self.connect = connect
        self.client = client
        self.names = names
        self.signer = signer
        self.stats = stats
        self.instance = instance
        self.exposed = exposed
        self.concurrency = concurrency
        self._slots = threading.BoundedSemaphore(concurrency)
        self._thread = BackgroundThread("kdk-dist-responder", self._run, wake=self._wake_fetcher)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop taking calls, then give the running ones up to ``timeout`` to finish."""
        self._thread.stop(BLOCK_SECONDS + 2)  # the fetcher; ``timeout`` is for the calls
        taken = 0
        for _ in range(self.concurrency):
            if not self._slots.acquire(timeout=timeout):
                logger.warning("distribution: stopping with remote calls still running")
                break
            taken += 1
        for _ in range(taken):
            self._slots.release()

    def _wake_fetcher(self) -> None:
        """End the fetcher's blocking read now rather than at its timeout."""
        wake = self.names.wake(self.instance)
        try:
            # One command a line: redis-py types a pipeline's commands as a client's (no chaining).
            pipe = self.client.pipeline(transaction=False)
            pipe.rpush(wake, b"stop")
            pipe.pexpire(wake, 5000)
            pipe.execute()
        except REDIS_ERRORS:
            pass

    def _run(self, stop: threading.Event) -> None:
        client = self.connect(BLOCK_SECONDS + 2)
        backoff = Backoff()
        try:
            while not stop.is_set():
                queues = [self.names.calls(path) for path in self.exposed()]
                if not queues:
                    stop.wait(0.5)
                    continue
                queues.append(self.names.wake(self.instance))
                if not self._slots.acquire(timeout=BLOCK_SECONDS):
                    continue
                try:
                    item = client.blpop(queues, timeout=BLOCK_SECONDS)
                except Exception as exc:  # noqa: BLE001 - any failure: back off, reconnect
                    self._slots.release()
                    self.stats.bump("redis_errors")
                    logger.warning("distribution: cannot read calls: %s", exc)
                    stop.wait(backoff.next())
                    continue
                backoff.reset()
                if item is None or item[0] == self.names.wake(self.instance).encode():
                    self._slots.release()
                    continue
                threading.Thread(
                    target=self._serve, args=(item[1],), name="kdk-dist-call", daemon=True
                ).start()
        finally:
            client.close()

    def _serve(self, raw: bytes) -> None:
        try:
            self.handle(raw)
        except REDIS_ERRORS as exc:  # Redis went away mid-call: the caller retries, 503s or times out
            self.stats.bump("redis_errors")
            logger.warning("distribution: a call lost Redis while being served: %s", exc)
        except Exception:  # a bad call must never take the responder down
            logger.exception("distribution: serving a call failed")
        finally:
            self._slots.release()

    # --- one call ------------------------------------------------------------------------
    def handle(self, raw: bytes) -> None:
        try:
            message = self.signer.open(raw, "call")
            body = message.body
            for name, kind in _CALL_FIELDS.items():
                if type(body.get(name)) is not kind:
                    raise Refused("malformed", f"call without a valid '{name}'")
        except Refused as refused:
            self.stats.bump(f"refused_{refused.reason}")
            logger.warning("distribution: refused a call: %s", refused)
            return
        if body["deadline"] < now_ms():
            self.stats.bump("expired")  # its caller gave up already
            return
        # Claim the nonce, shared by all replicas, for longer than a copy could be accepted. Its
        # value says who runs the call: a waiting caller reads it to watch that instance.
        window_ms = self.signer.max_skew_ms * 2
        if not self.client.set(self.names.nonce(message.nonce), self.instance, nx=True, px=window_ms):
            self.stats.bump("refused_replayed")
            logger.warning("distribution: refused a replayed call %s", body["call"])
            return
        reply_channel = self.names.reply(body["from"])
        request_id = body.get("request_id")
        sane = isinstance(request_id, str) and SANE_ID.fullmatch(request_id) is not None
        token = REQUEST_ID.set(request_id if sane else None)  # the caller's, in our log lines
        try:
            outcome = self._execute(message)
        finally:
            REQUEST_ID.reset(token)
        head = {"call": body["call"], "instance": self.instance}
        try:
            reply = self.signer.seal("reply", {**head, **outcome})
        except (TypeError, ValueError) as exc:
            logger.error("remote call %s.%s: result is not JSON: %s", body["path"], body["method"], exc)
            reply = self.signer.seal(
                "reply", {**head, "error": errors.GeneralError("Internal server error").to_json()}
            )
        self.client.publish(reply_channel, reply)

    def _execute(self, message: Message) -> dict[str, Any]:
        body = message.body
        if body.get("ping"):
            return {"result": "pong"}
        service = self.app.services.get(body["path"])
        if service is None or getattr(service.impl, "remote", False) or body["path"] not in self.exposed():
            return {"error": errors.NotFound(f"Service '{body['path']}' not found").to_json()}
        params: dict[str, Any] = {
            "provider": "remote",
            "query": body.get("query") if isinstance(body.get("query"), dict) else {},
            "route": body.get("route") if isinstance(body.get("route"), dict) else {},
        }
        method = body["method"]
        if method == "find":
            args: tuple[Any, ...] = (params,)
        elif method in ("get", "remove"):
            args = (body.get("id"), params)
        elif method in ("update", "patch"):
            args = (body.get("id"), body.get("data"), params)
        else:
            args = (body.get("data"), params)
        try:
            if method not in service.methods:
                raise errors.MethodNotAllowed(f"Method '{method}' not allowed on service '{service.path}'")
            # Never the consumer's cached user: a token for our hooks, or a user reloaded now.
            params.update(caller_identity(self.app, body))
            context = service.run(method, *args)
            self.stats.bump("calls_served")
            return {"result": context.safe_result}
        except Exception as exc:  # every failure goes back to the caller as a Feathers error
            self.stats.bump("calls_served")
            error = errors.convert(exc)
            if error is not exc:
                logger.error("remote call %s.%s failed", service.path, method, exc_info=exc)
            return {"error": error.to_json()}
