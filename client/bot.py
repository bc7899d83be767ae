"""Headless players: ``lifenet bot --count N --strategy NAME``.

All the bots of one process share one thread and one poller (each bot owns its own
socket, and every socket belongs to that thread), so 200 bots cost one process. Each bot
joins, heartbeats (while requests come, its answers are its heartbeat: they keep its
session and say the generation), answers its newest ``GAME_LOGIC`` request by its
strategy before the deadline (of several waiting, the older ones' rounds are over), and
places patterns from the library when it has the energy: its
first one as soon as it has joined, then by its strategy's chance on each answer, and
surely at its next heartbeat whenever it owns no cell (no request comes then to give it
a chance).

The strategies (``shared.policies.STRATEGIES``):

- ``follow``: never overrides the rule; places a pattern now and then.
- ``defend``: spends energy keeping alive its cells the rule would kill.
- ``random``: places often, and overrides a few random cells both ways.
- ``idle``: joins and heartbeats only (load tests of sessions).
"""

from __future__ import annotations

import functools
import logging
import random
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import zmq

from client.session import PlayerSession
from shared.errors import LifenetError, PeerGone, RemoteError
from shared.keys import Credentials
from shared.library import library
from shared.placement import cost
from shared.policies import STRATEGIES, GameLogicRequest, Policy
from shared.protocol import ErrorCode, Kind, Message

log = logging.getLogger("lifenet.bot")


@dataclass
class Bot:
    session: PlayerSession
    policy: Policy
    place_chance: float
    rng: random.Random
    next_ping: float = 0.0
    asked_at: float = 0.0  # when the last request came (monotonic)
    answered: int = 0
    stale: int = 0     # requests left unanswered: a newer one had come already
    sent: int = 0      # placements asked for
    placed: int = 0    # placements accepted
    refused: int = 0
    stats: dict[str, int] = field(default_factory=dict)
    # Generations, as the server reported them: the latest seen (PONG), the latest this
    # bot was asked about (it owned cells then), the latest a placement of its lands in,
    # and the one it last asked to place in.
    seen_gen: int = -1
    asked_gen: int = -1
    lands_gen: int = -1
    sent_gen: int = -1

    def owns_nothing(self) -> bool:
        """True when this bot has surely no live cell left and no placement on the way.

        The server asks a player about its cells in every generation, so a bot that was
        not asked for a few generations (the slack covers messages still in flight) and
        has nothing landing owns no cell: it would never be asked again, and never place
        again by chance, so it places surely.
        """
        latest = max(self.asked_gen, self.lands_gen, self.sent_gen)
        return self.seen_gen >= 0 and latest < self.seen_gen - 2

    def saw_generation(self, gen: int) -> None:
        """The server's generation now (a ``PONG``). One lower than before means the
        server was restarted from an older snapshot: what this bot knew of generations
        is forgotten (or it would wait for the new count to pass the old one), and it
        counts as asked now, so that its restored cells have a few generations to be."""
        if gen < self.seen_gen:
            self.asked_gen, self.lands_gen, self.sent_gen = gen, -1, -1
        self.seen_gen = gen

    def answer(self, request: GameLogicRequest) -> None:
        """Answer a ``GAME_LOGIC`` request by this bot's policy."""
        assert self.session.rule is not None
        keep, let_die = self.policy(request, self.session.rule, self.session.energy,
                                    self.rng)
        if self.session.decide(request.gen, keep, let_die):
            self.answered += 1

    def maybe_place(self, surely: bool = False) -> None:
        """Place a random library pattern, by chance, or ``surely`` (if it can pay)."""
        if self.place_chance <= 0 or (not surely and self.rng.random() > self.place_chance):
            return
        height, width = self.session.welcome["size"]
        options = [(name, text) for name, text, price in _fitting(height, width)
                   if price <= self.session.energy]
        if not options:
            return
        name, text = self.rng.choice(options)
        y, x = self.rng.randrange(height), self.rng.randrange(width)
        rotate, flip = self.rng.randrange(4), self.rng.random() < 0.5
        # Turned, a pattern may cover fewer or more squares of a small torus.
        price = _price(name, rotate, flip, height, width)
        if price > self.session.energy:
            return
        # Sent without waiting: the PLACED (or the refusal) is counted when it arrives,
        # so one bot's round trip never holds up the others in this thread.
        if not self.session.send(self.session.place_message(y, x, rle=text, rotate=rotate,
                                                            flip=flip)):
            return  # no room on the socket (the server gone, or not reading): nothing spent
        self.session.energy -= price
        self.sent += 1
        self.sent_gen = max(self.seen_gen, 0)


