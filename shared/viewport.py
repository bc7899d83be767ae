"""A part of the live world, as the view publisher sends it: the chunks a viewer shows.

``FrameView`` gets the whole world every generation; a ``Viewport`` gets only the
chunks (``protocol.CHUNK`` cells a side) of the region it shows, so what it costs the
server and the network follows the region, not the world. ``view(y, x, h, w)`` sets the
region (on the torus: a region across the seam shows chunks of both sides): the
viewport subscribes its SUB socket to exactly those chunks' topics (and unsubscribes
the ones it left), and tells the server with a ``VIEW`` request on the player endpoint,
naming the chunks it does not hold yet as ``fresh`` so that their keyframes come at the
next publish. It renews the request every ``RENEW_SECONDS`` (the server forgets a chunk
``WANT_SECONDS`` after the last request that named it).

Each chunk has its own generation: a ``CHUNK_DELTA`` is applied only if it follows it,
otherwise the chunk keeps its last good cells (and is asked ``fresh`` again at the next
renewal) until its next keyframe, which comes every 32 generations anyway. The
scoreboard and the counts come on the ``INFO`` topic every generation (``info``, with
``gen``).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np
import zmq

from shared import protocol
from shared.errors import ProtocolError
from shared.grid import NARROW, WIDE, codes_from, is_wide
from shared.keys import Credentials
from shared.protocol import CHUNK, Kind, Message

RENEW_SECONDS = 3.0  # how often the VIEW is said again (the server keeps it 10 s)

Chunk = tuple[int, int]  # (cy, cx)


def chunks_in(y: int, x: int, h: int, w: int, height: int, width: int) -> list[Chunk]:
    """The chunks a region of ``h`` x ``w`` cells at ``(y, x)`` touches on the torus of
    ``height`` x ``width`` cells (each once, row by row)."""
    rows, cols = protocol.chunks_of(height, width)
    h, w = min(h, height), min(w, width)
    ys = sorted({((y + dy) % height) // CHUNK for dy in range(h)})
    xs = sorted({((x + dx) % width) // CHUNK for dx in range(w)})
    assert all(cy < rows for cy in ys) and all(cx < cols for cx in xs)
    return [(cy, cx) for cy in ys for cx in xs]


class Viewport:
    """The chunks of a region of the world, kept up to date from the view publisher."""

    def __init__(self, view_endpoint: str, player_endpoint: str, size: tuple[int, int],
                 context: zmq.Context[Any] | None = None,
                 credentials: Credentials | None = None) -> None:
        self.context = context or zmq.Context.instance()
        self.height, self.width = size
        self.rows, self.cols = protocol.chunks_of(self.height, self.width)
        self.sock = self._socket(zmq.SUB, credentials)
        self.sock.setsockopt(zmq.SUBSCRIBE, protocol.INFO_TOPIC)
        self.sock.connect(view_endpoint)
        self.requests = self._socket(zmq.DEALER, credentials)
        self.requests.setsockopt(zmq.SNDHWM, 4)
        self.requests.connect(player_endpoint)
        self.codes: dict[Chunk, np.ndarray] = {}  # the chunks held: their cells
        self.gens: dict[Chunk, int] = {}          # and the generation of each
        self.chunks: list[Chunk] = []             # the chunks shown, held or not
        self.region = (0, 0, 0, 0)
        self.gen = -1                 # the last INFO's generation
        self.info: dict[str, Any] = {}
        self.frames = 0               # chunk messages applied
        self.refused = 0              # messages that did not make sense
        self.received = 0             # messages received (INFO and chunks)
        self.bytes = 0                # their bytes, topics and headers included
        self.keyframes = 0            # chunk messages applied: keyframes
        self.deltas = 0               # and deltas
        self.topics: set[int] = set()  # the chunks (indices) any message came for
        self.error: str | None = None  # the server's last refusal of a VIEW
        self.viewing: dict[str, Any] = {}  # its last acknowledgement
        self.acks = 0                 # acknowledgements received
        self._renew_at = 0.0
        self._stale: set[Chunk] = set()  # chunks left since the last ``paint``

    def _socket(self, kind: int, credentials: Credentials | None) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IPV6, 1)
        if credentials is not None:
            credentials.apply(sock)
        return sock

    # -- the region ----------------------------------------------------------------------

    def view(self, y: int, x: int, h: int, w: int) -> None:
        """Show the ``h`` x ``w`` cells at ``(y, x)`` (wrapped on the torus): subscribe
        to its chunks, leave the others, and tell the server (``ValueError`` for a
        region of more than ``protocol.MAX_VIEW_CHUNKS`` chunks)."""
        chunks = chunks_in(y % self.height, x % self.width, h, w, self.height, self.width)
        if len(chunks) > protocol.MAX_VIEW_CHUNKS:
            raise ValueError(f"a region of {len(chunks)} chunks: at most "
                             f"{protocol.MAX_VIEW_CHUNKS} are viewed at once")
        self.region = (y % self.height, x % self.width, h, w)
        old, new = set(self.chunks), set(chunks)
        for chunk in old - new:
            self.sock.setsockopt(zmq.UNSUBSCRIBE, self._topic(chunk))
            self.codes.pop(chunk, None)
            self.gens.pop(chunk, None)
        for chunk in new - old:
            self.sock.setsockopt(zmq.SUBSCRIBE, self._topic(chunk))
        self.chunks = chunks
        self._stale |= old - new
        if new != old:
            self._request()

    def _topic(self, chunk: Chunk) -> bytes:
        return protocol.chunk_topic(chunk[0] * self.cols + chunk[1])

    def _request(self) -> None:
        """Say (or renew) the ``VIEW``: the chunks shown, those not held as fresh."""
        fresh = [list(c) for c in self.chunks if c not in self.codes]
        msg = protocol.message(Kind.VIEW, version=protocol.PROTOCOL_VERSION,
                               chunks=[list(c) for c in self.chunks], fresh=fresh)
        # not connected yet, or the server not reading: the renewal says it again
        with contextlib.suppress(zmq.Again):
            self.requests.send_multipart(protocol.encode(msg), zmq.NOBLOCK)
        self._renew_at = time.monotonic() + RENEW_SECONDS

    # -- receiving -----------------------------------------------------------------------

    def poll(self, timeout: float = 0.0) -> bool:
        """Apply every message waiting (waiting up to ``timeout`` for the first one),
        read the server's answers to ``VIEW`` and renew it when due; returns whether a
        held chunk or the ``INFO`` changed."""
        if self.chunks and time.monotonic() >= self._renew_at:
            self._request()
        while self.requests.poll(0):
            try:
                reply = protocol.decode(self.requests.recv_multipart())
            except ProtocolError:
                continue
            if reply.kind is Kind.ERROR:
                self.error = reply["reason"]
            elif reply.kind is Kind.VIEWING:
                self.viewing = reply.body
                self.acks += 1
                self.error = None
        changed = False
        wait = int(timeout * 1000)
        while self.sock.poll(wait):
            wait = 0
            frames = self.sock.recv_multipart(copy=False)
            self.received += 1
            self.bytes += sum(len(f.buffer) for f in frames)
            try:
                _, body = protocol.topic_of(frames)
                msg = protocol.decode(body)
            except ProtocolError:
                self.refused += 1
                continue
            changed |= self.apply(msg)
        return changed

    def apply(self, msg: Message) -> bool:
        """Apply one ``INFO``, ``CHUNK_FRAME`` or ``CHUNK_DELTA``; whether it changed
        something (the info, or a held chunk). A chunk not shown, or of the wrong
        shape, is refused; a delta that does not follow its chunk's generation is a
        gap: the chunk waits for its next keyframe."""
        if msg.kind is Kind.INFO:
            if msg["h"] != self.height or msg["w"] != self.width:
                self.refused += 1
                return False
            self.gen = msg["gen"]
            self.info = msg.body
            return True
        if msg.kind not in (Kind.CHUNK_FRAME, Kind.CHUNK_DELTA):
            return False
        chunk = (msg["cy"], msg["cx"])
        self.topics.add(chunk[0] * self.cols + chunk[1])
        if chunk not in self.chunks:
            return False  # left already: its messages were on their way
        shape = (min(CHUNK, self.height - chunk[0] * CHUNK),
                 min(CHUNK, self.width - chunk[1] * CHUNK))
        if (msg["h"], msg["w"]) != shape:
            self.refused += 1
            return False
        if msg.kind is Kind.CHUNK_FRAME:
            self.codes[chunk] = codes_from(msg.payloads[0], msg.body.get("wide", False),
                                           shape).copy()
            self.keyframes += 1
        else:
            cells = self.codes.get(chunk)
            if cells is None or msg["gen"] != self.gens[chunk] + 1:
                return False  # a gap: wait for the chunk's next keyframe
            index = np.frombuffer(msg.payloads[0], dtype=np.uint16)
            if index.size and int(index.max()) >= cells.size:
                self.refused += 1
                return False
            new = codes_from(msg.payloads[1], msg.body.get("wide", False))
            if is_wide(new) and not is_wide(cells):
                cells = self.codes[chunk] = cells.astype(WIDE)
            cells.ravel()[index] = new
            self.deltas += 1
        self.gens[chunk] = msg["gen"]
        self.frames += 1
        return True

    # -- reading -------------------------------------------------------------------------

    def held(self) -> list[Chunk]:
        """The chunks shown whose cells are held (a keyframe came)."""
        return [c for c in self.chunks if c in self.codes]

    def cells(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        """The ``h`` x ``w`` cells at ``(y, x)`` on the torus, as held: a cell of a
        chunk not held (not shown, or its keyframe not come yet) reads 0."""
        out = np.zeros((h, w), WIDE if self.wide else NARROW)
        ys = (y + np.arange(h)) % self.height
        xs = (x + np.arange(w)) % self.width
        for (cy, cx), cells in self.codes.items():
            rows = np.flatnonzero(ys // CHUNK == cy)
            cols = np.flatnonzero(xs // CHUNK == cx)
            if rows.size and cols.size:
                out[np.ix_(rows, cols)] = cells[np.ix_(ys[rows] - cy * CHUNK,
                                                      xs[cols] - cx * CHUNK)]
        return out

    @property
    def wide(self) -> bool:
        """Whether some chunk held has codes above 255 (``paint`` needs a wide canvas)."""
        return any(is_wide(cells) for cells in self.codes.values())

    def paint(self, canvas: np.ndarray) -> None:
        """Write the chunks held into ``canvas`` (the whole world's shape: wide when
        ``wide``), and clear those left since the last paint (nothing of them is known
        any more)."""
        for cy, cx in self._stale:
            canvas[cy * CHUNK:(cy + 1) * CHUNK, cx * CHUNK:(cx + 1) * CHUNK] = 0
        self._stale.clear()
        for (cy, cx), cells in self.codes.items():
            canvas[cy * CHUNK:(cy + 1) * CHUNK, cx * CHUNK:(cx + 1) * CHUNK] = cells

    def close(self) -> None:
        """Close both sockets (the context is the caller's)."""
        self.sock.close()
        self.requests.close()
