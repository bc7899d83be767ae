"""Viewports: each viewer gets the chunks it shows, not the whole world.

The world is cut into square chunks (``protocol.CHUNK`` cells a side; the last row and
column of chunks may be smaller). A viewer names the chunks it shows with a ``VIEW``
request on the player endpoint (``Interest.want``, in the lobby's thread) and renews it
every few seconds; a chunk stays wanted ``WANT_SECONDS`` after the last request that
named it. At every publish, in the main thread, the ``ViewPublisher`` sends on its own
PUB socket an ``INFO`` (the frame's scoreboard and counts, no cells) on topic ``b"i"``,
and for every wanted chunk a ``CHUNK_FRAME`` (its cells) or a ``CHUNK_DELTA`` (its
changed cells) on the chunk's topic; libzmq sends each viewer only the topics it
subscribed to, so a viewer's bytes follow what it views, not the world.

A chunk gets a keyframe every ``CHUNK_FULL_EVERY`` generations (staggered by its index,
so that keyframes are spread over the generations), when its delta would be larger,
when it becomes wanted (or is wanted again after it lapsed) and when a ``VIEW`` names it
as ``fresh`` (the viewer holds nothing of it yet: it has just moved there). The last
two are owed, at the next publish, at most once every ``KEYFRAME_COOLDOWN`` seconds a
chunk (later ones wait for the cooldown's end), so that a flood of ``VIEW`` requests
cannot turn every chunk message into a keyframe. The deltas of all the chunks come from
the one changed-cells mask of the generation (the frame publisher's comparison), each
chunk reading its own slice of it.

Why a socket of its own rather than topics on the frame publisher's: ZeroMQ's
high-water mark counts messages, not bytes. The frame publisher's is small (8) because
its messages are whole worlds; a viewer of 20 chunks gets 21 small messages a
generation, which a high-water mark of 8 drops in part (a fifth of them, measured
over loopback) even when the viewer keeps up. Here the messages are at most a chunk
(about 4 KiB) and an ``INFO`` (a few KiB), so the high-water mark is ``VIEW_HWM``
messages: a slow viewer still costs a bounded, small amount, and loses messages,
never the server's time.

What is bounded: the wanted set is two arrays of one entry a chunk (never more than the
world's chunks, whoever asks), and at most ``MAX_WANTED`` chunks are wanted at once (a
``VIEW`` that would add more is ``BUSY``; renewing wanted chunks always works): a
publish costs at most that many chunk messages, however many viewers ask; a ``VIEW``
names at most ``protocol.MAX_VIEW_CHUNKS`` and costs a token of its connection's bucket,
like any request; each viewer's queue is
``VIEW_HWM`` messages. As on the frame publisher, PUB keeps each connection's distinct
subscriptions (3 bytes a chunk topic) while it is connected, and the memory guard
bounds the rest.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import numpy as np
import zmq

from server.auth import VIEWERS, ServerKeys, serve_curve
from server.transport import MemoryGuard, apply_heartbeats, bind
from shared import protocol
from shared.errors import ProtocolError
from shared.grid import Codes, Grid, as_grid, as_payload, codes_payload
from shared.protocol import CHUNK, ErrorCode, Kind

WANT_SECONDS = 10.0       # a chunk stays wanted this long after a VIEW named it
KEYFRAME_COOLDOWN = 0.25  # seconds between two keyframes owed to one chunk, at least
CHUNK_FULL_EVERY = 32     # generations between a chunk's keyframes, at most
VIEW_HWM = 4096           # messages queued for one viewer (each at most a few KiB)
MAX_UPSTREAM = 4096       # bytes of one message up: a subscription, the handshake
MAX_WANTED = 1024         # chunks wanted at once by all viewers (64 Mi cells' worth):
#                           what one publish may cost, whatever viewers ask


class Interest:
    """The chunks viewers want, each until when; the lobby writes, the main thread
    reads (``take``). Its size is fixed by the world: one entry a chunk."""

    def __init__(self, height: int, width: int, limit: int = MAX_WANTED) -> None:
        self.height, self.width = height, width
        self.limit = limit  # chunks wanted at once, by all viewers together
        self.rows, self.cols = protocol.chunks_of(height, width)
        count = self.rows * self.cols
        self._lock = threading.Lock()
        self._until = np.zeros(count, np.float64)  # monotonic time each chunk lapses
        self._owed = np.zeros(count, bool)         # a keyframe is owed to the chunk
        self._next_key = np.zeros(count, np.float64)  # its next keyframe, not before
        self.requests = 0

    def indices(self, chunks: list[list[int]], name: str = "chunks") -> np.ndarray:
        """The chunks' indices, or ``ProtocolError`` naming the first outside the
        world (nothing is changed then)."""
        if not chunks:
            return np.zeros(0, np.int64)
        pairs = np.asarray(chunks, dtype=np.int64).reshape(-1, 2)
        outside = (pairs[:, 0] >= self.rows) | (pairs[:, 1] >= self.cols)
        if outside.any():
            cy, cx = (int(v) for v in pairs[int(np.argmax(outside))])
            raise ProtocolError(
                f"{name}: chunk ({cy}, {cx}) is outside the world's {self.rows}x{self.cols} "
                f"chunks of {CHUNK} cells", ErrorCode.BAD_FIELD)
        return np.unique(pairs[:, 0] * self.cols + pairs[:, 1])

    def want(self, chunks: list[list[int]], fresh: list[list[int]] | None = None,
             now: float | None = None) -> int:
        """Want ``chunks`` for ``WANT_SECONDS`` more, and owe a keyframe to those that
        were not wanted and to ``fresh`` ones (also wanted from now); checked whole
        before anything changes. Returns how many chunks the request named."""
        index = self.indices(chunks)
        again = self.indices(fresh or [], "fresh")
        now = time.monotonic() if now is None else now
        with self._lock:
            wanted = self._until >= now
            named = np.union1d(index, again)
            adding = int(np.count_nonzero(~wanted[named]))
            if adding and int(np.count_nonzero(wanted)) + adding > self.limit:
                raise ProtocolError(
                    f"the server serves at most {self.limit} chunks to its viewers at once "
                    f"and {int(np.count_nonzero(wanted))} are wanted: ask again later",
                    ErrorCode.BUSY)
            self.requests += 1
            self._owed[index[self._until[index] < now]] = True
            self._owed[again] = True
            self._until[index] = now + WANT_SECONDS
            self._until[again] = np.maximum(self._until[again], now + WANT_SECONDS)
        return len(np.union1d(index, again))

    def take(self, now: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The chunks wanted now (indices) and which of them get a keyframe owed now
        (a mask over them); the owed keyframes taken here are no longer owed."""
        now = time.monotonic() if now is None else now
        with self._lock:
            wanted = np.flatnonzero(self._until >= now)
            due = self._owed[wanted] & (self._next_key[wanted] <= now)
            keyed = wanted[due]
            self._owed[keyed] = False
            self._next_key[keyed] = now + KEYFRAME_COOLDOWN
            # a lapsed chunk owes nothing: wanted again, it is owed a keyframe anew
            self._owed[self._until < now] = False
        return wanted, due

    def wanted(self) -> int:
        """How many chunks are wanted now."""
        with self._lock:
            return int(np.count_nonzero(self._until >= time.monotonic()))


