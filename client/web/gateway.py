"""The gateway: an aiohttp application that serves the page and bridges each tab.

Routes: ``/`` (the page), ``/static/...`` (its script and style, from the package),
``/patterns.json`` (the library, for the palette and its previews), ``/healthz`` (the
gateway's own numbers, JSON) and ``/ws`` (the WebSocket: ``docs/protocol.md``, "The
browser's WebSocket").

Threads: the event loop runs aiohttp and every ``Tab`` (``client.web.tabs``); the
``WorldFeed`` thread watches the world once for all tabs and hands each generation to
the loop (``call_soon_threadsafe``); each tab that joins has a ``PlayerLink`` thread
with its own session. No ZeroMQ socket is ever touched from the loop.

Limits, each a constructor argument (``lifenet web``'s options): at most
``max_tabs_per_address`` WebSockets from one address and ``max_tabs`` in all (an
upgrade over that is refused with 429 or 503 before it opens), a WebSocket only from a
page of this gateway's own origin (or one of ``allow_origins``: a page elsewhere cannot
play on its visitors' behalf), a tab's frames queue bounded (``Tab``), every message a
tab sends checked (``client.web.inputs``) and rate-limited.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import zmq
from aiohttp import WSCloseCode, WSMsgType, web

from client.web import inputs
from client.web.feed import Generation, WorldFeed
from client.web.link import Place as LinkPlace
from client.web.link import PlayerLink
from client.web.tabs import PLACES_PER_SECOND, Encodings, Tab
from shared.colours import PALETTE, PLAYERS
from shared.errors import LifenetError
from shared.keys import Credentials, KeyPair
from shared.library import Entry, library
from shared.policies import POLICIES
from shared.remote import status

log = logging.getLogger("lifenet.web")

STATIC = Path(__file__).resolve().parent / "static"
WHOLE_WORLD_CELLS = 512 * 512  # up to this a tab gets the whole world; above, its region
HEARTBEAT = 15.0  # seconds between WebSocket pings (a vanished tab is noticed)
CLOSE_TIMEOUT = 2.0  # seconds a closing WebSocket waits for the tab's answer


def xterm_rgb(index: int) -> str:
    """An xterm 256-colour index as ``#rrggbb`` (the cube and the greys)."""
    if index >= 232:
        level = 8 + 10 * (index - 232)
        return f"#{level:02x}{level:02x}{level:02x}"
    index -= 16
    levels = (0, 95, 135, 175, 215, 255)
    r, g, b = index // 36, index // 6 % 6, index % 6
    return f"#{levels[r]:02x}{levels[g]:02x}{levels[b]:02x}"


def patterns_json(patterns: dict[str, Entry]) -> list[dict[str, Any]]:
    """The library as the page shows it: name, title, size and live cells."""
    out = []
    for name, (_text, pattern) in patterns.items():
        live = pattern.codes != 0
        ys, xs = live.nonzero()
        out.append({"name": name, "title": pattern.name or name,
                    "h": int(live.shape[0]), "w": int(live.shape[1]),
                    "cells": [[int(y), int(x)] for y, x in zip(ys, xs, strict=True)]})
    return out


@dataclass
class GatewayConfig:
    """What ``lifenet web`` was told."""

    connect: str                      # the server's player endpoint (tcp://HOST:PORT)
    frame_endpoint: str               # its frame publisher
    credentials: Credentials | None   # the server's key (a link makes a key of its own)
    max_tabs_per_address: int = 16
    max_tabs: int = 1024
    max_frames: int = 4               # a tab's queue of binary messages
    allow_origins: tuple[str, ...] = ()
    linger: float = 30.0              # seconds a dropped tab's player keeps playing
    timeout: float = 5.0              # seconds a link waits for the server's answers
    whole_world_cells: int = WHOLE_WORLD_CELLS


@dataclass
class Counters:
    """The gateway's own numbers (``/healthz``)."""

    generations: int = 0
    refused_origin: int = 0
    refused_full: int = 0
    bad_input: int = 0
    rate_limited: int = 0
    started: float = field(default_factory=time.monotonic)