@functools.cache
def _fitting(height: int, width: int) -> list[tuple[str, str, int]]:
    """The library's patterns that fit a world of that size, with their price unturned."""
    return [(name, text, _price(name, 0, False, height, width))
            for name, (text, p) in library().items()
            if p.height <= height and p.width <= width]


@functools.cache
def _price(name: str, rotate: int, flip: bool, height: int, width: int) -> int:
    """What a library pattern costs to place, turned so, in a world of that size."""
    return cost(library()[name][1].oriented(rotate, flip), height, width)


def run_bots(connect: str, count: int, strategy: str, *, name: str = "bot",
             seed: int | None = None, stop: threading.Event | None = None,
             seconds: float | None = None,
             credentials: Credentials | None = None) -> list[Bot]:
    """Run ``count`` bots until ``stop`` is set (or ``seconds`` pass); returns them."""
    stop = stop or threading.Event()
    chosen = STRATEGIES[strategy]
    rng = random.Random(seed)
    context = zmq.Context()
    context.set(zmq.MAX_SOCKETS, count + 64)  # libzmq's default (1023) is too few
    bots: list[Bot] = []
    ready = Readiness()
    pings_due = 0.0  # the earliest heartbeat due

    def play(until: float | None) -> None:
        """Answer, heartbeat and place for every bot joined so far, until ``until``."""
        nonlocal pings_due
        while not stop.is_set() and (until is None or time.monotonic() < until):
            wait_ms = 100 if until is None else (until - time.monotonic()) * 1000
            for bot in ready.poll(max(1, min(100, int(wait_ms)))):
                _drain(bot)
            now = time.monotonic()
            if now < pings_due:
                continue
            for bot in bots:
                if now >= bot.next_ping:
                    heartbeat = bot.session.welcome["heartbeat"]
                    bot.next_ping = now + heartbeat
                    if now - bot.asked_at < heartbeat:
                        continue  # its answers are its heartbeat (and say the generation)
                    bot.session.send(bot.session.ping_message())
                    # Its first pattern at once; later, another whenever it owns nothing
                    # (no requests come then to give it a chance to place).
                    if not bot.sent or bot.owns_nothing():
                        bot.maybe_place(surely=True)
                    _drain(bot)
            pings_due = min((bot.next_ping for bot in bots), default=now + 0.1)

    try:
        for i in range(count):
            session = PlayerSession(connect, f"{name}-{i + 1}", context=context,
                                    credentials=credentials)
            try:
                _join(session, stop, play)
            except BaseException:
                session.close()
                raise
            if not session.token:  # stopped while waiting to join
                session.close()
                break
            bot = Bot(session, chosen.policy, chosen.place_chance,
                      random.Random(rng.random()), seen_gen=session.welcome["generation"])
            bots.append(bot)
            ready.add(session.sock, bot)
            pings_due = 0.0
        log.info("%d %s bots joined", len(bots), strategy)
        play(time.monotonic() + seconds if seconds is not None else None)
        for bot in bots:  # say goodbye, unless the server is already gone
            bot.session.timeout = 0.5
            try:
                bot.session.leave()
            except PeerGone:
                break
            except LifenetError:
                continue
    finally:
        ready.close()
        for bot in bots:
            bot.session.close()
        context.destroy(linger=0)
    return bots


