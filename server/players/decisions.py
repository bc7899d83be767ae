"""The decision round of a generation: ``game_logic`` requests out, answers checked.

The book's ``game_logic`` is a function every cell calls; in lifenet the players who own
cells are asked too, as real I/O, beside the workers. One ``DecisionRound`` per server,
driven by the generation (``server.generation.Engine.step``), in the main thread:

1. ``ask``: before the fan-out, every connected player that owns cells gets one
   ``GAME_LOGIC`` message with its cells of the frozen generation (positions and
   live-neighbour counts), and the round is opened in the registry, where the lobby
   posts the answers (``DECIDE``) as they come. Not a player with ``MAX_UNREAD``
   requests out whose answers the lobby has not read (``PlayerRegistry.askable``).
2. ``collect``: after the workers' tiles are in, wait until every asked player answered
   or the decision window closed (whichever is first), then close the round: the valid
   decisions, as writes for the next generation's ``LockingGrid``; the generation's
   energy is regained as the round closes (keep-alives paid and energy regained at once).
3. ``tell``: once the generation is made, each player's news is ready: what was
   applied (``DECIDED``) and how its placements landed (``LANDED``), with its energy as
   it stands once the generation is made (after the regeneration), the number a refusal
   would say. While the server runs behind its tick (``fold``: the next generation
   starts at once), the news rides on the player's next ``GAME_LOGIC``: a player hears
   one message a generation, not three, and libzmq's work (what a thousand players
   cost the server) is per message. Players not asked next get theirs alone then, and
   ``flush`` sends all of it whenever the server will idle before its next generation.

Inside a live shield (``server.players.shields``) a cell's neighbours are counted as the
shield computes them, within its zone alone, so the verdicts players are told agree with
what the generation does there. The engine reads the live shields once per step
(``PlayerRegistry.step_shields``) and hands that same list to ``ask``, to ``collect``
and to its own step of the zones: a shield the lobby drops meanwhile (an eviction) is
dropped for the next step, never half-way through this one.

A player that does not answer in time loses nothing but its say: the rule decides.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from server.players.board import Board
from server.players.lobby import Idle
from server.players.registry import DecisionResult, Landed, PlayerRegistry, Request, Write
from server.players.shields import Shield, Zone, live_neighbours, runs_in_zones
from shared import protocol
from shared.grid import NEUTRAL_CODE, Codes, as_payload
from shared.life import OFFSETS
from shared.protocol import Kind, Message
from shared.rules import Rule

log = logging.getLogger("lifenet.game")

Send = Callable[[bytes, Message], None]  # to one peer of the player endpoint, any thread
# Many, each to its peer, at once; then (if given) calls back once they have left;
# False: dropped whole (the lobby's outbox was full).
SendAll = Callable[[list[tuple[bytes, Message]], Callable[[], None] | None], bool]
HANDOVER_WINDOWS = 2  # a round closes at most this many windows after it opened
GATHER_SHARE = 48  # gathers for fewer than 1/48 of the world's cells, else a whole pass


def counts_at(codes: Codes, ys: npt.NDArray[np.int64],
              xs: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """Live neighbours of the cells ``(ys[i], xs[i])`` on the torus: eight gathers of
    the players' cells, not a pass over the whole world (16 M cells at 4096x4096)."""
    h, w = codes.shape
    if len(ys) * GATHER_SHARE > codes.size:  # many: one pass over the world is cheaper
        counted: npt.NDArray[np.uint8] = neighbour_counts(codes)[ys, xs]
        return counted
    flat = codes.ravel()
    rows = {dy: ((ys + dy) % h) * w for dy in (-1, 0, 1)}
    cols = {dx: (xs + dx) % w for dx in (-1, 0, 1)}
    total = np.zeros(len(ys), dtype=np.uint8)
    for dy, dx in OFFSETS:
        total += flat.take(rows[dy] + cols[dx]) != 0
    return total


