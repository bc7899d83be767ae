"""The live world as the frame publisher sends it: full frames, and deltas between them.

The publisher sends a ``FRAME`` (every cell) now and then and a ``DELTA`` (the changed
cells) for the other generations, so a subscriber must apply every message in order. A
``FrameView`` does that for every watcher of the whole world (topic ``b"w"``): the
terminal client, ``lifenet up``'s live view and the load test (a viewer of a part of
the world uses ``shared.viewport.Viewport``). After a gap (a dropped message, a late
join) it keeps the last good world until the next full frame, which the publisher sends
to a new subscriber at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zmq

from shared import protocol
from shared.errors import ProtocolError
from shared.grid import WIDE, Codes, codes_from, is_wide
from shared.keys import Credentials
from shared.protocol import Kind, Message


class FrameView:
    """The latest world as published by the server, from full frames and deltas."""

    def __init__(self, endpoint: str, context: zmq.Context[Any] | None = None,
                 credentials: Credentials | None = None) -> None:
        self.context = context or zmq.Context.instance()
        self.sock = self.context.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.IPV6, 1)
        self.sock.setsockopt(zmq.SUBSCRIBE, protocol.WORLD_TOPIC)
        if credentials is not None:  # the server's frames are encrypted too
            credentials.apply(self.sock)
        self.sock.connect(endpoint)
        self.codes: Codes | None = None
        self.gen = -1
        self.info: dict[str, Any] = {}
        self.frames = 0
        self.bytes = 0    # received: topics, headers and payloads
        self.refused = 0  # frames that did not make sense (cells outside the world)

    def poll(self, timeout: float = 0.0) -> bool:
        """Apply every message waiting (waiting up to ``timeout`` for the first one);
        returns whether the world changed."""
        changed = False
        wait = int(timeout * 1000)
        while self.sock.poll(wait):
            wait = 0
            try:
                received = self.sock.recv_multipart(copy=False)
                self.bytes += sum(len(f.buffer) for f in received)
                _, frames = protocol.topic_of(received)
                msg = protocol.decode(frames)
            except ProtocolError:
                continue
            changed |= self.apply(msg)
        return changed

    def apply(self, msg: Message) -> bool:
        """Apply one frame or delta; whether the world changed. A delta that does not
        follow the last generation applied is a gap: it is ignored, and the world stays
        as it was until the next full frame."""
        if msg.kind is Kind.FRAME:
            self.codes = codes_from(msg.payloads[0], msg.body.get("wide", False),
                                    (msg["h"], msg["w"])).copy()
        elif msg.kind is Kind.DELTA:
            if self.codes is None or msg["gen"] != self.gen + 1 \
                    or self.codes.shape != (msg["h"], msg["w"]):
                return False  # a gap: wait for the next full frame
            index = np.frombuffer(msg.payloads[0], dtype=np.uint32)
            if index.size and int(index.max()) >= self.codes.size:
                self.refused += 1  # a cell outside the world: the frame is refused whole
                return False
            new = codes_from(msg.payloads[1], msg.body.get("wide", False))
            if is_wide(new) and not is_wide(self.codes):
                self.codes = self.codes.astype(WIDE)  # a player id above 254 owns cells
            self.codes.ravel()[index] = new
        else:
            return False
        self.gen = msg["gen"]
        self.info = msg.body
        self.frames += 1
        return True

    def close(self) -> None:
        """Close the subscription (its context is the caller's)."""
        self.sock.close()
