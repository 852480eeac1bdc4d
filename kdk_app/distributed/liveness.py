"""Is a provider alive right now? Its reply channel has a subscriber.

Redis drops a subscription the moment the subscriber's connection closes, so a killed process
stops counting at once, long before its registry record expires. Together with the record
(which covers a host that vanished without closing its sockets) this is the liveness signal.

On a Redis Cluster, PUBSUB NUMSUB counts the subscribers of one node only. Every listener of a
partition subscribes on the node that serves the partition's hash tag (redis-py picks the node
of the first channel), and both scripts run there too: ``SEND_IF_LIVE`` by its queue key,
``ALIVE`` by the partition's ``route`` key. So the counts are exact there as well.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..redis_connect import AnyRedis

# Push the call only if one of the providers' reply channels has a subscriber: checking and
# sending in one round trip, with no window in between.
SEND_IF_LIVE = """
local live = 0
for i = 1, #ARGV - 1 do
  live = live + redis.call('PUBSUB', 'NUMSUB', ARGV[i])[2]
end
if live > 0 then redis.call('RPUSH', KEYS[1], ARGV[#ARGV]) end
return live
"""
# Subscriber counts of the channels in ARGV; KEYS[1] only routes the script (see above).
ALIVE = """
local counts = {}
for i = 1, #ARGV do counts[i] = redis.call('PUBSUB', 'NUMSUB', ARGV[i])[2] end
return counts
"""


class Liveness:
    def __init__(self, client: AnyRedis, route: str) -> None:
        self.client = client
        self.route = route  # a key of the partition's hash tag
        self._send_if_live = client.register_script(SEND_IF_LIVE)
        self._alive = client.register_script(ALIVE)

    def send_if_live(self, queue: str, reply_channels: list[str], message: bytes) -> bool:
        if not reply_channels:
            return False
        return int(self._send_if_live(keys=[queue], args=[*reply_channels, message])) > 0

    def alive(self, reply_channels: Iterable[str]) -> set[str]:
        """The channels among ``reply_channels`` that have a subscriber."""
        channels = list(reply_channels)
        if not channels:
            return set()
        counts = self._alive(keys=[self.route], args=channels)
        return {name for name, count in zip(channels, counts, strict=True) if int(count)}
