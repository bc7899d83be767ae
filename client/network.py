"""The terminal client's network thread: one player's connection, kept alive.

``Network.run`` owns the ``PlayerSession`` and ``FrameView`` sockets (made and closed in
its thread; in a world larger than ``VIEWPORT_ABOVE`` cells, a ``Viewport`` of the
region the UI shows, ``Network.region``, instead of the whole world's frames): it
answers every ``GAME_LOGIC`` request with the current policy at once, pings once a
heartbeat (the latency), applies frames and runs the placements the UI asks for. The
UI hands work over through a ``queue.Queue``; the thread hands the latest world and
counters back through ``NetState`` under a lock, with one coalesced
``Changed`` message at a time, so a slow terminal skips frames instead of queueing them.

A game outlives a connection. When the server stops answering, the thread reconnects
with the session's token at every heartbeat; when the server no longer knows the token
(it restarted, or the grace period ran out) it joins again under the same name, as a
new player, and posts ``Joined`` again: the UI keeps its policy, cursor and pattern.
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import zmq
from textual.message import Message

from client.session import PlayerSession
from shared.errors import HandshakeError, LifenetError, RemoteError
from shared.frames import FrameView
from shared.grid import WIDE, Codes, is_wide
from shared.keys import Credentials
from shared.policies import POLICIES, GameLogicRequest
from shared.protocol import ErrorCode, Kind
from shared.viewport import Viewport

POLL_MS = 20  # the longest a placement waits in the queue before the network thread runs it
VIEWPORT_ABOVE = 512 * 512  # cells of a world above which only the region shown comes
FIRST_REGION = (128, 256)   # the region (rows, columns) watched until the UI says one


@dataclass
class NetState:
    """What the network thread knows, copied out for the UI under ``Network.lock``."""

    codes: Codes | None = None
    gen: int = -1
    info: dict[str, Any] = field(default_factory=dict)
    energy: int = 0
    spent: int = 0      # energy the last decision round cost (keep-alives)
    spent_gen: int = -1  # the generation of that round
    latency_ms: float | None = None
    answered: int = 0
    kept: int = 0
    refused: int = 0
    trouble: str = ""  # the server is not answering, and so on
    standing: dict[str, int] = field(default_factory=dict)  # own place, from PONG


@dataclass
class Place:
    """A placement the UI asks the network thread to send."""

    y: int
    x: int
    name: str
    rle: str
    rotate: int
    flip: bool


class Joined(Message):
    """Joined (or joined again): ``welcome`` is the server's ``JOINED``; ``why`` says
    why a join was a fresh one when the player had a session before."""

    def __init__(self, welcome: dict[str, Any], why: str = "") -> None:
        super().__init__()
        self.welcome = welcome
        self.why = why


class Changed(Message):
    """The network state changed; read it with ``Network.take``."""


class PlaceResult(Message):
    def __init__(self, place: Place, placed: dict[str, Any] | None, reason: str = "") -> None:
        super().__init__()
        self.place = place
        self.placed = placed
        self.reason = reason


class Landed(Message):
    """A placement reached the world: ``body`` is the server's ``LANDED``."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__()
        self.body = body


class Failed(Message):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class Rejoin(Exception):
    """The server no longer knows this session: join again as a new player."""


def token_refused(error: RemoteError) -> bool:
    """Whether the server refused the session's token (restarted, or grace over)."""
    return error.code == ErrorCode.NOT_ALLOWED and "token" in error.reason


