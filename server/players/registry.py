"""The players: sessions, energy, queued placements and posted decisions.

The ``PlayerRegistry`` is shared by two threads: the lobby (which owns the player
socket and answers requests) and the main thread (which owns the world). Everything
in it is guarded by one lock and every method is short, so neither thread waits on the
other for long. The registry never touches the world: the lobby queues placements and
decisions here, and the generation (``server.generation``) takes them at the boundary
and writes them into the next generation's ``LockingGrid``.

Rules of the game (the README's "Playing", and ``docs/protocol.md``):

- A player joins with a name and gets an id (1..``--max-players``, at most 65 534), a
  colour (the cell code ``player_code(id)``) and a secret session token. Every later
  request carries the token; a request whose token is not that player's is refused.
  Reconnecting with the token within the grace period gives back the same player.
- On a server with keys, a session is bound to the CURVE key it joined with: the token
  is refused from any other key (a stolen token alone is worth nothing), a rejoin too.
- A player silent for ``liveness`` heartbeats is disconnected: its cells stay, it gets
  no more ``game_logic`` requests. After ``grace`` seconds its cells become neutral and
  its id can be given to a newcomer.
- A player that leaves ``MISSED_ROUNDS`` decision rounds in a row unanswered is no
  longer waited for (its cells follow the rule) until it answers again: one silent
  player does not cut everyone's generation rate.
- A player has at most ``MAX_UNREAD`` requests whose answers the lobby has not read
  (``askable``): with that many out, it is not asked again until an answer to one of
  them is read (in time or late), or the lobby has read everything that came in the
  ``UNREAD_EXPIRY`` seconds after the last was sent (lost on the way). What the lobby has
  still to read is so bounded by the players, not by how many generations the server
  makes meanwhile: a server that makes generations faster than its lobby reads their
  answers would otherwise fall further behind every generation (measured: answers
  read 30 s after their round, with a thousand bots on a slow machine).
- Energy regenerates by ``regen`` every generation up to ``cap``. Placing a cell costs 1
  (reserved when the placement is accepted, refunded for cells found occupied at the
  boundary: ``shared.placement``); keeping alive a cell the rule would kill costs 1;
  letting a cell die is free.
- A fresh placement is shielded for a few generations (``server.players.shields``, whose
  ``Shields`` this lock guards) when it is compact and lands where no other player's
  cell is: a placement touching another player's live shield is refused, and so are
  decisions on cells inside it.
- With rounds (``server.players.rounds``), each player's points for the round in
  progress are kept here, with the player: they go with it when its id is freed.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from server.players.shields import (
    Index,
    Shield,
    Shields,
    Zone,
    ZoneTable,
    foreign_mask,
    zone_table,
)
from shared.errors import Busy, LateAnswer, NotAllowed
from shared.grid import MAX_PLAYER, Codes, player_code
from shared.placement import Cells
from shared.ratelimit import TokenBucket


@dataclass
class Player:
    id: int
    name: str
    token: str
    identity: bytes
    energy: int
    last_seen: float
    connected: bool = True
    disconnected_at: float | None = None
    key: bytes | None = None  # the CURVE key the session is bound to (None: no keys)
    missed: int = 0  # decision rounds left unanswered in a row
    unread: list[int] = field(default_factory=list)  # generations asked, no answer read
    asked_at: float = 0.0  # when it was last asked (monotonic)
    address: str = ""  # where it joined from (its connection's peer address)
    places: TokenBucket | None = None  # its placements' rate limit
    points: int = 0  # live cells summed over the round's generations so far (rounds)

    @property
    def code(self) -> int:
        return player_code(self.id)


MISSED_ROUNDS = 3  # rounds in a row a player may leave unanswered and still be waited for
MAX_UNREAD = MISSED_ROUNDS  # requests a player may have out with no answer read
UNREAD_EXPIRY = 1.0  # seconds after which they are forgotten (requests lost on the way)
UNREAD_GIVE_UP = 10 * UNREAD_EXPIRY  # ... even if the lobby was never idle since


@dataclass
class Placement:
    """A placement waiting for the boundary: its cells, and the energy reserved."""

    player: int
    cells: Cells
    reserved: int
    code: int = 0  # the placer's cell code, filled in when it is taken to land
    zone: Zone | None = None  # what its shield would cover (None: it gets none)

    @property
    def ys(self) -> npt.NDArray[np.int64]:
        return self.cells[:, 0]

    @property
    def xs(self) -> npt.NDArray[np.int64]:
        return self.cells[:, 1]


@dataclass
class Landed:
    """How one placement landed: ``placed`` of its ``cells`` filled, the rest occupied
    (and refunded); ``energy`` is the placer's after the refund."""

    player: int
    identity: bytes
    cells: int
    placed: int
    energy: int

    @property
    def occupied(self) -> int:
        return self.cells - self.placed