def zone_counts_at(codes: Codes, zones: list[Zone], cells: npt.NDArray[np.int64],
                   counts: npt.NDArray[np.uint8]) -> None:
    """Overwrite ``counts`` of those ``cells`` (flat indices) that lie in one of
    ``zones`` with their neighbours counted inside their zone alone (a shield's zone
    lives as if alone; an axis it covers whole wraps, as ``padded_zone`` says). Zones
    never overlap: each cell has one zone at most.

    Found row by row (``shields.runs_in_zones``: the cells of each zone row by binary
    search), then the eight neighbours of just those cells, each counted when it is
    live and inside the same zone: two hundred zones cost a few array passes over the
    cells in them, not a canvas and a slice a zone."""
    if not zones or not len(cells):
        return
    height, width = codes.shape
    table = np.array(zones, dtype=np.int64).reshape(-1, 4)
    at, zone = runs_in_zones(table, cells, height, width)
    if not len(at):
        return
    flat = codes.ravel()
    ys, xs = np.divmod(cells[at], width)
    zy, zx, zh, zw = table[zone, 0], table[zone, 1], table[zone, 2], table[zone, 3]
    ly, lx = (ys - zy) % height, (xs - zx) % width  # the cells' places in their zones
    wrap_y, wrap_x = zh == height, zw == width
    total = np.zeros(len(at), dtype=np.uint8)
    for dy, dx in OFFSETS:
        ny, nx = ly + dy, lx + dx
        inside = (wrap_y | ((ny >= 0) & (ny < zh))) & (wrap_x | ((nx >= 0) & (nx < zw)))
        total += inside & (flat.take(((zy + ny) % height) * width + (zx + nx) % width) != 0)
    counts[at] = total


def neighbour_counts(codes: Codes) -> Codes:
    """Live neighbours of every cell on the torus (the reference for ``counts_at``)."""
    return live_neighbours(np.pad((codes != 0).view(np.uint8), 1, mode="wrap"))


@dataclass
class Decided:
    """A closed round: the writes its valid decisions make, and each player's result."""

    writes: list[Write] = field(default_factory=list)
    results: dict[int, DecisionResult] = field(default_factory=dict)


@dataclass
class News:
    """One player's news of a generation, waiting for its next request: what its
    answers got (a ``DECIDED`` body) and how its placements landed (``LANDED`` bodies).
    ``identity``: the connection it goes to when sent alone (a request carries it to
    the player's connection of the moment)."""

    identity: bytes
    decided: dict[str, Any] | None = None
    landed: list[dict[str, Any]] = field(default_factory=list)

    def fields(self) -> dict[str, Any]:
        """What a ``GAME_LOGIC`` carries of it (``MAX_NEWS`` landings at most)."""
        carried: dict[str, Any] = {}
        if self.decided is not None:
            carried["decided"] = self.decided
        if self.landed:
            carried["landed"] = self.landed
        return carried

    def messages(self) -> list[Message]:
        """The news as messages of their own, in order."""
        alone = [Message(Kind.DECIDED, self.decided)] if self.decided is not None else []
        return alone + [Message(Kind.LANDED, body) for body in self.landed]


