"""How many connections wait in a listening socket's accept queue, and a worker's share of them.

gunicorn's workers share one listening socket. Each accepting only one connection per turn of
its event loop keeps them balanced, but a worker busy with 64 keep-alive connections turns its
loop every 20 ms or so, so a burst of new connections waited up to a second to be accepted: the
p99 of hundreds of ms from 128 connections on. Taking its share of the queue (what waits,
divided by the workers) accepts a burst within a few turns and still leaves the others theirs.
"""

from __future__ import annotations

import math
import socket
import struct
from typing import Any

# struct tcp_info (linux/tcp.h): eight one-byte fields, then rto, ato, snd_mss, rcv_mss and
# unacked as u32. For a listening socket, Linux reports its accept queue's length as unacked.
_UNACKED_OFFSET = 24
_TCP_INFO_SIZE = 104


def accept_queue_length(listener: Any) -> int | None:
    """Connections queued on ``listener`` and not accepted yet; None where the OS does not say
    (a Unix socket, a system without TCP_INFO)."""
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None or listener.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        raw = listener.getsockopt(socket.IPPROTO_TCP, tcp_info, _TCP_INFO_SIZE)
    except OSError:
        return None
    if len(raw) < _UNACKED_OFFSET + 4:
        return None
    return int(struct.unpack_from("=I", raw, _UNACKED_OFFSET)[0])


def accept_share(listener: Any, workers: int) -> int:
    """How many connections one of ``workers`` sharing ``listener`` takes in this turn: its
    share of the queue, at least one (the one that woke it, when the OS does not say)."""
    return max(1, math.ceil((accept_queue_length(listener) or 0) / max(1, workers)))
