"""The frame publisher: every generation to every subscriber, full frames and deltas.

An XPUB socket (owned by the main thread) publishes one message per generation: a
``FRAME`` with every cell now and then, and a ``DELTA`` with only the changed cells in
between. XPUB (with ``XPUB_VERBOSE``) tells the publisher when a subscriber arrives, so
a late joiner gets a full frame on the very next generation instead of waiting. The
high-water mark is small: a subscriber that cannot keep up loses frames, never the
server's time, and resynchronises on the next full frame.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import zmq

from server.auth import VIEWERS, ServerKeys, serve_curve
from server.transport import (
    MemoryGuard,
    allocated_mb,
    apply_heartbeats,
    rebind,
    release_freed_memory,
)
from shared import protocol
from shared.grid import Codes, as_payload
from shared.protocol import Kind

FULL_EVERY = 32
MAX_UPSTREAM = 4096    # bytes of one message up (a subscription; the CURVE handshake
#                        is counted too, and its INITIATE is over 256)
DRAIN_PER_PUBLISH = 64  # upstream messages read at each publish, at most


class FramePublisher:
    """Publishes generations; ``close`` it from the thread that made it."""

    def __init__(self, context: zmq.Context[Any], endpoint: str,
                 keys: ServerKeys | None = None, guard: MemoryGuard | None = None) -> None:
        self.context = context
        self.keys = keys
        self.guard = guard or MemoryGuard(None)
        self.sock = self._socket()
        try:
            self.sock.bind(endpoint)
        except zmq.ZMQError:
            self.sock.close()
            raise
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        self._last: Codes | None = None
        self._since_full = 0
        self.full_frames = 0
        self.deltas = 0
        self.ignored = 0  # upstream messages that were not subscriptions

    def _socket(self) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = self.context.socket(zmq.XPUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 8)
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        # Upstream there are only subscriptions: anything bigger drops its connection,
        # and what waits is bounded by the high-water mark, not by the sender.
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_UPSTREAM)
        sock.setsockopt(zmq.RCVHWM, 1000)
        apply_heartbeats(sock, self.guard.handshake_ms)
        serve_curve(sock, self.keys, VIEWERS)
        return sock

    def _new_subscriber(self) -> bool:
        """Whether someone subscribed since the last publish. Reads at most
        ``DRAIN_PER_PUBLISH`` upstream messages (a flood waits, bounded, in libzmq's
        queue, never in this thread's time) and ignores all but subscriptions."""
        joined = False
        for _ in range(DRAIN_PER_PUBLISH):
            try:
                event = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if event[:1] == b"\x01":
                joined = True
            else:
                self.ignored += 1
        return joined

    def publish(self, gen: int, codes: Codes, info: dict[str, Any]) -> None:
        """Send generation ``gen``; ``codes`` must not change after this call."""
        if self.guard.due("frames"):
            before = allocated_mb()
            self.sock = rebind(self.sock, self._socket, self.endpoint)
            release_freed_memory()
            self.guard.dropped("frames", before)
            self._last = None  # everyone resubscribes: a full frame for all
        h, w = codes.shape
        full = (self._last is None or self._last.shape != codes.shape
                or self._since_full >= FULL_EVERY or self._new_subscriber())
        msg: protocol.Message
        if not full:
            assert self._last is not None
            changed = np.flatnonzero(self._last != codes).astype(np.uint32)
            if len(changed) * 5 > h * w:
                full = True
            else:
                msg = protocol.message(
                    Kind.DELTA, [as_payload(changed), as_payload(codes.ravel()[changed])],
                    gen=gen, h=h, w=w, count=len(changed), **info)
        if full:
            msg = protocol.message(Kind.FRAME, [as_payload(codes)], gen=gen, h=h, w=w, **info)
            self._since_full = 0
            self.full_frames += 1
        else:
            self._since_full += 1
            self.deltas += 1
        self._last = codes
        with contextlib.suppress(zmq.Again):
            self.sock.send_multipart(protocol.encode(msg), zmq.NOBLOCK, copy=False)

    def close(self) -> None:
        self.sock.close()