class DecisionRound:
    """Asks the players about their cells and checks what they answer; main thread."""

    def __init__(self, registry: PlayerRegistry, rule: Rule, window: float,
                 send: Send, send_all: SendAll | None = None) -> None:
        self.registry = registry
        self.rule = rule
        self.window = window
        self.send = send
        self.send_all: SendAll = send_all or self._one_by_one
        self._deadline = 0.0
        self._asked: dict[int, bytes] = {}
        self._news: dict[int, News] = {}  # by player: told, not yet sent
        # True: the next ``ask`` follows at once, the news waits for it (the server's
        # loop says); False: ``tell`` sends it now.
        self.fold = False
        # The lobby's reading (``lobby.Idle``), which ``catch_up`` waits for; None: the
        # answers are posted some other way (tests), nothing to wait for.
        self.idle: Idle | None = None
        self._closed_at = 0.0  # when the last round closed (monotonic)

    def _one_by_one(self, messages: list[tuple[bytes, Message]],
                    then: Callable[[], None] | None = None) -> bool:
        for identity, msg in messages:
            self.send(identity, msg)
        if then is not None:
            then()
        return True

    def catch_up(self) -> bool:
        """Before a round is asked: wait until the lobby has read everything that came
        before the last round closed, one decision window at most; whether it had.

        A lobby behind on its reading (a thousand answers a generation, on a machine
        whose cores the players' clients share) reads the answers of a new round only
        after the old ones, and every one of them comes late: rounds close with none,
        nobody is waited for, and the generations come all the faster, which leaves
        the lobby less of the machine still. Waiting here gives it the time instead."""
        if self.idle is None or not self._closed_at:
            return True
        return self.idle.wait_since(self._closed_at, self.window)

    def ask(self, gen: int, codes: Codes, board: Board,
            shields: list[Shield] | None = None) -> int:
        """Send generation ``gen``'s requests (``board``: its live cells per owner;
        ``shields``: the step's live shields, None: those live now); returns how many
        players were asked."""
        if shields is None:
            shields = self.registry.live_shields(gen)
        players = self.registry.connected()
        # The players' window counts from when their requests have left (``sent``);
        # this is the latest the round may close, however slow the sending.
        self._deadline = time.monotonic() + HANDOVER_WINDOWS * self.window
        self._refresh(self._news)  # held since the last tell: it leaves now
        counts = board.counts
        owning = self.registry.askable([p for p in players
                                        if p.code < len(counts) and counts[p.code]])
        requests: dict[int, Request] = {}
        messages: list[tuple[bytes, Message]] = []
        self._asked = {}
        if owning:
            survive = self.rule.table[9:]
            # One sort groups every player's cells, instead of one scan per player,
            # and every player's part is a slice of the same arrays.
            if board.codes is not None and (codes is board.codes
                                            or codes.base is board.codes):
                cells, owners = board.owned, board.owners  # found when it was counted
            else:
                cells = np.flatnonzero(codes.ravel() > NEUTRAL_CODE)
                owners = codes.ravel()[cells]
            # Counted in the world's order (the cells ascending: the gathers read the
            # world front to back), then grouped by owner.
            ys_all, xs_all = np.divmod(cells, codes.shape[1])
            n_all = counts_at(codes, ys_all, xs_all)
            zone_counts_at(codes, [shield.zone for shield in shields], cells, n_all)
            order = np.argsort(owners, kind="stable")
            owners = owners[order].astype(np.int64)
            ys_all, xs_all, n_all = ys_all[order], xs_all[order], n_all[order]
            lives_all = survive[n_all]
            records = np.empty(len(n_all), dtype=protocol.GAME_LOGIC_CELL)
            records["y"], records["x"], records["n"] = ys_all, xs_all, n_all
            wanted = np.array([p.code for p in owning], dtype=np.int64)
            starts = np.searchsorted(owners, wanted)
            ends = np.searchsorted(owners, wanted + 1)
            # Each player's payload is a slice of one buffer (no copy, no array each).
            payload, size = as_payload(records), protocol.GAME_LOGIC_CELL.itemsize
            news, window_ms, asked = self._news, self.window * 1000, self._asked
            for p, lo, hi in zip(owning, starts.tolist(), ends.tolist(), strict=True):
                requests[p.id] = Request(ys_all[lo:hi], xs_all[lo:hi], lives_all[lo:hi])
                body = {"gen": gen, "count": hi - lo, "deadline_ms": window_ms}
                folded = news.pop(p.id, None) if news else None
                if folded is not None:
                    if len(folded.landed) > protocol.MAX_NEWS:
                        # More than a request carries: all of it alone, first.
                        messages.extend((p.identity, alone) for alone in folded.messages())
                    else:
                        body.update(folded.fields())
                messages.append((p.identity, Message(
                    Kind.GAME_LOGIC, body, [payload[size * lo:size * hi]])))
                asked[p.id] = p.identity
        # Open the round before the first request leaves: a quick answer must find it.
        self.registry.open_requests(gen, requests, self._deadline)
        self.flush(refresh=False)  # the news of players not asked now (refreshed above)
        if not self.send_all(messages, functools.partial(self.registry.sent, gen,
                                                         self.window)):
            self.registry.unsent(gen)  # dropped: nobody can answer, nothing to wait for
        return len(requests)

    def _refresh(self, news: dict[int, News]) -> None:
        """Say each held report's energy as it stands now, when it leaves: a PONG or
        PLACED the lobby answered since ``tell`` said a lower one already, and a client
        keeps the last it hears."""
        if not news:
            return
        energies = self.registry.energies()
        for pid, told in news.items():
            energy = energies.get(pid)
            if energy is None:
                continue
            if told.decided is not None:
                told.decided["energy"] = energy
            for body in told.landed:
                body["energy"] = energy

    def flush(self, refresh: bool = True) -> None:
        """Send every player's news not sent yet, each report a message of its own (the
        server calls this when it will idle before the next ``ask``); ``refresh``: with
        the energy as it stands now (it was held since a ``tell``)."""
        news, self._news = self._news, {}
        if refresh:
            self._refresh(news)
        self._send_alone(news.values())

    def _send_alone(self, news: Iterable[News]) -> None:
        """Each report of ``news`` as a message of its own, to its connection."""
        self.send_all([(told.identity, msg) for told in news for msg in told.messages()],
                      None)

    def collect(self, gen: int, shields: list[Shield] | None = None) -> Decided:
        """Wait for the answers (until all came or the window closed), close the round
        (checked against ``shields``, the ones the round was asked with; None: those
        live now) and regain the generation's energy."""
        if self._asked:
            self.registry.wait_decisions()
        writes, results = self.registry.close_decisions(regenerate=True, shields=shields)
        self._closed_at = time.monotonic()
        if self.registry.unanswered:
            log.debug("generation %d: %d asked players did not answer in time; the rule "
                      "decided for their cells", gen, self.registry.unanswered)
        return Decided(writes, results)

    def tell(self, gen: int, decided: Decided, landed: list[Landed]) -> None:
        """Tell each asked player what was applied, and each placer what landed; the
        energy of each is read now, once generation ``gen + 1`` is made (keep-alives
        paid, placements refunded, energy regenerated): what ``PONG`` and a refused
        ``PLACE`` say next. ``spent`` is what the keep-alives cost, ``regen`` what a
        generation gives back (so a client can show the drain)."""
        energies = self.registry.energies()
        regen = self.registry.config.energy_regen
        self.flush()  # news held and not yet sent goes before this generation's
        for pid, result in decided.results.items():
            identity = self._asked.get(pid)
            if identity is not None:
                self._news[pid] = News(identity, dict(
                    gen=gen, kept=result.kept, died=result.died, refused=result.refused,
                    energy=energies.get(pid, result.energy), spent=result.kept,
                    regen=regen))
        for done in landed:
            # What did not land (cells occupied at the boundary) is told, not only refunded.
            if done.identity:
                told = self._news.get(done.player)
                if told is None or told.identity != done.identity:
                    self.flush_one(done.player)
                    told = self._news[done.player] = News(done.identity)
                told.landed.append(dict(
                    generation=gen + 1, cells=done.cells, placed=done.placed,
                    occupied=done.occupied, energy=energies.get(done.player, done.energy)))
        if not self.fold:
            self.flush(refresh=False)  # its energy was read just now

    def flush_one(self, pid: int) -> None:
        """Send player ``pid``'s news now, if it has any."""
        told = self._news.pop(pid, None)
        if told is not None:
            self._send_alone([told])
