"""A browser tab as the gateway holds it: what it shows, and what is on its way to it.

Everything here runs on the gateway's event loop. A ``Tab`` has two bounded queues,
drained by its writer task into the WebSocket:

- ``frames``: at most ``max_frames`` binary messages (``client.web.encoding``). When a
  new generation finds it full, the tab is too slow: everything queued is dropped and
  the tab gets a key (its whole region) instead of a delta, so a slow tab costs the
  gateway at most ``max_frames`` messages, never a growing backlog.
- ``events``: the tab's own news as JSON text (joined, placed, refused, landed, its
  standing), at most ``MAX_EVENTS``; past that the oldest go (a tab that reads nothing
  for that long has lost its standing already, and the next one says it again).

``Encodings`` makes each generation's messages once per distinct region, so that a
hundred tabs showing the whole world cost one encoding, not a hundred.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections import OrderedDict
from typing import Any

from aiohttp import WSCloseCode, web

from client.web.encoding import Region, encode_delta, encode_key, in_region, whole
from client.web.feed import Generation
from client.web.link import PlayerLink
from shared.ratelimit import TokenBucket

MAX_FRAMES = 4     # binary messages queued for a tab before it counts as slow
MAX_EVENTS = 256   # JSON events queued for a tab
MESSAGES_PER_SECOND = 50.0  # what a tab may send (placements have their own bound)
PLACES_PER_SECOND = 10.0    # the server's own bound for a player
FIRST_REGION = (256, 512)   # a large world's cells a tab gets before it says its view


class Encodings:
    """One generation's messages, each made once per region it is asked for, the
    ``MAX_CACHED`` regions asked last kept (of each kind): tabs that share a region
    share its message, and a tab naming region after region (a ``view`` a message,
    50 a second) cannot make the gateway keep them all while the generation lasts."""

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        self.keys: OrderedDict[Region, bytes] = OrderedDict()
        self.deltas: OrderedDict[Region, bytes] = OrderedDict()

    def key(self, region: Region) -> bytes:
        made = self.keys.get(region)
        if made is None:
            g = self.generation
            made = encode_key(g.gen, g.world, region, g.info_json)
        return _kept(self.keys, region, made)

    def delta(self, region: Region) -> bytes:
        made = self.deltas.get(region)
        if made is None:
            g = self.generation
            assert g.changed is not None
            index = g.changed
            if region != whole(g.world.shape):
                index = index[in_region(index, g.world.shape, region)]
            made = encode_delta(g.gen, g.base, g.world.shape, region, index,
                                g.world.ravel()[index], g.info_json)
        return _kept(self.deltas, region, made)


MAX_CACHED = 16  # regions' messages a generation keeps, of each kind


def _kept(cache: OrderedDict[Region, bytes], region: Region, made: bytes) -> bytes:
    """``made`` for ``region``, as the newest of ``cache`` (the oldest beyond
    ``MAX_CACHED`` forgotten)."""
    cache[region] = made
    cache.move_to_end(region)
    while len(cache) > MAX_CACHED:
        cache.popitem(last=False)
    return made


class Tab:
    """One browser tab's WebSocket, its region, queues and player link."""

    def __init__(self, ws: web.WebSocketResponse, address: str,
                 max_frames: int = MAX_FRAMES) -> None:
        self.ws = ws
        self.address = address
        self.max_frames = max_frames
        self.frames: collections.deque[bytes] = collections.deque()
        self.events: collections.deque[str] = collections.deque(maxlen=MAX_EVENTS)
        self.wake = asyncio.Event()
        self.region: Region | None = None  # None: the whole world
        self.held = -1       # the generation the tab holds once its queue is sent
        self.sent = 0        # binary messages sent
        self.dropped = 0     # times its queue was dropped for a key
        self.link: PlayerLink | None = None
        self.messages = TokenBucket(MESSAGES_PER_SECOND, 2 * MESSAGES_PER_SECOND)
        self.places = TokenBucket(PLACES_PER_SECOND, PLACES_PER_SECOND)
        self.closed = False

    def shown(self, shape: tuple[int, int], regional: bool = False) -> Region:
        """What the tab gets: the whole world, or in a large one its region (the
        middle ``FIRST_REGION`` until it says which)."""
        if self.region is not None:
            return self.region
        if not regional:
            return whole(shape)
        h, w = min(shape[0], FIRST_REGION[0]), min(shape[1], FIRST_REGION[1])
        return ((shape[0] - h) // 2, (shape[1] - w) // 2, h, w)

    def offer(self, encodings: Encodings, regional: bool = False) -> None:
        """Queue this generation: a delta on what the tab holds, else a key; a tab
        whose queue is full drops it all and gets a key."""
        g = encodings.generation
        if len(self.frames) >= self.max_frames:
            self.frames.clear()
            self.held = -1
            self.dropped += 1
        region = self.shown(g.world.shape, regional)
        if g.changed is not None and self.held == g.base and self.held >= 0:
            self.frames.append(encodings.delta(region))
        else:
            self.frames.append(encodings.key(region))
        self.held = g.gen
        self.wake.set()

    def rekey(self, encodings: Encodings | None, regional: bool) -> None:
        """The region changed: what is queued is for the old one; a key now."""
        self.frames.clear()
        self.held = -1
        if encodings is not None:
            self.offer(encodings, regional)

    def event(self, event: dict[str, Any]) -> None:
        if not self.closed:
            self.events.append(json.dumps(event, separators=(",", ":"), default=str))
            self.wake.set()

    async def writer(self) -> None:
        """Send what is queued, events first (they are small and they are the tab's
        own), until the WebSocket closes."""
        try:
            while not self.ws.closed:
                await self.wake.wait()
                self.wake.clear()
                while self.events or self.frames:
                    if self.events:
                        await self.ws.send_str(self.events.popleft())
                    else:
                        await self.ws.send_bytes(self.frames.popleft())
                        self.sent += 1
        except (ConnectionError, RuntimeError):
            pass  # the tab went away while we wrote: the reader side cleans up

    async def close(self, code: int = WSCloseCode.GOING_AWAY, reason: str = "") -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=reason.encode()[:120])