class ViewPublisher:
    """Publishes what viewers want (see the module doc); ``close`` it from the thread
    that made it (the main thread, which owns the socket)."""

    def __init__(self, context: zmq.Context[Any], endpoint: str, interest: Interest,
                 keys: ServerKeys | None = None, guard: MemoryGuard | None = None) -> None:
        self.context = context
        self.keys = keys
        self.guard = guard or MemoryGuard(None)
        self.interest = interest
        self.sock = self._socket()
        self.endpoint, self.port = bind(self.sock, endpoint)
        self.chunk_frames = 0
        self.chunk_deltas = 0
        self.owed_frames = 0  # keyframes owed to new or fresh chunks (of chunk_frames)
        self.failed: zmq.ZMQError | None = None

    def _socket(self) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = self.context.socket(zmq.PUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, VIEW_HWM)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_UPSTREAM)
        apply_heartbeats(sock, self.guard.handshake_ms)
        serve_curve(sock, self.keys, VIEWERS)
        return sock

    def publish(self, gen: int, world: Grid | Codes, last: Grid | Codes | None,
                info: dict[str, Any]) -> None:
        """Send generation ``gen``: its ``INFO``, and the wanted chunks. ``last`` is
        generation ``gen - 1`` (``None``: not known, every chunk gets a keyframe); a
        wanted chunk's changes are found in its own cells only. The worlds' codes are
        read only when a chunk is wanted (a packed world is not unpacked for nobody)."""
        if self.failed is not None:
            return
        if self.guard.due("views"):
            try:
                self.sock = self.guard.drop_all("views", self.sock, self._socket,
                                                self.endpoint)
            except zmq.ZMQError as e:  # logged; the server stops on it
                self.failed = e
                return
            last = None  # everyone resubscribes: keyframes for all
        world, last = as_grid(world), None if last is None else as_grid(last)
        h, w = world.height, world.width
        self.sock.getsockopt(zmq.EVENTS)  # see FramePublisher.publish
        self._send(protocol.INFO_TOPIC, protocol.message(
            Kind.INFO, gen=gen, h=h, w=w, chunk=CHUNK, **info))
        wanted, due = self.interest.take()
        cols = self.interest.cols
        if not len(wanted):
            return
        codes = world.codes
        before = last.codes if last is not None else None
        for index, owed in zip(wanted.tolist(), due.tolist(), strict=True):
            cy, cx = divmod(index, cols)
            y, x = cy * CHUNK, cx * CHUNK
            cells = codes[y:y + CHUNK, x:x + CHUNK]
            ch, cw = cells.shape
            msg: protocol.Message | None = None
            if before is not None and not owed and (gen + index) % CHUNK_FULL_EVERY:
                local = np.flatnonzero(before[y:y + CHUNK, x:x + CHUNK] != cells)
                if len(local) * 3 < ch * cw:  # 2 + 1 bytes a changed cell
                    wide, new = codes_payload(np.ascontiguousarray(cells).ravel()[local])
                    msg = protocol.message(
                        Kind.CHUNK_DELTA, [as_payload(local.astype(np.uint16)), new],
                        gen=gen, cy=cy, cx=cx, h=ch, w=cw, count=len(local),
                        **({"wide": True} if wide else {}))
                    self.chunk_deltas += 1
            if msg is None:
                wide, payload = codes_payload(np.ascontiguousarray(cells))
                msg = protocol.message(Kind.CHUNK_FRAME, [payload], gen=gen, cy=cy, cx=cx,
                                       h=ch, w=cw, **({"wide": True} if wide else {}))
                self.chunk_frames += 1
                self.owed_frames += owed
            self._send(protocol.chunk_topic(index), msg)

    def _send(self, topic: bytes, msg: protocol.Message) -> None:
        with contextlib.suppress(zmq.Again):
            self.sock.send_multipart([topic, *protocol.encode(msg)], zmq.NOBLOCK, copy=False)

    def close(self) -> None:
        self.sock.close(linger=0)
