"""One tab's player: a ``PlayerSession`` in a thread of its own (``PlayerLink``).

A tab that joins gets a ``PlayerLink``: a thread that owns its session's DEALER socket
(pyzmq's rule: a socket belongs to one thread), joins, answers every ``GAME_LOGIC``
request at once with the tab's policy (``shared.policies``, as the terminal client
does), pings once a heartbeat (energy, rank, latency) and runs the placements the tab
asks for. A request waits for its reply in this thread only, so a slow answer to one
tab never holds up another tab or the world's frames.

The tab hears of it through ``post`` (called from this thread with small dicts: the
gateway sends them as JSON text). A tab whose WebSocket drops is *detached*, not
ended: its link goes on answering for ``linger`` seconds, and a tab that comes back
with the session's token is attached to it again (same player, same cells, nothing
asked of the server). A link detached longer than that leaves the server, which keeps
the cells for its grace period; the token still rejoins them then.

A game outlives a connection (as ``client.network``): when the server stops answering,
the link reconnects with the token at every heartbeat, and when the server no longer
knows the token it joins again under the same name and says why.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from client.session import PlayerSession
from shared.errors import HandshakeError, LifenetError, RemoteError
from shared.keys import Credentials
from shared.policies import POLICIES, GameLogicRequest
from shared.protocol import ErrorCode, Kind

Post = Callable[[dict[str, Any]], None]
LINGER = 30.0  # seconds a detached link keeps playing, waiting for its tab to come back
BUSY_PATIENCE = 15.0  # seconds a join is asked again while the server answers BUSY


@dataclass(frozen=True)
class Place:
    """A placement a tab asked for (checked by the gateway: a library pattern)."""

    y: int
    x: int
    pattern: str
    rle: str
    rotate: int
    flip: bool


def token_refused(error: RemoteError) -> bool:
    """Whether the server refused the session's token (restarted, or grace over)."""
    return error.code == ErrorCode.NOT_ALLOWED and "token" in error.reason