class Readiness:
    """Which bots' sockets have something to read, in time that grows with how many
    have, not with how many bots there are: ``zmq.Poller`` asks every socket each
    call (250 sockets, hundreds of calls a generation), an ``epoll`` of the sockets'
    ``zmq.FD`` wakes for the ones signalled (Linux; elsewhere the ``zmq.Poller``).

    libzmq's ``FD`` signals that the socket's state may have changed, and a send or
    receive can consume the signal: each bot is drained (received from until nothing
    is left, which reads ``EVENTS``) after every send, as ``_drain`` does, so no
    message waits for a signal that was spent.
    """

    def __init__(self) -> None:
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._poller = zmq.Poller()
        self._by_fd: dict[int, Bot] = {}
        self._by_socket: dict[zmq.Socket[bytes], Bot] = {}

    def add(self, sock: zmq.Socket[bytes], bot: Bot) -> None:
        if self._epoll is not None:
            fd = int(sock.getsockopt(zmq.FD))
            self._by_fd[fd] = bot
            self._epoll.register(fd, select.EPOLLIN)
        else:
            self._by_socket[sock] = bot
            self._poller.register(sock, zmq.POLLIN)

    def poll(self, timeout_ms: int) -> list[Bot]:
        """The bots that may have messages (some may have none: a spent signal)."""
        if self._epoll is not None:
            return [self._by_fd[fd] for fd, _ in self._epoll.poll(timeout_ms / 1000)]
        return [self._by_socket[sock] for sock, _ in self._poller.poll(timeout_ms)]

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()


JOIN_PATIENCE = 60.0  # seconds a bot keeps asking a busy server to let it join


def _join(session: PlayerSession, stop: threading.Event,
          play: Callable[[float], None]) -> None:
    """Join, asking again with a growing pause while the server says it is busy (an
    address opening sessions faster than it allows); the bots already in play on
    meanwhile, so their heartbeats do not stop. Any other refusal is final."""
    pause = 0.25
    gives_up = time.monotonic() + JOIN_PATIENCE
    while True:
        try:
            session.join()
            return
        except RemoteError as e:
            if e.code != ErrorCode.BUSY or time.monotonic() + pause > gives_up:
                raise
            log.info("%s: %s; asking again in %.2g s", session.name, e.reason, pause)
        play(time.monotonic() + pause)
        if stop.is_set():
            return
        pause = min(2 * pause, 4.0)


def _drain(bot: Bot) -> None:
    """Read everything waiting for ``bot`` and act on it, in order; of several
    requests waiting, only the newest is answered: the older ones' rounds are over (a
    bot that fell behind catches up at once, instead of answering late, round after
    round, what the server no longer waits for)."""
    while waiting := _waiting(bot):
        _act(bot, waiting)


def _waiting(bot: Bot) -> list[Message]:
    """Every message waiting for ``bot`` now. Read again after acting on them: an
    answer sent may consume the edge-triggered ``zmq.FD`` signal of a message that
    came meanwhile, and the drain must end on a read that finds nothing."""
    waiting = []
    while (msg := bot.session.poll()) is not None:
        waiting.append(msg)
    return waiting


def _act(bot: Bot, waiting: list[Message]) -> None:
    """Act on ``waiting`` in order, answering only the newest request."""
    newest = max((i for i, msg in enumerate(waiting) if msg.kind is Kind.GAME_LOGIC),
                 default=-1)
    for i, msg in enumerate(waiting):
        if msg.kind is Kind.GAME_LOGIC:
            gen = msg["gen"]
            bot.saw_generation(gen)
            bot.asked_gen = max(bot.asked_gen, gen)
            if i < newest:
                bot.stale += 1
                continue
            request = GameLogicRequest.of(msg)
            bot.asked_at = time.monotonic()
            bot.answer(request)
            bot.maybe_place()
        elif msg.kind is Kind.DECIDED:
            bot.stats["kept"] = bot.stats.get("kept", 0) + msg["kept"]
        elif msg.kind is Kind.PLACED:
            bot.placed += 1
            bot.lands_gen = max(bot.lands_gen, msg["generation"])
        elif msg.kind is Kind.PONG:
            bot.saw_generation(msg["generation"])
        elif msg.kind is Kind.ERROR:
            if msg.body.get("about") == "place":
                bot.refused += 1
            log.debug("%s: server error %s", bot.session.name, msg["reason"])
