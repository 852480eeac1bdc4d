"""The sync bus on a Redis Stream: XADD in pipelined batches, XREAD BLOCK from the last id read,
trimmed by age and by length. Any Redis the app's connection layer takes: standalone, TLS,
unix socket, Sentinel, Cluster (one key, so one slot)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, cast

from ...redis_connect import AnyRedis, redis_client
from ..envelope import FIELD
from ..position import as_text, parse_id, resume_position
from .base import NEW_ONLY, BrokerOptions, Entry

_FIELD_KEY = FIELD.encode()
TRIM_INTERVAL = 1.0  # seconds between two trims of the stream
# A stream's entries as XREAD gives them to our clients (no decode_responses): (id, fields).
_StreamEntries = list[tuple[bytes, dict[bytes, bytes] | None]]


def _client(url: str, timeout: float, connect_timeout: float) -> AnyRedis:
    # Fails fast: the bus's loops own retrying, with their own backoff.
    return redis_client(url, socket_timeout=timeout, connect_timeout=connect_timeout, health_check_interval=0)


class RedisStreamWriter:
    def __init__(self, client: AnyRedis, stream: str, maxlen: int | None, retention_ms: int | None) -> None:
        self._client = client
        self.stream = stream
        self.maxlen = maxlen
        self.retention_ms = retention_ms
        self._next_trim = 0.0  # monotonic time of the next trim
        self.trim_error: BaseException | None = None  # the last failed trim, for one warning

    def send(self, messages: list[bytes]) -> list[BaseException | None]:
        pipe = self._client.pipeline(transaction=False)
        for message in messages:
            pipe.xadd(self.stream, {FIELD: message})
        trims = self._queue_trims(pipe)
        results = pipe.execute(raise_on_error=False)
        # Trimming is housekeeping: a failure (MINID before Redis 6.2, say) must not make the bus
        # send again entries that were written.
        errors = [r for r in results[len(messages) :] if isinstance(r, Exception)]
        self.trim_error = errors[0] if trims and errors else None
        return [r if isinstance(r, Exception) else None for r in results[: len(messages)]]

    def _queue_trims(self, pipe: Any) -> bool:
        # Once a second is plenty, not with every batch.
        if time.monotonic() < self._next_trim:
            return False
        self._next_trim = time.monotonic() + TRIM_INTERVAL
        if self.retention_ms:
            cutoff = int(time.time() * 1000) - self.retention_ms
            pipe.xtrim(self.stream, minid=f"{max(cutoff, 0)}-0", approximate=True)
        if self.maxlen:
            pipe.xtrim(self.stream, maxlen=self.maxlen, approximate=True)
        return bool(self.retention_ms or self.maxlen)

    def close(self) -> None:
        self._client.close()


class RedisStreamReader:
    def __init__(self, client: AnyRedis, stream: str, block_ms: int, batch_size: int) -> None:
        self._client = client
        self.stream = stream
        self.block_ms = block_ms
        self.batch_size = batch_size
        self._position = NEW_ONLY

    def resume(self, position: str) -> str:
        self._position = resume_position(self._client, self.stream, position)
        return self._position

    def read(self) -> list[Entry]:
        response = self._client.xread(
            {self.stream: self._position}, count=self.batch_size, block=self.block_ms
        )
        # RESP2 answers [[stream, entries]], RESP3 {stream: entries}. redis-py types XREAD for
        # every protocol and decoding option; the cast names the shape our clients get.
        streams = response.items() if isinstance(response, dict) else response or []
        entries = []
        for _name, items in cast("Iterable[tuple[bytes, _StreamEntries]]", streams):
            for entry_id, fields in items:
                text = as_text(entry_id)
                entries.append(Entry(text, parse_id(text)[0], (fields or {}).get(_FIELD_KEY)))
        if entries:
            self._position = entries[-1].id
        return entries

    def done(self, entries: list[Entry]) -> None:
        return None

    def close(self) -> None:
        self._client.close()


class RedisStreamBroker:
    kind = "redis"

    def __init__(self, url: str, options: BrokerOptions, batch_size: int = 100) -> None:
        self.url = url
        self.options = options
        self.batch_size = batch_size
        self.max_age_ms = options.retention_ms or 0  # unused: every entry id carries its write time

    def check_position(self, position: str) -> None:
        if position != NEW_ONLY:
            parse_id(position)

    def writer(self) -> RedisStreamWriter:
        o = self.options
        return RedisStreamWriter(
            _client(self.url, o.socket_timeout, o.socket_timeout), o.stream, o.maxlen, o.retention_ms
        )

    def retire(self) -> None:
        """Nothing to drop: readers keep their positions themselves."""

    def reader(self) -> RedisStreamReader:
        # The blocking read must outlast its own BLOCK time before the socket gives up.
        o = self.options
        timeout = o.block_ms / 1000 + o.socket_timeout
        return RedisStreamReader(
            _client(self.url, timeout, o.socket_timeout), o.stream, o.block_ms, self.batch_size
        )