class Network:
    """The player's connection, run by ``run`` in its own thread (see the module doc)."""

    def __init__(self, connect: str, name: str, token: str | None, policy: str,
                 post: Callable[[Message], object], timeout: float = 5.0,
                 credentials: Credentials | None = None,
                 rekey: Callable[[], Credentials | None] | None = None) -> None:
        self.connect = connect
        self.name = name
        self.token = token or ""
        self.policy = policy  # set by the UI thread; one str assignment, read each request
        self.post = post
        self.timeout = timeout
        self.credentials = credentials
        self.rekey = rekey  # the credentials found again (a local `up` makes new keys)
        self.stop = threading.Event()
        self.commands: queue.Queue[Place] = queue.Queue()
        self.lock = threading.Lock()
        self.state = NetState()
        self.joins = 0  # how many times this client joined (a rejoin as new counts)
        self._pending = False  # a Changed message is on its way to the UI
        self.cancelled: Callable[[], bool] = lambda: False
        # the cells the UI shows, (y, x, h, w) on the torus: set by the UI thread (one
        # assignment), read by this one; what a Viewport watches in a large world
        self.region: tuple[int, int, int, int] | None = None

    def take(self) -> NetState:
        """The latest state (UI thread); the next change posts ``Changed`` again."""
        with self.lock:
            self._pending = False
            return replace(self.state)

    def _changed(self, **updates: Any) -> None:
        with self.lock:
            for name, value in updates.items():
                setattr(self.state, name, value)
            post, self._pending = not self._pending, True
        if post:
            self.post(Changed())

    def _stopping(self) -> bool:
        return self.stop.is_set() or self.cancelled()

    def run(self, cancelled: Callable[[], bool] = lambda: False) -> None:
        """Join, then play until ``stop`` is set or ``cancelled()`` (the app is exiting
        some other way than ``q``: its workers are cancelled); then leave."""
        self.cancelled = cancelled
        context: zmq.Context[Any] = zmq.Context()
        try:
            self._run(context)
        except Exception as e:  # never a silent death: the world would freeze on screen
            self.post(Failed(f"the connection failed: {type(e).__name__}: {e}"))
            raise
        finally:
            context.destroy(linger=0)

    def _run(self, context: zmq.Context[Any]) -> None:
        session = PlayerSession(self.connect, self.name, timeout=self.timeout, context=context,
                                credentials=self.credentials)
        view: FrameView | Viewport | None = None
        try:
            try:
                welcome, why = self._first_join(session)
            except LifenetError as e:
                self.post(Failed(f"cannot join {session.endpoint}: {e}"))
                return
            while True:
                self.token = session.token
                self.joins += 1
                view = self._watch(session, context)
                self._changed(energy=session.energy, trouble="", codes=None, gen=-1)
                self.post(Joined(welcome, why))
                try:
                    self._loop(session, view, float(welcome["heartbeat"]))
                    break
                except Rejoin as e:
                    view.close()
                    view = None
                    welcome, why = self._join_again(session, str(e))
                    if not welcome:
                        return
            session.timeout = 1.0  # say goodbye, but do not hang on a server that is gone
            with contextlib.suppress(LifenetError):
                session.leave()
        finally:
            if view is not None:
                view.close()
            session.close()

    def _watch(self, session: PlayerSession, context: zmq.Context[Any]) -> FrameView | Viewport:
        """The whole world's frames, or in a large world (on a server that publishes
        views) a ``Viewport`` of the region shown."""
        h, w = (int(v) for v in session.welcome["size"])
        endpoint = session.view_endpoint
        if h * w <= VIEWPORT_ABOVE or endpoint is None:
            return FrameView(session.frame_endpoint, context, self.credentials)
        return Viewport(endpoint, session.endpoint, (h, w), context, self.credentials)

    def _first_join(self, session: PlayerSession) -> tuple[dict[str, Any], str]:
        """Join with the token given, or as a new player if the server no longer knows
        it (an expired token is no reason to refuse to play)."""
        try:
            return session.join(self.token or None), ""
        except RemoteError as e:
            if not (self.token and token_refused(e)):
                raise
            return session.join(None), (f"your session token was refused ({e.reason}): "
                                        "joined as a new player")

    def _join_again(self, session: PlayerSession, why: str) -> tuple[dict[str, Any], str]:
        """A fresh session under the same name after the old one was refused; retried
        at every heartbeat while the server does not answer. Empty when stopping."""
        while not self._stopping():
            try:
                return session.reconnect(fresh=True), why
            except HandshakeError as e:
                self._rekey(session, e)
            except LifenetError as e:
                self._changed(trouble=f"server not answering: {e}", latency_ms=None)
            self.stop.wait(1.0)
        return {}, ""

    def _rekey(self, session: PlayerSession, error: HandshakeError) -> bool:
        """After a refused handshake, the server's key found again (a local ``up`` that
        restarted made new keys); whether it changed."""
        self._changed(trouble=f"server refused the connection: {error}", latency_ms=None)
        if self.rekey is None:
            return False
        try:
            fresh = self.rekey()
        except LifenetError:
            return False
        if fresh is None or (self.credentials is not None
                             and fresh.server == self.credentials.server):
            return False
        self.credentials = session.credentials = fresh
        return True

    def _loop(self, session: PlayerSession, view: FrameView | Viewport,
              heartbeat: float) -> None:
        rng = random.Random()
        poller = zmq.Poller()
        poller.register(session.sock, zmq.POLLIN)
        poller.register(view.sock, zmq.POLLIN)
        next_ping = 0.0
        canvas: Codes | None = None  # a viewport's chunks, where they are in the world
        shown: tuple[int, int, int, int] | None = None
        if isinstance(view, Viewport):
            canvas = np.zeros((view.height, view.width), np.uint8)
            rows, columns = FIRST_REGION  # around the middle, where the UI starts
            first = ((view.height - rows) // 2, (view.width - columns) // 2, rows, columns)
        while not self._stopping():
            poller.poll(POLL_MS)
            self._answer(session, rng)  # first: the requests have a deadline
            if isinstance(view, Viewport):
                assert canvas is not None
                region = self.region or first
                if region != shown:
                    shown = region
                    view.view(*region)
                if view.poll(0):
                    if view.wide and not is_wide(canvas):
                        canvas = canvas.astype(WIDE)
                    view.paint(canvas)
                    self._changed(codes=canvas.copy(), gen=view.gen, info=view.info)
            elif view.poll(0) and view.codes is not None:
                self._changed(codes=view.codes.copy(), gen=view.gen, info=view.info)
            while not self._stopping():
                try:
                    place = self.commands.get_nowait()
                except queue.Empty:
                    break
                if self.state.trouble:  # not sent to a server that is not answering
                    self.post(PlaceResult(place, None, f"not placed: {self.state.trouble}"))
                else:
                    self._place(session, place)
            if time.monotonic() >= next_ping:
                next_ping = time.monotonic() + heartbeat
                old = session.sock
                self._ping(session)
                if session.sock is not old:  # reconnected: a new socket to watch
                    poller.unregister(old)
                    poller.register(session.sock, zmq.POLLIN)
            self._answer(session, rng)

    def _answer(self, session: PlayerSession, rng: random.Random) -> None:
        """Act on everything waiting, in order; of several ``GAME_LOGIC`` requests
        waiting, answer only the newest with the current policy: the older ones'
        rounds are over, and answering them would only be late (a client that fell
        behind catches up at once, as the bots do)."""
        waiting = []
        while (msg := session.poll()) is not None:
            waiting.append(msg)
        newest = max((i for i, msg in enumerate(waiting) if msg.kind is Kind.GAME_LOGIC),
                     default=-1)
        for i, msg in enumerate(waiting):
            if msg.kind is Kind.GAME_LOGIC and i < newest:
                continue
            if msg.kind is Kind.GAME_LOGIC:
                request = GameLogicRequest.of(msg)
                assert session.rule is not None
                keep, let_die = POLICIES[self.policy](request, session.rule, session.energy,
                                                      rng)
                if session.decide(request.gen, keep, let_die):
                    with self.lock:
                        self.state.answered += 1
            elif msg.kind is Kind.DECIDED:
                session.energy = msg["energy"]
                with self.lock:
                    kept, refused = self.state.kept + msg["kept"], \
                        self.state.refused + msg["refused"]
                self._changed(energy=session.energy, kept=kept, refused=refused,
                              spent=int(msg.body.get("spent", msg["kept"])),
                              spent_gen=int(msg.body.get("gen", -1)))
            elif msg.kind is Kind.LANDED:
                self._changed(energy=session.energy)
                self.post(Landed(msg.body))

    def _ping(self, session: PlayerSession) -> None:
        """The heartbeat: a ``PING`` (its round trip is the latency); after trouble, a
        reconnection with the token first. ``Rejoin`` when the token is refused."""
        began = time.perf_counter()
        try:
            if self.state.trouble:
                session.reconnect()
            pong = session.ping()
        except HandshakeError as e:
            if self._rekey(session, e):
                raise Rejoin("the server restarted with new keys: joined again as a new "
                             "player") from e
            return
        except RemoteError as e:
            if token_refused(e):
                raise Rejoin("the server no longer knows your session (it restarted, or "
                             "the grace period ended): joined again as a new player") from e
            self._changed(trouble=f"server refused the heartbeat: {e}", latency_ms=None)
            return
        except LifenetError as e:
            self._changed(trouble=f"server not answering: {e}", latency_ms=None)
            return
        standing = {k: int(pong[k]) for k in ("rank", "ranked", "cells", "points")
                    if isinstance(pong.get(k), int)}
        self._changed(latency_ms=(time.perf_counter() - began) * 1000,
                      energy=session.energy, trouble="", standing=standing)

    def _place(self, session: PlayerSession, place: Place) -> None:
        try:
            placed = session.place(place.y, place.x, rle=place.rle, rotate=place.rotate,
                                   flip=place.flip)
        except RemoteError as e:
            self.post(PlaceResult(place, None, e.reason))
            if token_refused(e):  # the next heartbeat finds out and joins again
                self._changed(trouble=f"session refused: {e.reason}")
            return
        except LifenetError as e:  # no answer, a refused handshake: the heartbeat retries
            self.post(PlaceResult(place, None, str(e)))
            self._changed(trouble=f"server not answering: {e}")
            return
        self._changed(energy=session.energy)
        self.post(PlaceResult(place, placed))