class Gateway:
    """The application and its state; ``app`` is what aiohttp runs."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.patterns = library()
        self.patterns_body = patterns_json(self.patterns)
        self.tabs: set[Tab] = set()
        self.per_address: collections.Counter[str] = collections.Counter()
        self.links: dict[str, PlayerLink] = {}  # token -> link (live or lingering)
        self.latest: Encodings | None = None
        self.counters = Counters()
        self.feed: WorldFeed | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.sweeper: asyncio.Task[None] | None = None
        self.probe: asyncio.Task[None] | None = None
        # one context for every tab's player session: one I/O thread, room for them all
        self.context: zmq.Context[Any] = zmq.Context()
        self.context.set(zmq.MAX_SOCKETS, config.max_tabs + 64)
        self.app = web.Application()
        self.app.add_routes([
            web.get("/", self.page), web.get("/ws", self.websocket),
            web.get("/patterns.json", self.library), web.get("/healthz", self.health),
            web.static("/static", STATIC, append_version=False),
        ])
        self.app.on_startup.append(self._start)
        self.app.on_shutdown.append(self._shutdown)

    # -- life cycle -------------------------------------------------------------------

    async def _start(self, app: web.Application) -> None:
        self.loop = asyncio.get_running_loop()
        self.feed = WorldFeed(self.config.frame_endpoint, self.config.credentials,
                              self._deliver)
        self.feed.start()
        self.sweeper = asyncio.create_task(self._sweep())
        self.probe = asyncio.create_task(self._probe())

    async def _probe(self) -> None:
        """Ask the server once, so that a wrong address or key is said in the log at
        once (the page waits for the world either way, and the feed keeps trying)."""
        try:
            report = await asyncio.to_thread(status, self.config.connect, 5.0,
                                             self.config.credentials)
        except LifenetError as e:
            log.warning("%s; the page waits for the server", e)
            return
        log.info("server at %s: world %s, generation %s", self.config.connect,
                 "x".join(map(str, report["size"])), report["generation"])

    async def _shutdown(self, app: web.Application) -> None:
        for task in (self.sweeper, self.probe):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(tab.close(WSCloseCode.GOING_AWAY, "the gateway is stopping")
                               for tab in list(self.tabs)))
        links = list(self._links())
        for link in links:
            link.leave()
        for link in links:
            await asyncio.to_thread(link.done.wait, 2.0)
        if self.feed is not None:
            self.feed.stop.set()
            await asyncio.to_thread(self.feed.join, 2.0)
        if all(link.done.is_set() for link in links):  # else their sockets are in use
            self.context.destroy(linger=0)

    async def _sweep(self) -> None:
        """Forget the links that ended (left, or lingered too long)."""
        while True:
            await asyncio.sleep(1.0)
            for token, link in list(self.links.items()):
                if link.done.is_set():
                    del self.links[token]

    # -- the world --------------------------------------------------------------------

    def _deliver(self, generation: Generation) -> None:
        """From the feed thread: the next generation, to the loop."""
        if self.loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: shutting down
                self.loop.call_soon_threadsafe(self._generation, generation)

    def _generation(self, generation: Generation) -> None:
        self.counters.generations += 1
        encodings = Encodings(generation)
        resized = self.size != generation.world.shape
        self.latest = encodings
        regional = self._regional()
        for tab in self.tabs:
            if resized:  # the first world, or another one: how it comes to the tab
                tab.region = None
                tab.event(self.world_event())
            tab.offer(encodings, regional)

    @property
    def size(self) -> tuple[int, int] | None:
        if self.latest is None:
            return None
        h, w = self.latest.generation.world.shape
        return int(h), int(w)

    def _regional(self) -> bool:
        size = self.size
        return size is not None and size[0] * size[1] > self.config.whole_world_cells

    # -- HTTP -------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html",
                                headers={"Cache-Control": "no-cache"})

    async def library(self, request: web.Request) -> web.Response:
        return web.json_response(self.patterns_body)

    async def health(self, request: web.Request) -> web.Response:
        latest = self.latest.generation.gen if self.latest else None
        c = self.counters
        return web.json_response({
            "generation": latest, "tabs": len(self.tabs), "players": sum(
                1 for t in self.tabs if t.link is not None), "lingering": sum(
                1 for link in self.links.values() if link.detached_at is not None),
            "generations": c.generations, "refused_origin": c.refused_origin,
            "refused_full": c.refused_full, "bad_input": c.bad_input,
            "rate_limited": c.rate_limited,
            "dropped": sum(t.dropped for t in self.tabs)})

    def origin_allowed(self, request: web.Request) -> bool:
        """A browser says where the page that opens a WebSocket came from: only this
        gateway's own pages (or those allowed) may. No Origin: not a browser."""
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        if origin in self.config.allow_origins:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc == request.host

    # -- the WebSocket ----------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if not self.origin_allowed(request):
            self.counters.refused_origin += 1
            raise web.HTTPForbidden(text="this page's origin may not open a WebSocket here")
        address = request.remote or "?"
        if self.per_address[address] >= self.config.max_tabs_per_address:
            self.counters.refused_full += 1
            raise web.HTTPTooManyRequests(
                text=f"at most {self.config.max_tabs_per_address} tabs from one address")
        if len(self.tabs) >= self.config.max_tabs:
            self.counters.refused_full += 1
            raise web.HTTPServiceUnavailable(text="the gateway is full")
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=inputs.MAX_MESSAGE,
                                   compress=False, timeout=CLOSE_TIMEOUT)
        await ws.prepare(request)
        tab = Tab(ws, address, self.config.max_frames)
        self.tabs.add(tab)
        self.per_address[address] += 1
        writer = asyncio.create_task(tab.writer())
        try:
            tab.event(self.hello())
            if self.latest is not None:
                tab.offer(self.latest, self._regional())
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    self.handle(tab, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    await tab.close(WSCloseCode.UNSUPPORTED_DATA, "text messages only")
        finally:
            tab.closed = True
            self.tabs.discard(tab)
            self.per_address[address] -= 1
            if self.per_address[address] <= 0:
                del self.per_address[address]
            if tab.link is not None:
                tab.link.detach()  # keeps playing a while: the tab may come back
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    def hello(self) -> dict[str, Any]:
        """The first event a tab gets: the colours, the policies, the limits."""
        return {**self.world_event(), "type": "hello",
                "palette": [xterm_rgb(c) for c in PALETTE[:2]],
                "players": [xterm_rgb(c) for c in PLAYERS], "policies": list(POLICIES),
                "max_region": inputs.MAX_REGION_SIDE}

    def world_event(self) -> dict[str, Any]:
        """The world's size, and whether a tab gets its region only (a large world)."""
        return {"type": "world", "size": self.size, "regional": self._regional()}

    def handle(self, tab: Tab, text: str) -> None:
        """One message from a tab: checked, then done (or refused, said to the tab)."""
        if not tab.messages.take():
            self.counters.rate_limited += 1
            return  # dropped unanswered, as the server does past its rate
        try:
            request = inputs.parse(text, self.size, set(self.patterns))
        except inputs.BadInput as e:
            self.counters.bad_input += 1
            tab.event({"type": "error", "reason": str(e)})
            return
        match request:
            case inputs.Join():
                self._join(tab, request)
            case inputs.PlaceAsk():
                self._place(tab, request)
            case inputs.Policy(policy=policy):
                if tab.link is not None:
                    tab.link.policy = policy
                tab.event({"type": "policy", "policy": policy})
            case inputs.View():
                if self._regional():
                    region = (request.y, request.x, request.h, request.w)
                    if region != tab.region:
                        tab.region = region
                        tab.rekey(self.latest, True)
            case inputs.Leave():
                if tab.link is not None:
                    self.links.pop(tab.link.token, None)
                    tab.link.leave()
                    tab.link = None

    def _post_to(self, tab: Tab, link: PlayerLink) -> Callable[[dict[str, Any]], None]:
        """A link's ``post``: from its thread to the tab, on the loop."""
        loop = self.loop
        assert loop is not None

        def on_loop(event: dict[str, Any]) -> None:
            if event.get("type") == "joined":
                self.links[link.token] = link
            if event.get("type") in ("failed", "left") and tab.link is link:
                tab.link = None
            tab.event(event)

        def post(event: dict[str, Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: shutting down
                loop.call_soon_threadsafe(on_loop, event)

        return post

    def _join(self, tab: Tab, request: inputs.Join) -> None:
        if tab.link is not None:
            tab.event({"type": "error", "reason": "this tab has joined already"})
            return
        known = self.links.get(request.token) if request.token else None
        if known is not None and not known.done.is_set():
            # the same session, still playing: nothing to ask the server. A tab that
            # still holds it (its connection dropped unnoticed) gives it up: the token
            # is the session's key, as on the server
            for other in self.tabs:
                if other is not tab and other.link is known:
                    other.link = None
                    other.event({"type": "failed",
                                 "reason": "your session was taken up by another tab"})
            tab.link = known
            known.policy = request.policy
            known.address = tab.address
            known.attach(self._post_to(tab, known))
            return
        players = sum(1 for link in self._links() if link.address == tab.address)
        if players >= self.config.max_tabs_per_address:
            tab.event({"type": "error", "reason": f"at most "
                       f"{self.config.max_tabs_per_address} players from one address "
                       "(those whose tab closed keep playing a while)"})
            return
        credentials = None
        if self.config.credentials is not None:  # a key of its own: the session's
            credentials = Credentials(self.config.credentials.server, KeyPair.generate())
        link = PlayerLink(self.config.connect, request.name, request.token, request.policy,
                          credentials, lambda event: None, timeout=self.config.timeout,
                          linger=self.config.linger, context=self.context)
        link.address = tab.address
        link.attach(self._post_to(tab, link))
        tab.link = link
        link.start()

    def _links(self) -> set[PlayerLink]:
        """Every player session the gateway holds: of open tabs, and lingering."""
        links = {t.link for t in self.tabs if t.link is not None}
        return links | {link for link in self.links.values() if not link.done.is_set()}

    def _place(self, tab: Tab, request: inputs.PlaceAsk) -> None:
        what = {"pattern": request.pattern, "y": request.y, "x": request.x}
        if tab.link is None:
            tab.event({"type": "refused", **what, "reason": "join first to place patterns"})
            return
        if not tab.places.take():
            self.counters.rate_limited += 1
            tab.event({"type": "refused", **what,
                       "reason": f"at most {PLACES_PER_SECOND:g} placements a second"})
            return
        text, _pattern = self.patterns[request.pattern]
        if not tab.link.place(LinkPlace(request.y, request.x, request.pattern, text,
                                        request.rotate, request.flip)):
            tab.event({"type": "refused", **what,
                       "reason": "too many placements waiting for the server"})
