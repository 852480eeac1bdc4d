"""The bound on one Socket.IO packet the server sends: ``socketio.max_answer_size`` bytes.

A socket client buffers a whole message before it sees any of it, so one answer must stay
within a size both sides can hold. Checked where the packet is encoded, so the payload is
serialized once:

* an ack over the bound is answered with ``PayloadTooLarge`` (413, Feathers error shape)
  instead of the result: the caller always gets an answer, and knows to ask for a smaller page;
* an event over the bound is dropped for every recipient, with a warning in the log.
"""

from __future__ import annotations

import logging
from typing import Any

from socketio import packet

from ..core import errors

logger = logging.getLogger(__name__)

DEFAULT_MAX_ANSWER_SIZE = 16 * 1024 * 1024  # bytes, as MongoDB's largest document


def encoded_size(encoded: Any, limit: int) -> int:
    """Bytes of an encoded packet on the wire, computed exactly only when it could matter."""
    if isinstance(encoded, list):  # a packet with binary attachments
        return sum(encoded_size(part, limit) for part in encoded)
    if isinstance(encoded, str):
        if len(encoded) * 4 <= limit:  # UTF-8 takes at most 4 bytes per character
            return len(encoded)
        if len(encoded) > limit:
            return len(encoded)  # at least this many bytes: over the bound anyway
        return len(encoded.encode("utf-8", "surrogatepass"))
    return len(encoded)


def too_large(size: int, limit: int) -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(
        f"The answer is {size} bytes, more than the {limit} bytes a socket answer may hold;"
        " ask for a smaller page ($limit) or fewer fields ($select)",
        {"size": size, "limit": limit},
    )


def bounded_packet_class(base: type[packet.Packet], max_size: int) -> type[packet.Packet]:
    """A subclass of ``base`` whose encoded packets never exceed ``max_size`` bytes."""
    limit = int(max_size)
    if limit <= 0:
        raise ValueError("socketio.max_answer_size must be a positive number of bytes")

    class BoundedPacket(base):
        max_answer_size = limit

        def encode(self) -> Any:
            encoded = super().encode()
            size = encoded_size(encoded, limit)
            if size <= limit:
                return encoded
            if self.packet_type == packet.ACK:
                logger.warning("socket answer of %d bytes refused (max_answer_size %d)", size, limit)
                self.data = [too_large(size, limit).to_json()]
                return super().encode()
            name = self.data[0] if isinstance(self.data, list) and self.data else None
            logger.warning("socket event %r of %d bytes dropped (max_answer_size %d)", name, size, limit)
            return []  # python-socketio sends each part of a list: none

    BoundedPacket.__name__ = BoundedPacket.__qualname__ = f"Bounded{base.__name__}"
    return BoundedPacket
