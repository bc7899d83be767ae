"""Small pieces the socket-owning threads share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import zmq

DRAIN_LIMIT = 256


def drain(sock: zmq.Socket[Any], limit: int = DRAIN_LIMIT) -> Iterator[list[Any]]:
    """The messages waiting on ``sock`` (frames, not copied), at most ``limit`` of them,
    so one busy socket cannot starve the others a loop serves, nor its timers."""
    for _ in range(limit):
        try:
            yield sock.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return
