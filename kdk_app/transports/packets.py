"""The Socket.IO packet class of our server: every client frame becomes something safe to handle.

python-socketio lets a server choose its packet class (``serializer=``). Ours makes three
guarantees the default class does not:

* A client can never trigger the server's own handlers. An event named ``connect``,
  ``disconnect`` or ``*`` from a client would otherwise run the connection handlers with
  arguments the client chose (a forged ``REMOTE_ADDR``, a dropped connection state).
* A frame that cannot be decoded (bad JSON, not an array, no event name, an unknown packet
  type, JSON nested beyond the parser's stack) becomes a call of :data:`MALFORMED`, which the
  transport answers with BadRequest when the frame carried an ack id. The client never waits.
* An ack whose result cannot be encoded is answered with a GeneralError instead of being lost.

Feathers clients send and receive JSON only, so binary packets are not produced (which also
spares the recursive scan of every outgoing payload for bytes).
"""

from __future__ import annotations

import logging
from typing import Any

from socketio import packet

from ..core import errors

logger = logging.getLogger(__name__)

# The event name a bad frame is turned into; no client can send it, it holds a NUL byte.
MALFORMED = "\x00malformed"
# The handshake ``auth`` of a CONNECT frame whose JSON was broken.
MALFORMED_AUTH = {MALFORMED: True}
# Names that Socket.IO reserves for the library, plus python-socketio's catch-all.
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener", "*"}
)
_CLIENT_TYPES = (packet.CONNECT, packet.DISCONNECT, packet.EVENT, packet.ACK)


class FeathersPacket(packet.Packet):
    uses_binary_events = False
    # The parent (untyped) sets these; declared so our own assignments don't narrow them.
    data: Any
    namespace: str | None

    def __init__(self, *args: Any, encoded_packet: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, encoded_packet=encoded_packet, **kwargs)
        if encoded_packet is not None and not encoded_packet:  # the parent skips decoding ""
            self._malformed("Empty frame")

    def decode(self, encoded_packet: Any) -> int:
        try:
            super().decode(encoded_packet)
        except (ValueError, TypeError, RecursionError) as exc:  # JSON errors are ValueErrors
            if self.packet_type == packet.CONNECT:
                self.data = MALFORMED_AUTH
            else:
                self._malformed(f"Invalid frame: {type(exc).__name__}")
            return 0
        if self.packet_type not in _CLIENT_TYPES:
            self._malformed("Unsupported packet type")
        elif self.packet_type == packet.EVENT:
            self._check_event()
        return 0

    def _check_event(self) -> None:
        data = self.data
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            self._malformed("Invalid frame: an event is an array that starts with its name")
        elif data[0] in RESERVED_EVENTS or data[0] == MALFORMED:
            self._malformed(f"Event name '{data[0]}' is reserved")

    def _malformed(self, reason: str) -> None:
        # Keep the ack id, if the frame got as far as one, so the answer reaches the caller.
        self.packet_type = packet.EVENT
        self.namespace = self.namespace if isinstance(self.namespace, str) else None
        self.data = [MALFORMED, reason]

    def encode(self) -> Any:
        try:
            return super().encode()
        except (TypeError, ValueError, RecursionError, OverflowError) as exc:
            if self.packet_type != packet.ACK:
                raise
            logger.error("socket answer could not be encoded: %s", exc)
            self.data = [errors.GeneralError("The result could not be encoded").to_json()]
            return super().encode()
