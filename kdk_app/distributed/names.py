"""Redis key and channel names of one partition, in one place."""

from __future__ import annotations


class Names:
    """``{<prefix>:<key>}:...``; a path keeps its slashes, which Redis keys allow.

    The braces are a hash tag: on a Redis Cluster every key and channel of a partition maps to
    one slot, so the commands that use several together (MGET, BLPOP over the call queues and
    the wake list, scripts) are allowed, and the listeners subscribe on the node where the
    liveness scripts count them (:mod:`.liveness`). Outside a cluster the braces are just part
    of the name.
    """

    def __init__(self, prefix: str, key: str) -> None:
        self.base = f"{{{prefix}:{key}}}"
        self.instances = f"{self.base}:instances"  # SET of instance ids that wrote a record
        self.events = f"{self.base}:events"  # pub/sub: service events of every provider
        self.registry = f"{self.base}:registry"  # pub/sub: "records changed, read them again"
        self.users = f"{self.base}:users"  # pub/sub: ids of users changed, for socket logins

    def record(self, instance: str) -> str:
        return f"{self.base}:record:{instance}"  # the signed record, with a TTL

    def calls(self, path: str) -> str:
        return f"{self.base}:calls:{path}"  # LIST: the call queue every provider of path reads

    def reply(self, instance: str) -> str:
        # pub/sub: replies for this instance. Its subscriber count is the liveness
        # signal: Redis drops the subscription the moment the process dies.
        return f"{self.base}:reply:{instance}"

    def wake(self, instance: str) -> str:
        return f"{self.base}:wake:{instance}"  # LIST: a push ends this instance's blocking read

    def nonce(self, nonce: str) -> str:
        return f"{self.base}:nonce:{nonce}"  # calls' replay guard, shared by all providers