@dataclass
class Request:
    """The ``game_logic`` request a player got for one generation."""

    ys: npt.NDArray[np.int64]
    xs: npt.NDArray[np.int64]
    survives: npt.NDArray[np.bool_]  # the rule's verdict for each of the player's cells


@dataclass
class Decision:
    keep: list[int]
    let_die: list[int]


@dataclass
class RegistryConfig:
    energy_cap: int = 200
    energy_regen: int = 5
    grace: float = 15.0
    heartbeat: float = 1.0
    liveness: int = 3
    per_address: int = 32       # sessions one address may hold (those in their grace too)
    joins_per_second: float = 2.0  # new sessions one address may open (burst: per_address)
    places_per_second: float = 10.0  # placements a player may ask for (burst: twice)
    max_players: int = 4096     # sessions at once (ids 1..max_players), grace included


@dataclass
class DecisionResult:
    """What one player's answer got: cells kept alive, let die, refused; its energy
    after paying for them."""

    kept: int = 0
    died: int = 0
    refused: int = 0
    energy: int = 0


@dataclass
class Write:
    """Cells of the next generation to set to one code (a player's decisions)."""

    ys: npt.NDArray[np.int64]
    xs: npt.NDArray[np.int64]
    code: int


def _outside(placement: Placement, blocked: npt.NDArray[np.bool_] | None
             ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The cells of ``placement`` that ``blocked`` (other players' shields) leaves."""
    if blocked is None or not blocked.any():
        return placement.ys, placement.xs
    return placement.ys[~blocked], placement.xs[~blocked]


class PlayerRegistry:
    """Every player, guarded by one lock; see the module docstring for the rules."""

    def __init__(self, config: RegistryConfig | None = None,
                 shields: Shields | None = None) -> None:
        self.config = config or RegistryConfig()
        self.shields = shields or Shields(1, 1)  # without a world: no shields
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.players: dict[int, Player] = {}
        self.placements: list[Placement] = []
        self.requests: dict[int, Request] = {}  # for the generation being decided
        self.request_gen: int | None = None
        self.decisions: dict[int, Decision] = {}
        # The awaited players (``awaited``) of the open round that have not answered:
        # a round is over when it is empty, known at once (not by a scan of a thousand
        # players at each of a thousand answers).
        self.waiting: set[int] = set()
        self.unanswered = 0  # asked players that did not answer the last round
        # Since the start: players asked, and answers that came in time (what a load
        # test reads to know its players kept up, not only the server).
        self.asked_total = 0
        self.answered_total = 0
        self.held_total = 0  # players not asked: their earlier answers not read yet
        self.clock: Callable[[], float] = time.monotonic  # when players were asked
        # Up to when the lobby has read everything that came (``lobby.Idle``, the
        # server sets it); without a lobby, now.
        self.read_at: Callable[[], float] = lambda: self.clock()
        self._deadline = 0.0  # the open round's, as the players were told
        # The last closed round: its generation, deadline and the players asked.
        self._closed: tuple[int | None, float, set[int]] = (None, 0.0, set())
        self.landing = 1  # the generation queued placements land in (main thread sets it)
        self.owned: Callable[[int], int] = lambda player: 0  # live cells a player owns now
        self.evicted = 0
        self._joins: OrderedDict[str, TokenBucket] = OrderedDict()  # by address

    # -- sessions (lobby thread) -------------------------------------------------------

    def join(self, identity: bytes, name: str, token: str | None,
             key: bytes | None = None, address: str = "") -> tuple[Player, bool]:
        """A new player (bound to ``key``), or the one whose token this is
        (``rejoined`` True), if ``key`` is the one it is bound to.

        A new session is refused to a connection that already has one, and to an
        address that holds ``per_address`` sessions or opens them faster than
        ``joins_per_second``. A full server makes room by evicting an idle player that
        owns no cell; otherwise it is full.
        """
        now = time.monotonic()
        with self.lock:
            if token is not None:
                for p in self.players.values():
                    if secrets.compare_digest(p.token, token):
                        _check_key(p, key)
                        p.identity, p.last_seen = identity, now
                        p.connected, p.disconnected_at = True, None
                        return p, True
                raise NotAllowed("unknown or expired session token")
            self._admit(identity, address, now)
            limit = min(self.config.max_players, MAX_PLAYER)
            free = next((i for i in range(1, limit + 1) if i not in self.players), None)
            if free is None:
                free = self._evict(now)
            if free is None:
                raise NotAllowed(f"the server is full ({limit} players)")
            clean = "".join(ch for ch in name if ch.isprintable()).strip() or f"player-{free}"
            taken = {p.name for p in self.players.values()}
            unique, n = clean, 2
            while unique in taken:
                unique = f"{clean[:28]}#{n}"
                n += 1
            player = Player(free, unique, secrets.token_hex(16), identity,
                            self.config.energy_cap, now, key=key, address=address)
            self.players[free] = player
            return player, False

    def _admit(self, identity: bytes, address: str, now: float) -> None:
        """Refuse a new session to a connection or an address that has enough."""
        if any(p.identity == identity and p.connected for p in self.players.values()):
            raise NotAllowed("this connection already plays: one session a connection "
                             "(rejoin with your token)")
        if not address:
            return
        live = sum(p.address == address for p in self.players.values())
        if live >= self.config.per_address:
            raise NotAllowed(f"{address} already holds {live} sessions, the most one "
                             "address may")
        bucket = self._joins.get(address)
        if bucket is None:  # a burst of a whole address's worth: a fleet joins at once
            bucket = self._joins[address] = TokenBucket(self.config.joins_per_second,
                                                        self.config.per_address)
            while len(self._joins) > 4096:
                self._joins.popitem(last=False)
        self._joins.move_to_end(address)
        if not bucket.take():
            raise Busy(f"{address} opens sessions faster than "
                       f"{self.config.joins_per_second:g} a second: try again in a moment")

    def _evict(self, now: float) -> int | None:
        """Make room: the idle player owning no cell that was seen last longest ago
        (disconnected ones first); its id, or None when every player counts."""
        idle_after = 2 * self.config.heartbeat
        candidates = [p for p in self.players.values()
                      if self.owned(p.id) == 0
                      and (not p.connected or now - p.last_seen > idle_after)]
        if not candidates:
            return None
        gone = min(candidates, key=lambda p: (p.connected, p.last_seen))
        self._forget(gone.id)
        self.evicted += 1
        return gone.id

    def _forget(self, player_id: int) -> None:
        """Remove a player and what it left queued (under the lock): its id is given to
        the next who joins, who must not inherit a placement or a request."""
        del self.players[player_id]
        self.placements = [pl for pl in self.placements if pl.player != player_id]
        self.shields.drop(player_id)
        self.requests.pop(player_id, None)
        self.decisions.pop(player_id, None)
        self._answered(player_id)

    def may_place(self, player: Player) -> None:
        """Refuse a placement asked for faster than ``places_per_second``."""
        with self.lock:
            if player.places is None:
                player.places = TokenBucket(self.config.places_per_second,
                                            2 * self.config.places_per_second)
            if not player.places.take():
                raise NotAllowed("placements too fast: at most "
                                 f"{self.config.places_per_second:g} a second")

    def auth(self, player_id: int, token: str, identity: bytes,
             key: bytes | None = None) -> Player:
        """The player this request speaks for, or ``NotAllowed`` (a wrong token, or the
        right one from another key than the session's)."""
        with self.lock:
            player = self.players.get(player_id)
            if player is None or not secrets.compare_digest(player.token, token):
                raise NotAllowed(f"the token does not belong to player {player_id}")
            _check_key(player, key)
            player.last_seen = time.monotonic()
            if not player.connected:
                player.connected, player.disconnected_at = True, None
            player.identity = identity
            return player

    def leave(self, player: Player) -> None:
        with self.lock:
            if player.connected:
                player.connected = False
                player.disconnected_at = time.monotonic()

    def expire(self, now: float | None = None) -> list[int]:
        """Disconnect silent players; free those past the grace and return their ids,
        whose cells must turn neutral (main thread, at the boundary)."""
        now = time.monotonic() if now is None else now
        silence = self.config.heartbeat * self.config.liveness
        gone = []
        with self.lock:
            for p in list(self.players.values()):
                if p.connected and now - p.last_seen > silence:
                    p.connected, p.disconnected_at = False, now
                if (not p.connected and p.disconnected_at is not None
                        and now - p.disconnected_at > self.config.grace):
                    self._forget(p.id)
                    gone.append(p.id)
        return gone

    # -- energy and placements ------------------------------------------------------------

    def place(self, player: Player, cells: Cells) -> tuple[int, int]:
        """Queue a placement of ``cells`` (a footprint: distinct cells of the world) for
        the next boundary, reserving its energy, one a cell.

        Returns its cost and the generation it lands in, read under the same lock as
        the queue, so the promise holds even while a step is running.
        """
        cost = len(cells)
        zone = self.shields.zone(cells)  # None: shields off, or not compact
        with self.lock:
            if cost > player.energy:
                raise NotAllowed(f"placing {cost} cells needs {cost} energy, "
                                 f"player has {player.energy}")
            why = self.shields.refusal(player.id, zone, self.landing, cells)
            if why is not None:
                raise NotAllowed(why)
            player.energy -= cost
            self.placements.append(Placement(player.id, cells, cost, zone=zone))
            return cost, self.landing

    def take_placements(self, generation: int) -> list[Placement]:
        """The placements that land in ``generation`` (those of players still here, with
        their cell codes); placements queued from now on land in ``generation + 1``."""
        with self.lock:
            return self._take(generation)

    def _take(self, generation: int) -> list[Placement]:
        self.landing = generation + 1
        placements, self.placements = self.placements, []
        taking = []
        for pl in placements:
            player = self.players.get(pl.player)
            if player is not None:
                pl.code = player.code
                taking.append(pl)
        return taking

    def land(self, generation: int, fill: Callable[[Index, Index, int], int],
             world: Callable[[], Codes]) -> list[tuple[Placement, Index, Index, Landed]]:
        """Land every placement queued for ``generation``, in order, under one hold of
        the lock: what ``take_placements``, ``unshielded``, ``shield`` and ``refund``
        do one by one (its cells outside other players' live shields filled where
        empty, by ``fill``; its shield, judged on ``world()`` with its cells in, read
        after each fill: a fill may widen the grid, and so replace its array; the
        cells that did not land refunded). Each placement with the cells it tried and
        what it got. One hold, not four a placement: the lobby thread, which needs the
        lock for every request, waits instead of taking turns at the GIL with each of
        a hundred and fifty placements a generation."""
        landed = []
        with self.lock:
            taken = self._take(generation)
            # every zone tested against the shields at once (``Shields.landing``)
            batch = self.shields.landing([pl.zone for pl in taken], generation)
            for i, pl in enumerate(taken):
                ys, xs = _outside(pl, batch.foreign(i, pl.player, pl.ys, pl.xs))
                placed = fill(ys, xs, pl.code)
                if placed and pl.player in self.players:
                    batch.add(i, pl.player, world(), pl.code)
                landed.append((pl, ys, xs, self._refund(pl, placed)))
        return landed

    def refund(self, placement: Placement, placed: int) -> Landed:
        """``placed`` of the placement's cells landed: refund the others."""
        with self.lock:
            return self._refund(placement, placed)

    def _refund(self, placement: Placement, placed: int) -> Landed:
        player = self.players.get(placement.player)
        if player is None:
            return Landed(placement.player, b"", len(placement.cells), placed, 0)
        player.energy = min(self.config.energy_cap,
                            player.energy + placement.reserved - placed)
        return Landed(player.id, player.identity, len(placement.cells), placed,
                      player.energy)

    def regenerate(self) -> None:
        with self.lock:
            self._regenerate()

    def _regenerate(self) -> None:
        for p in self.players.values():
            if p.connected:
                p.energy = min(self.config.energy_cap, p.energy + self.config.energy_regen)

    def energies(self) -> dict[int, int]:
        """Every player's energy now, by id (read once, under the lock)."""
        with self.lock:
            return {pid: p.energy for pid, p in self.players.items()}

    # -- shields (main thread; the lobby checks placements against them) -----------------

    def unshielded(self, placement: Placement,
                   landing: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The cells of ``placement`` (landing in generation ``landing``) that no live
        shield of another player covers: the only ones it may fill."""
        with self.lock:
            return self._unshielded(placement, landing)

    def _unshielded(self, placement: Placement,
                    landing: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        return _outside(placement, self.shields.foreign(placement.player, placement.ys,
                                                        placement.xs, landing, placement.zone))

    def shield(self, placement: Placement, placed: int, landed: int,
               world: Codes) -> Shield | None:
        """The shield of a placement that put ``placed`` cells in generation ``landed``,
        whose cells ``world`` now holds (none for one that put none or is not compact,
        nor when its zone overlaps a live shield or one of its player's that just
        ended, or holds another player's cells: ``Shields.add``)."""
        with self.lock:
            return self._shield(placement, placed, landed, world)

    def _shield(self, placement: Placement, placed: int, landed: int,
                world: Codes) -> Shield | None:
        if placement.zone is None or placed == 0 or placement.player not in self.players:
            return None
        return self.shields.add(placement.player, placement.zone, landed, world,
                                placement.code)

    def prune_shields(self, generation: int) -> None:
        """Forget the shields that computed their last generation by ``generation``."""
        with self.lock:
            self.shields.prune(generation)

    def step_shields(self, generation: int) -> list[Shield]:
        """The shields that compute generation ``generation + 1``, the done ones
        forgotten first, read once under the lock: the one view of them a step uses
        (asking, the zones, checking the decisions), whatever the lobby drops meanwhile
        (a player evicted takes its shields with it, from the next step on)."""
        with self.lock:
            self.shields.prune(generation)
            return list(self.shields.live)

    def live_shields(self, generation: int) -> list[Shield]:
        """The shields that still compute a generation after ``generation``."""
        with self.lock:
            return [s for s in self.shields.live if s.live_after(generation)]

    # -- rounds (main thread) ----------------------------------------------------------------

    def score(self, cells: Callable[[int], int]) -> None:
        """Every player earns its live cells (``cells(id)``) in points."""
        with self.lock:
            for p in self.players.values():
                p.points += cells(p.id)

    def points(self) -> list[tuple[int, str, int]]:
        """Every player's ``(id, name, points)``, by id."""
        with self.lock:
            return sorted((p.id, p.name, p.points) for p in self.players.values())

    def end_round(self) -> dict[int, tuple[str, int]]:
        """Close the round: every player's name and points, then a fresh start: points
        back to 0, every live shield ended, connected players' energy at the cap less
        what their queued placements reserved (those land after the reset and are
        paid for: a refill to the cap would forgive them, the refund being capped)."""
        with self.lock:
            standings = {p.id: (p.name, p.points) for p in self.players.values()}
            reserved: dict[int, int] = {}
            for pl in self.placements:
                reserved[pl.player] = reserved.get(pl.player, 0) + pl.reserved
            for p in self.players.values():
                p.points = 0
                if p.connected:
                    p.energy = max(0, self.config.energy_cap - reserved.get(p.id, 0))
            self.shields.drop()
            return standings

    # -- per-cell decisions ------------------------------------------------------------------

    def open_requests(self, gen: int, requests: dict[int, Request],
                      deadline: float = 0.0) -> None:
        """Start generation ``gen``'s decision round (main thread); ``deadline``
        (monotonic): the latest it may close (``sent`` brings it nearer)."""
        now = self.clock()
        with self.lock:
            for pid in requests:
                if (p := self.players.get(pid)) is not None:
                    p.unread.append(gen)
                    p.asked_at = now
            self.request_gen = gen
            self.requests = requests
            self.decisions = {}
            self._deadline = deadline
            self.waiting = self.awaited()

    def _answered(self, player_id: int) -> None:
        """``player_id`` is waited for no more (under the lock): the round's waiter
        wakes once the last one is."""
        if player_id in self.waiting:
            self.waiting.discard(player_id)
            if not self.waiting:
                self.changed.notify_all()

    def post_decision(self, player: Player, gen: int, keep: list[int],
                      let_die: list[int]) -> None:
        """Record a player's answer (lobby thread); refused when late or repeated.

        A player that left rounds unanswered is waited for again only once it answers
        in time: the open round, or the last one if that closed early (its awaited
        players all answered) and this answer still came before its deadline. Any
        other answer proves nothing, so a stream of stale answers cannot make every
        round wait its whole window for a player that never answers in time."""
        with self.changed:
            if player.unread:  # read: that request and every older one are done
                player.unread = [g for g in player.unread if g > gen]
            if gen != self.request_gen or player.id not in self.requests:
                last_gen, deadline, asked = self._closed
                if gen == last_gen and player.id in asked and time.monotonic() <= deadline:
                    player.missed = 0
                    if player.id in self.requests and player.id not in self.decisions:
                        self.waiting.add(player.id)  # awaited again, from this round
                raise LateAnswer(f"no open game_logic request of generation {gen} "
                                 "for this player (late answer?)")
            if player.id in self.decisions:
                raise NotAllowed(f"generation {gen} was already answered")
            self.decisions[player.id] = Decision(keep, let_die)
            player.missed = 0
            self._answered(player.id)

    def _shielded(self, live: ZoneTable) -> dict[int, set[int]]:
        """For each player that answered, the cells its answer names (indices into its
        request) that lie inside another player's live shield, whose owner alone
        decides them: only the cells decided on are looked at, every player's at once
        (one pass over the shields for a thousand answers). Under the lock."""
        if not len(live):
            return {}
        named_of: dict[int, list[int]] = {}
        ys: list[int] = []
        xs: list[int] = []
        owners: list[int] = []
        for pid, decision in self.decisions.items():
            request = self.requests[pid]
            n = len(request.ys)
            named = [i for i in dict.fromkeys([*decision.keep, *decision.let_die])
                     if i < n]
            if named and pid in self.players:
                named_of[pid] = named
                # A few cells each: Python's lists, not three small arrays a player.
                ys += [int(request.ys[i]) for i in named]
                xs += [int(request.xs[i]) for i in named]
                owners += [pid] * len(named)
        if not named_of:
            return {}
        mask = foreign_mask(live, np.array(owners), np.array(ys), np.array(xs),
                            self.request_gen or 0, self.shields.height,
                            self.shields.width)
        if mask is None:
            return {}
        hits = iter(mask.tolist())
        return {pid: {i for i in named if next(hits)} for pid, named in named_of.items()}

    def awaited(self) -> set[int]:
        """The asked players whose answers the round waits for (call with the lock):
        not those that left the last ``MISSED_ROUNDS`` rounds unanswered."""
        return {pid for pid in self.requests
                if (p := self.players.get(pid)) is not None and p.missed < MISSED_ROUNDS}

    def sent(self, gen: int, window: float) -> None:
        """Round ``gen``'s requests have left (the lobby thread, once it sent the last):
        each player's ``window`` counts from now, not from when the round opened (a
        thousand requests take a while to send, and the last players asked would have
        had none of it left), though never past the deadline the round opened with."""
        with self.changed:
            if gen == self.request_gen:
                self._deadline = min(self._deadline, time.monotonic() + window)
                self.changed.notify_all()

    def wait_decisions(self, deadline: float | None = None) -> None:
        """Block until every awaited player answered, or until ``deadline`` (monotonic;
        None: the round's own, as ``sent`` moves it)."""
        with self.changed:
            while self.waiting:
                left = (self._deadline if deadline is None else deadline) - time.monotonic()
                if left <= 0:
                    return
                self.changed.wait(left)

    def close_decisions(self, regenerate: bool = False,
                        shields: list[Shield] | None = None
                        ) -> tuple[list[Write], dict[int, DecisionResult]]:
        """Close the round: the writes its valid decisions make in the next generation
        (keep-alives paid with energy), and what each answering player got. With
        ``regenerate``, the generation's energy is regained in the same breath, so no
        request ever sees the keep-alives paid and the regeneration not yet done.
        ``shields``: the live shields the generation was asked with (``step_shields``;
        None: those live now)."""
        results: dict[int, DecisionResult] = {}
        writes: list[Write] = []
        with self.lock:
            live = self.shields.table if shields is None else zone_table(shields)
            silent = set(self.requests) - set(self.decisions)
            self.unanswered = len(silent)
            self.asked_total += len(self.requests)
            self.answered_total += len(self.requests) - len(silent)
            for pid in silent:
                if (p := self.players.get(pid)) is not None:
                    p.missed += 1
            shielded_of = self._shielded(live)
            # A thousand answers of a few cells each: Python's ints and lists, no array
            # a player but its keep-alives' (each player's code); the cells let die,
            # all code 0, are one write.
            died_ys: list[int] = []
            died_xs: list[int] = []
            nothing: frozenset[int] = frozenset()
            for pid, decision in self.decisions.items():
                result = results[pid] = DecisionResult()
                player = self.players.get(pid)
                if player is None:
                    continue
                request = self.requests[pid]
                survives, n = request.survives, len(request.survives)
                shielded = shielded_of.get(pid, nothing)
                energy, refused, keep, died = player.energy, 0, [], 0
                for i in dict.fromkeys(decision.keep):
                    if i >= n or survives[i] or energy < 1 or i in shielded:
                        refused += 1  # out of range, alive anyway, unpaid, shielded
                    else:
                        keep.append(i)
                        energy -= 1
                for i in dict.fromkeys(decision.let_die):
                    if i >= n or not survives[i] or i in shielded:
                        refused += 1
                    else:
                        died_ys.append(request.ys.item(i))
                        died_xs.append(request.xs.item(i))
                        died += 1
                player.energy = energy
                result.kept, result.died, result.refused, result.energy = \
                    len(keep), died, refused, energy
                if keep:
                    writes.append(Write(request.ys[keep], request.xs[keep], player.code))
            if died_ys:
                writes.append(Write(np.array(died_ys, dtype=np.int64),
                                    np.array(died_xs, dtype=np.int64), 0))
            if self.request_gen is not None:
                self._closed = (self.request_gen, self._deadline, set(self.requests))
            self.request_gen, self.requests, self.decisions = None, {}, {}
            self.waiting = set()
            if regenerate:
                self._regenerate()
        return writes, results

    # -- snapshots ---------------------------------------------------------------------------

    def export(self, round_ends_at: int | None = None) -> list[dict[str, Any]]:
        """The players as plain data for a snapshot (tokens included: it is encrypted;
        and the key each session is bound to, so a restore keeps the binding). With
        rounds, each player's points and the generation their round ends at."""
        with self.lock:
            return [{"id": p.id, "name": p.name, "token": p.token, "energy": p.energy,
                     **({"key": p.key.decode()} if p.key else {}),
                     **({"points": p.points, "round_ends_at": round_ends_at}
                        if round_ends_at is not None and p.points else {})}
                    for p in self.players.values()]

    def restore(self, players: list[dict[str, Any]],
                round_ends_at: int | None = None) -> None:
        """Players from a snapshot, all disconnected: each may rejoin with its token (from
        the key its session was bound to) within the grace period, else its cells turn
        neutral as usual. A session from a server without keys binds to the first key
        that rejoins with its token. A player's points come back only for the round
        in progress (``round_ends_at``, the same as when the snapshot was taken)."""
        now = time.monotonic()
        with self.lock:
            for d in players:
                try:
                    pid, name, token, energy = (int(d["id"]), str(d["name"]), str(d["token"]),
                                                int(d["energy"]))
                except (KeyError, TypeError, ValueError):
                    continue  # a snapshot from before players existed, or damaged data
                key = d.get("key")
                points = d.get("points")
                if (round_ends_at is None or type(points) is not int or points < 0
                        or d.get("round_ends_at") != round_ends_at):
                    points = 0
                if 1 <= pid <= MAX_PLAYER:
                    self.players[pid] = Player(pid, name, token, b"", energy, now,
                                               connected=False, disconnected_at=now,
                                               key=key.encode() if isinstance(key, str)
                                               else None, points=points)

    # -- reading -----------------------------------------------------------------------------

    def connected(self) -> list[Player]:
        with self.lock:
            return [p for p in self.players.values() if p.connected]

    def askable(self, players: list[Player]) -> list[Player]:
        """Those of ``players`` that may be asked now: fewer than ``MAX_UNREAD`` of
        their requests without an answer read. Those requests are forgotten (lost on
        the way) once the lobby has read everything that came in the ``UNREAD_EXPIRY``
        seconds after the last of them was sent, not before: a lobby behind on its
        reading may hold the answers still (and after ``UNREAD_GIVE_UP`` seconds in any
        case: a lobby kept busy by a flood is never idle). The others are counted
        (``held_total``)."""
        read, now = self.read_at(), self.clock()
        asking = []
        with self.lock:
            for p in players:
                if p.unread and (read >= p.asked_at + UNREAD_EXPIRY
                                 or now >= p.asked_at + UNREAD_GIVE_UP):
                    p.unread = []
                if len(p.unread) < MAX_UNREAD:
                    asking.append(p)
                else:
                    self.held_total += 1
        return asking

    def unsent(self, gen: int) -> None:
        """Round ``gen``'s requests were dropped before they left (the lobby's outbox
        was full): nobody can answer them, so nothing is waited for, and they count
        against nobody's unread requests."""
        with self.changed:
            for p in self.players.values():
                if p.unread and p.unread[-1] == gen:
                    p.unread.pop()
        self.sent(gen, 0.0)

    def roster(self) -> tuple[dict[int, str], set[int]]:
        """Every player's name by id, and the ids of those away (disconnected, in their
        grace): what a frame's scoreboard needs, without copying a thousand players."""
        with self.lock:
            return ({pid: p.name for pid, p in self.players.items()},
                    {pid for pid, p in self.players.items() if not p.connected})

    def snapshot(self) -> list[Player]:
        with self.lock:
            return [Player(**{f: getattr(p, f) for f in p.__dataclass_fields__})
                    for p in self.players.values()]

    def energy_of(self, player_id: int) -> int:
        with self.lock:
            p = self.players.get(player_id)
            return p.energy if p else 0


def _check_key(player: Player, key: bytes | None) -> None:
    """Refuse a request from another key than the one ``player``'s session is bound to;
    a session restored from a snapshot binds to the first key that rejoins."""
    if player.key is None:
        player.key = key
    elif key != player.key:
        raise NotAllowed(f"player {player.id}'s session is bound to another key than "
                         "this connection's: a token works only from the key that joined")