class PlayerLink(threading.Thread):
    """A tab's player session, run in its own thread (see the module doc)."""

    def __init__(self, connect: str, name: str, token: str | None, policy: str,
                 credentials: Credentials | None, post: Post, *, timeout: float = 5.0,
                 linger: float = LINGER, context: zmq.Context[Any] | None = None) -> None:
        super().__init__(name=f"web-player-{name}", daemon=True)
        self.connect = connect
        self.name = name
        self.token = token or ""
        self.policy = policy            # set by the event loop: one str assignment
        self.credentials = credentials  # the link's own key: the session is bound to it
        self.timeout = timeout
        self.linger = linger
        self.context = context  # shared by the gateway's links (one I/O thread for all)
        self._post: Post | None = post
        self._lock = threading.Lock()
        self.detached_at: float | None = None
        self.commands: queue.Queue[Place | None] = queue.Queue(maxsize=16)
        self.welcome: dict[str, Any] = {}
        self.standing: dict[str, Any] = {}
        self.player = 0
        self.address = ""  # the tab's address (the gateway's cap on players an address)
        self.trouble = ""
        self.done = threading.Event()   # set when the thread has ended
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    # -- the event loop's side ---------------------------------------------------------

    def post(self, event: dict[str, Any]) -> None:
        with self._lock:
            post = self._post
        if post is not None:
            post(event)

    def attach(self, post: Post) -> None:
        """A tab (back) on this session: its events go there; it hears who it is."""
        with self._lock:
            self._post = post
            self.detached_at = None
        if self.welcome:
            post({"type": "joined", **self.welcome, "rejoined": True, "why": ""})
            if self.standing:
                post({"type": "standing", **self.standing})

    def detach(self) -> None:
        """The tab went away: keep playing for ``linger`` seconds, then leave."""
        with self._lock:
            self._post = None
            self.detached_at = time.monotonic()
        self._wake()

    def place(self, place: Place) -> bool:
        """Queue a placement; ``False`` when too many are waiting already."""
        try:
            self.commands.put_nowait(place)
        except queue.Full:
            return False
        self._wake()
        return True

    def leave(self) -> None:
        """Leave the server now (the tab said so, or the gateway stops)."""
        self._stop.set()
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (it is awake anyway) or closed
            os.write(self._wake_w, b"!")

    # -- the thread ----------------------------------------------------------------------

    def run(self) -> None:
        context = self.context or zmq.Context.instance()
        try:
            self._run(context)
        except Exception as e:  # never a silent death: the tab would wait forever
            self.post({"type": "failed", "reason": f"{type(e).__name__}: {e}"})
            raise
        finally:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self.done.set()

    def _run(self, context: zmq.Context[Any]) -> None:
        session = PlayerSession(self.connect, self.name, timeout=self.timeout,
                                context=context, credentials=self.credentials)
        try:
            try:
                why = self._first_join(session)
            except LifenetError as e:
                self.post({"type": "failed", "reason": f"cannot join: {e}"})
                return
            self._joined(session, why)
            self._loop(session)
            session.timeout = 1.0  # say goodbye, but never hang on a server that is gone
            with contextlib.suppress(LifenetError):
                session.leave()
            self.post({"type": "left"})
        finally:
            session.close()

    def _first_join(self, session: PlayerSession) -> str:
        """Join with the token given, or as a new player when the server no longer
        knows it (an expired token is no reason not to play); the why of a new one."""
        try:
            self._join(session, self.token or None)
            return ""
        except RemoteError as e:
            if not (self.token and token_refused(e)):
                raise
            self._join(session, None)
            return f"your session token was refused ({e.reason}): joined as a new player"

    def _join(self, session: PlayerSession, token: str | None) -> None:
        """``JOIN``, asked again while the server says it is busy (every tab joins from
        the gateway's one address, and the server opens a few joins a second to an
        address), for ``BUSY_PATIENCE`` seconds at most."""
        deadline = time.monotonic() + BUSY_PATIENCE
        while True:
            try:
                session.join(token)
                return
            except RemoteError as e:
                if e.code != ErrorCode.BUSY or time.monotonic() > deadline:
                    raise
            if self._stop.wait(0.5):
                raise RemoteError(ErrorCode.BUSY, "left while waiting to join")

    def _joined(self, session: PlayerSession, why: str) -> None:
        self.token = session.token
        self.player = session.player
        keep = ("player", "code", "token", "name", "size", "rule", "energy", "energy_cap",
                "energy_regen", "heartbeat", "generation", "rejoined", "round", "protect",
                "goal", "grace")
        self.welcome = {k: session.welcome[k] for k in keep if k in session.welcome}
        self.standing = {"energy": session.energy, "policy": self.policy}
        self.post({"type": "joined", **self.welcome, "why": why})

    def _loop(self, session: PlayerSession) -> None:
        rng = random.Random()
        heartbeat = float(session.welcome["heartbeat"])
        next_ping = time.monotonic() + heartbeat
        while not self._stop.is_set():
            poller = zmq.Poller()
            poller.register(session.sock, zmq.POLLIN)
            poller.register(self._wake_r, zmq.POLLIN)
            wait = max(0.0, next_ping - time.monotonic())
            ready = dict(poller.poll(int(wait * 1000) + 1))
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError, OSError):
                    os.read(self._wake_r, 4096)
            self._answer(session, rng)  # first: the requests have a deadline
            if self._expired():
                return
            while not self._stop.is_set():
                try:
                    place = self.commands.get_nowait()
                except queue.Empty:
                    break
                if place is not None:
                    self._place(session, place)
            if time.monotonic() >= next_ping:
                next_ping = time.monotonic() + heartbeat
                self._ping(session)

    def _expired(self) -> bool:
        with self._lock:
            since = self.detached_at
        return since is not None and time.monotonic() - since > self.linger

    def _answer(self, session: PlayerSession, rng: random.Random) -> None:
        """Answer every waiting ``GAME_LOGIC`` request with the tab's policy."""
        while (msg := session.poll()) is not None:
            if msg.kind is Kind.GAME_LOGIC:
                request = GameLogicRequest.of(msg)
                assert session.rule is not None
                policy = POLICIES.get(self.policy, POLICIES["follow"])
                keep, let_die = policy(request, session.rule, session.energy, rng)
                session.decide(request.gen, keep, let_die)
            elif msg.kind is Kind.DECIDED:
                self._standing(energy=msg["energy"],
                               spent=int(msg.body.get("spent", msg["kept"])),
                               regen=int(msg.body.get("regen", 0)))
            elif msg.kind is Kind.LANDED:
                self.post({"type": "landed", **msg.body})
                self._standing(energy=session.energy)

    def _standing(self, **updates: Any) -> None:
        self.standing.update(updates, policy=self.policy, trouble=self.trouble)
        self.post({"type": "standing", **self.standing})

    def _ping(self, session: PlayerSession) -> None:
        """The heartbeat (its round trip is the latency); after trouble, a
        reconnection with the token first; a fresh join when the token is refused."""
        began = time.perf_counter()
        try:
            if self.trouble:
                session.reconnect()
            pong = session.ping()
        except RemoteError as e:
            if token_refused(e):
                self._rejoin(session, "the server no longer knows your session (it "
                             "restarted, or the grace period ended): joined again as a "
                             "new player")
                return
            self.trouble = f"the server refused the heartbeat: {e}"
            self._standing()
            return
        except (HandshakeError, LifenetError) as e:
            self.trouble = f"the server is not answering: {e}"
            self._standing(latency_ms=None)
            return
        self.trouble = ""
        self._standing(energy=session.energy,
                       latency_ms=round((time.perf_counter() - began) * 1000, 1),
                       **{k: int(pong[k]) for k in ("rank", "ranked", "cells", "points")
                          if isinstance(pong.get(k), int)})

    def _rejoin(self, session: PlayerSession, why: str) -> None:
        try:
            session.reconnect(fresh=True)
        except LifenetError as e:
            self.trouble = f"the server is not answering: {e}"
            self._standing()
            return
        self.trouble = ""
        self._joined(session, why)

    def _place(self, session: PlayerSession, place: Place) -> None:
        what = {"pattern": place.pattern, "y": place.y, "x": place.x,
                "rotate": place.rotate, "flip": place.flip}
        if self.trouble:
            self.post({"type": "refused", **what,
                       "reason": f"not placed: {self.trouble}"})
            return
        try:
            placed = session.place(place.y, place.x, rle=place.rle, rotate=place.rotate,
                                   flip=place.flip)
        except RemoteError as e:
            self.post({"type": "refused", **what, "reason": e.reason})
            return
        except LifenetError as e:  # no answer: the heartbeat reconnects
            self.trouble = f"the server is not answering: {e}"
            self.post({"type": "refused", **what, "reason": f"not placed: {e}"})
            return
        self.post({"type": "placed", **what, **placed})
        self._standing(energy=session.energy)
