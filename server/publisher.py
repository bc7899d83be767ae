"""The frame publisher: every generation to every subscriber, full frames and deltas.

A PUB socket (owned by the main thread) publishes one message per generation: a
``FRAME`` with every cell now and then, and a ``DELTA`` with only the changed cells in
between, each after the topic frame ``b"w"`` (the whole world; subscribers subscribe to
it and strip it). What a viewer of a part of the world gets instead comes from the view
publisher (``server.viewports``), which this one hands each generation and the mask of
its changed cells. The high-water mark is small: a subscriber that cannot keep up loses frames,
never the server's time, and resynchronises on the next full frame.

PUB, not XPUB: XPUB keeps every message a subscriber sends up (and, verbose, every
subscription) in a queue of its own until the application reads it, and nothing bounds
that queue but the application's reading; PUB applies subscriptions inside libzmq and
discards the rest as it comes. What PUB does keep is each connection's distinct
subscriptions (a tree, about a node a byte, a message at most ``MAX_UPSTREAM``), for
as long as it is connected: a viewer sending many different ones grows the server, and
only the memory guard bounds that (our viewers send one, of no bytes).

A late joiner is noticed by the socket's monitor (a finished
handshake: on a server with keys, only an admitted one), and gets full frames for the
next few publishes (``JOIN_FULL_FRAMES``, and ``JOIN_FULL_SECONDS`` at least, as its
subscription travels after its handshake) instead of waiting for the next one; one
such window every ``JOIN_COOLDOWN`` at most, so that joins cost a bounded share of
the frames however often a viewer reconnects.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np
import zmq

from server.auth import VIEWERS, ServerKeys, serve_curve
from server.transport import MemoryGuard, apply_heartbeats, bind
from server.viewports import ViewPublisher
from shared import protocol
from shared.grid import Codes, Grid, as_grid, as_payload, codes_payload, unpack_words
from shared.protocol import Kind

FULL_EVERY = 32
MAX_UPSTREAM = 4096    # bytes of one message up (a subscription; the CURVE handshake
#                        is counted too, and its INITIATE is over 256)
EVENTS_PER_PUBLISH = 64  # monitor events read at each publish, at most
JOIN_FULL_FRAMES = 2     # publishes after a subscriber's handshake that send full frames
JOIN_FULL_SECONDS = 0.25  # and for at least this long after it
JOIN_COOLDOWN = 2.0      # seconds from one such window to the next, at least


class FramePublisher:
    """Publishes generations; ``close`` it from the thread that made it."""

    def __init__(self, context: zmq.Context[Any], endpoint: str,
                 keys: ServerKeys | None = None, guard: MemoryGuard | None = None,
                 views: ViewPublisher | None = None) -> None:
        self.context = context
        self.views = views
        self.keys = keys
        self.guard = guard or MemoryGuard(None)
        self.monitor: zmq.Socket[Any] | None = None
        self.sock = self._socket()
        self.endpoint, self.port = bind(self.sock, endpoint)
        self._watch()
        self._last: Grid | None = None
        self._gen = -1               # the generation published last
        self._since_full = 0
        self._full_left = 0          # full frames still owed to the last joiner
        self._full_until = 0.0       # and until when (monotonic)
        self._join_waiting = False   # a joiner noticed, its window not opened yet
        self._next_window = 0.0      # the earliest the next window may open
        self.full_frames = 0
        self.deltas = 0
        self.bytes_published = 0  # of the world's frames, as handed to the PUB socket
        self.joins = 0               # subscribers' finished handshakes seen
        self.failed: zmq.ZMQError | None = None  # the endpoint could not listen again
        # Whether a viewer of the whole world has come (a finished handshake) since the
        # start: until then the world's frames are not even made. It stays set (the
        # monitor tells joins, not departures: see ``_watch``).
        self.watched = False

    def _socket(self) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = self.context.socket(zmq.PUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 8)
        # Upstream there are only subscriptions: anything bigger drops its connection.
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_UPSTREAM)
        apply_heartbeats(sock, self.guard.handshake_ms)
        serve_curve(sock, self.keys, VIEWERS)
        return sock

    def _watch(self) -> None:
        """The monitor of the bound socket (made once it is bound: a socket that fails
        to bind, in ``rebind``'s retries, leaves no monitor behind)."""
        # Finished handshakes only (on a server with keys, admitted peers only): every
        # raw connection and close would be an event too, and a flood of them fills
        # the monitor's queue, where libzmq's I/O thread then waits (every socket of
        # the server with it).
        self.monitor = self.sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)

    def _unwatch(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self.sock.disable_monitor()
        if self.monitor is not None:
            self.monitor.close(linger=0)
            self.monitor = None

    def notice_joins(self) -> bool:
        """Whether a subscriber finished its handshake since the last look (then the
        next publishes owe it full frames). Reads at most ``EVENTS_PER_PUBLISH``
        monitor events (a flood of connections waits, bounded by the monitor's
        high-water mark, never in this thread's time)."""
        joined = False
        assert self.monitor is not None
        for _ in range(EVENTS_PER_PUBLISH):
            try:
                self.monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            joined = True
            self.joins += 1
            self.watched = True
        self._join_waiting |= joined
        self._open_window()
        return joined

    def _open_window(self) -> None:
        """Owe full frames to the joiners waiting, unless a window was opened less than
        ``JOIN_COOLDOWN`` ago (then at its end): a viewer reconnecting over and over
        cannot turn every frame into a full one."""
        now = time.monotonic()
        if self._join_waiting and now >= self._next_window:
            self._join_waiting = False
            self._full_left = JOIN_FULL_FRAMES
            self._full_until = now + JOIN_FULL_SECONDS
            self._next_window = now + JOIN_COOLDOWN

    def _owed_full(self) -> bool:
        """Whether this publish is one of the full frames owed to a recent joiner."""
        self.notice_joins()
        if self._full_left > 0 or time.monotonic() < self._full_until:
            self._full_left = max(0, self._full_left - 1)
            return True
        return False

    def publish(self, gen: int, world: Grid | Codes, info: dict[str, Any]) -> None:
        """Send generation ``gen`` (a ``Grid``, or its codes), which must not change
        after this call. The world's codes are read only when a viewer wants them: a
        packed world (``Grid.bits``) nobody watches is never unpacked."""
        if self.failed is not None:
            return
        world = as_grid(world)
        if self.guard.due("frames"):
            self._unwatch()
            try:
                self.sock = self.guard.drop_all("frames", self.sock, self._socket,
                                                self.endpoint)
            except zmq.ZMQError as e:  # logged; the server stops on it
                self.failed = e
                return
            self._watch()
            self._last = None  # everyone resubscribes: a full frame for all
        owed = self._owed_full()  # first: the joins are read at every publish
        # The last generation, when this one follows it (after a gap, or a new shape,
        # the changes are not known): the views' chunks take their deltas from it.
        shape = (world.height, world.width)
        last = self._last if (self._last is not None
                              and (self._last.height, self._last.width) == shape
                              and gen == self._gen + 1) else None
        if self.watched:
            self._publish_world(gen, world, owed, info)
        else:  # nobody came yet (viewers of chunks only): no whole-world work at all
            self._since_full = FULL_EVERY  # whoever comes starts from a full frame
        self._last = world
        if self.views is not None:
            self.views.publish(gen, world, last, info)
        self._gen = gen

    def _publish_world(self, gen: int, world: Grid, owed: bool,
                       info: dict[str, Any]) -> None:
        """The ``w`` topic's message for generation ``gen``: a delta against the last
        one, or a full frame (owed to a joiner, due, after a gap, or cheaper)."""
        h, w = world.height, world.width
        last = self._last
        full = (owed or last is None or (last.height, last.width) != (h, w)
                or self._since_full >= FULL_EVERY)
        msg: protocol.Message
        if not full:
            assert last is not None
            changed, new_cells = changes(last, world)
            if len(changed) * 5 > h * w:
                full = True
            else:
                wide, new = codes_payload(new_cells)
                msg = protocol.message(
                    Kind.DELTA, [as_payload(changed), new], gen=gen, h=h, w=w,
                    count=len(changed), **info, **({"wide": True} if wide else {}))
        if full:
            wide, payload = codes_payload(world.codes)
            msg = protocol.message(Kind.FRAME, [payload], gen=gen, h=h, w=w, **info,
                                   **({"wide": True} if wide else {}))
            self._since_full = 0
            self.full_frames += 1
        else:
            self._since_full += 1
            self.deltas += 1
        # libzmq learns what a subscriber has read (and so that its queue has room) by
        # processing the socket's commands, which a send does at most once a
        # millisecond: asking for EVENTS processes them now. Without it, generations a
        # millisecond apart are dropped as if every queue were full.
        self.sock.getsockopt(zmq.EVENTS)
        frames = protocol.encode(msg)
        with contextlib.suppress(zmq.Again):
            self.sock.send_multipart([protocol.WORLD_TOPIC, *frames], zmq.NOBLOCK,
                                     copy=False)
            self.bytes_published += sum(memoryview(f).nbytes for f in frames)

    def close(self) -> None:
        self._unwatch()
        self.sock.close(linger=0)
        if self.views is not None:
            self.views.close()


def changes(last: Grid, now: Grid) -> tuple[np.ndarray[Any, np.dtype[np.uint32]], Codes]:
    """The flat indices (ascending, ``uint32``) of the cells that differ between two
    generations of one shape, and their codes now. Two packed generations are compared
    word by word (64 cells an operation), and only the words that changed are opened:
    neither world is unpacked."""
    if last.bits is None or now.bits is None:
        codes = now.codes
        changed = np.flatnonzero(last.codes != codes).astype(np.uint32)
        return changed, codes.ravel()[changed]
    diff = last.bits ^ now.bits
    at = np.flatnonzero(diff)  # changed words, in the world's order
    per_row = now.bits.shape[1]
    flips = unpack_words(diff.ravel()[at][:, None], 64)      # (words, 64) 0/1
    cells = unpack_words(now.bits.ravel()[at][:, None], 64)  # the cells there now
    word, bit = np.nonzero(flips)  # row-major: ascending cells
    rows, cols = np.divmod(at[word], per_row)
    changed = (rows * now.width + cols * 64 + bit).astype(np.uint32)
    return changed, cells[word, bit]
