"""The players: sessions, energy, placements and per-cell decisions.

The ``PlayerRegistry`` is shared by two threads: the lobby (which owns the player
socket and answers requests) and the main thread (which owns the world). Everything
in it is guarded by one lock and every method is short, so neither thread waits on the
other for long. The world itself is only touched by the main thread: the lobby queues
placements and decisions here, and the main thread applies them at the generation
boundary.

Rules of the game (DESIGN.md, "The game"):

- A player joins with a name and gets an id (1..254), a colour (cell code ``id + 1``)
  and a secret session token. Every later request carries the token; a request whose
  token is not that player's is refused. Reconnecting with the token within the grace
  period gives back the same player.
- A player silent for ``liveness`` heartbeats is disconnected: its cells stay, it gets
  no more ``game_logic`` requests. After ``grace`` seconds its cells become neutral and
  its id can be given to a newcomer.
- Energy regenerates by ``regen`` every generation up to ``cap``. Placing a cell costs 1
  (reserved when the placement is accepted, refunded for cells found occupied at the
  boundary); keeping alive a cell the rule would kill costs 1; letting a cell die is
  free.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.errors import ProtocolError
from shared.grid import MAX_PLAYER, Codes
from shared.protocol import ErrorCode

Cells = npt.NDArray[np.int64]  # (n, 2) rows of (y, x)


class NotAllowed(ProtocolError):
    """A valid request the game refuses (wrong token, no energy, full server...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ErrorCode.NOT_ALLOWED)


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

    @property
    def code(self) -> int:
        return self.id + 1


@dataclass
class Placement:
    player: int
    cells: Cells
    reserved: int


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


@dataclass
class DecisionResult:
    kept: int = 0
    died: int = 0
    refused: int = 0


class PlayerRegistry:
    """Every player, guarded by one lock; see the module docstring for the rules."""

    def __init__(self, config: RegistryConfig | None = None) -> None:
        self.config = config or RegistryConfig()
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.players: dict[int, Player] = {}
        self.placements: list[Placement] = []
        self.requests: dict[int, Request] = {}  # for the generation being decided
        self.request_gen: int | None = None
        self.decisions: dict[int, Decision] = {}
        self.neutralise: list[int] = []  # ids whose cells must become neutral
        self.unanswered = 0  # asked players that did not answer the last round
        self.landing = 1  # the generation queued placements land in (main thread sets it)

    # -- sessions (lobby thread) -------------------------------------------------------

    def join(self, identity: bytes, name: str, token: str | None) -> tuple[Player, bool]:
        """A new player, or the one whose token this is (``rejoined`` True)."""
        now = time.monotonic()
        with self.lock:
            if token is not None:
                for p in self.players.values():
                    if secrets.compare_digest(p.token, token):
                        p.identity, p.last_seen = identity, now
                        p.connected, p.disconnected_at = True, None
                        return p, True
                raise NotAllowed("unknown or expired session token")
            free = next((i for i in range(1, MAX_PLAYER + 1) if i not in self.players), None)
            if free is None:
                raise NotAllowed(f"the server is full ({MAX_PLAYER} players)")
            clean = "".join(ch for ch in name if ch.isprintable()).strip() or f"player-{free}"
            taken = {p.name for p in self.players.values()}
            unique, n = clean, 2
            while unique in taken:
                unique = f"{clean[:28]}#{n}"
                n += 1
            player = Player(free, unique, secrets.token_hex(16), identity,
                            self.config.energy_cap, now)
            self.players[free] = player
            return player, False

    def auth(self, player_id: int, token: str, identity: bytes) -> Player:
        """The player this request speaks for, or ``NotAllowed``."""
        with self.lock:
            player = self.players.get(player_id)
            if player is None or not secrets.compare_digest(player.token, token):
                raise NotAllowed(f"the token does not belong to player {player_id}")
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

    def expire(self, now: float | None = None) -> None:
        """Disconnect silent players; free those past the grace (main thread)."""
        now = time.monotonic() if now is None else now
        silence = self.config.heartbeat * self.config.liveness
        with self.lock:
            for p in list(self.players.values()):
                if p.connected and now - p.last_seen > silence:
                    p.connected, p.disconnected_at = False, now
                if (not p.connected and p.disconnected_at is not None
                        and now - p.disconnected_at > self.config.grace):
                    del self.players[p.id]
                    self.neutralise.append(p.id)

    # -- energy and placements ------------------------------------------------------------

    def place(self, player: Player, cells: Cells, height: int,
              width: int) -> tuple[int, int]:
        """Queue a placement for the next boundary, reserving its energy.

        Returns its cost and the generation it lands in, read under the same lock as
        the queue, so the promise holds even while a step is running. A pattern larger
        than the world wraps onto itself: each square is placed, and paid, once.
        """
        cells = np.unique(cells % np.array([height, width]), axis=0)
        cost = len(cells)
        with self.lock:
            if cost > player.energy:
                raise NotAllowed(f"placing {cost} cells needs {cost} energy, "
                                 f"player has {player.energy}")
            player.energy -= cost
            self.placements.append(Placement(player.id, cells, cost))
            return cost, self.landing

    def apply_placements(self, codes: Codes, generation: int) -> list[Landed]:
        """Fill empty cells of ``generation`` with the placers' colours; refund the
        occupied ones. Placements queued from now on land in ``generation + 1``."""
        with self.lock:
            self.landing = generation + 1
            placements, self.placements = self.placements, []
            landed = []
            for pl in placements:
                player = self.players.get(pl.player)
                if player is None:
                    continue
                ys, xs = pl.cells[:, 0], pl.cells[:, 1]
                empty = codes[ys, xs] == 0
                codes[ys[empty], xs[empty]] = player.code
                n = int(np.count_nonzero(empty))
                player.energy = min(self.config.energy_cap, player.energy + pl.reserved - n)
                landed.append(Landed(player.id, player.identity, len(pl.cells), n,
                                     player.energy))
            return landed

    def regenerate(self) -> None:
        with self.lock:
            for p in self.players.values():
                if p.connected:
                    p.energy = min(self.config.energy_cap, p.energy + self.config.energy_regen)

    # -- per-cell decisions ------------------------------------------------------------------

    def open_requests(self, gen: int, requests: dict[int, Request]) -> None:
        """Start generation ``gen``'s decision round (main thread)."""
        with self.lock:
            self.request_gen = gen
            self.requests = requests
            self.decisions = {}

    def post_decision(self, player: Player, gen: int, keep: list[int],
                      let_die: list[int]) -> None:
        """Record a player's answer (lobby thread); refused when late or repeated."""
        with self.changed:
            if gen != self.request_gen or player.id not in self.requests:
                raise NotAllowed(f"no open game_logic request of generation {gen} "
                                 "for this player (late answer?)")
            if player.id in self.decisions:
                raise NotAllowed(f"generation {gen} was already answered")
            self.decisions[player.id] = Decision(keep, let_die)
            self.changed.notify_all()

    def wait_decisions(self, deadline: float) -> None:
        """Block until every asked player answered, or until ``deadline`` (monotonic)."""
        with self.changed:
            while set(self.requests) - set(self.decisions):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.changed.wait(left)

    def apply_decisions(self, codes: Codes) -> dict[int, DecisionResult]:
        """Apply the round's valid decisions to the next generation and close it."""
        results: dict[int, DecisionResult] = {}
        with self.lock:
            self.unanswered = len(set(self.requests) - set(self.decisions))
            for pid, decision in self.decisions.items():
                request, player = self.requests[pid], self.players.get(pid)
                result = results.setdefault(pid, DecisionResult())
                if player is None:
                    continue
                n = len(request.ys)
                for i in dict.fromkeys(decision.keep):
                    if i >= n or request.survives[i]:
                        result.refused += 1  # out of range, or alive anyway
                    elif player.energy < 1:
                        result.refused += 1
                    else:
                        codes[request.ys[i], request.xs[i]] = player.code
                        player.energy -= 1
                        result.kept += 1
                for i in dict.fromkeys(decision.let_die):
                    if i >= n or not request.survives[i]:
                        result.refused += 1
                    else:
                        codes[request.ys[i], request.xs[i]] = 0
                        result.died += 1
            self.request_gen, self.requests, self.decisions = None, {}, {}
        return results

    # -- snapshots ---------------------------------------------------------------------------

    def export(self) -> list[dict[str, Any]]:
        """The players as plain data for a snapshot (tokens included: it is encrypted)."""
        with self.lock:
            return [{"id": p.id, "name": p.name, "token": p.token, "energy": p.energy}
                    for p in self.players.values()]

    def restore(self, players: list[dict[str, Any]]) -> None:
        """Players from a snapshot, all disconnected: each may rejoin with its token
        within the grace period, else its cells turn neutral as usual."""
        now = time.monotonic()
        with self.lock:
            for d in players:
                try:
                    pid, name, token, energy = (int(d["id"]), str(d["name"]), str(d["token"]),
                                                int(d["energy"]))
                except (KeyError, TypeError, ValueError):
                    continue  # a snapshot from before players existed, or damaged data
                if 1 <= pid <= MAX_PLAYER:
                    self.players[pid] = Player(pid, name, token, b"", energy, now,
                                               connected=False, disconnected_at=now)

    # -- reading -----------------------------------------------------------------------------

    def connected(self) -> list[Player]:
        with self.lock:
            return [p for p in self.players.values() if p.connected]

    def snapshot(self) -> list[Player]:
        with self.lock:
            return [Player(**{f: getattr(p, f) for f in p.__dataclass_fields__})
                    for p in self.players.values()]

    def take_neutralise(self) -> list[int]:
        with self.lock:
            ids, self.neutralise = self.neutralise, []
            return ids

    def energy_of(self, player_id: int) -> int:
        with self.lock:
            p = self.players.get(player_id)
            return p.energy if p else 0


@dataclass
class Board:
    """Live cells per owner (index = cell code) of one generation."""

    counts: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(256, np.int64))
    codes: Codes | None = None  # the generation counted (not copied)

    @classmethod
    def of(cls, codes: Codes) -> Board:
        # A neutral world needs one count, not a histogram (1 ms, not 50, at 4096x4096).
        if int(codes.max(initial=0)) <= 1:
            counts = np.zeros(256, np.int64)
            counts[1] = np.count_nonzero(codes)
            return cls(counts, codes)
        return cls(np.bincount(codes.ravel(), minlength=256), codes)

    def cells(self, player_id: int) -> int:
        return int(self.counts[player_id + 1])


MAX_PATTERN_SIDE = 256


def placement_cells(rle: str | None, cells: list[list[int]] | None, y: int, x: int,
                    rotate: int, flip: bool) -> Cells:
    """The world cells a placement covers: the pattern flipped, turned and moved.

    ``flip`` mirrors left-right first, then ``rotate`` turns it clockwise by quarter
    turns; the pattern's top-left corner lands on ``(y, x)`` (wrapping on the torus).
    """
    from shared.errors import PatternError
    from shared.protocol import MAX_PLACE_CELLS
    from shared.rle import parse_rle

    if (rle is None) == (cells is None):
        raise ProtocolError("a placement has either 'rle' or 'cells'", ErrorCode.BAD_FIELD)
    if rle is not None:
        try:
            pattern = parse_rle(rle)
        except PatternError as e:
            raise ProtocolError(f"pattern: {e}", ErrorCode.BAD_FIELD) from e
        if max(pattern.height, pattern.width) > MAX_PATTERN_SIDE:
            raise ProtocolError(f"pattern is {pattern.height}x{pattern.width}, larger than "
                                f"{MAX_PATTERN_SIDE}x{MAX_PATTERN_SIDE}", ErrorCode.BAD_FIELD)
        shape = pattern.codes != 0
    else:
        assert cells is not None
        if not cells:
            raise ProtocolError("the pattern has no live cell", ErrorCode.BAD_FIELD)
        offsets = np.array(cells, dtype=np.int64)
        shape = np.zeros((int(offsets[:, 0].max()) + 1, int(offsets[:, 1].max()) + 1),
                         dtype=np.bool_)
        shape[offsets[:, 0], offsets[:, 1]] = True
    if flip:
        shape = np.fliplr(shape)
    shape = np.rot90(shape, -rotate)
    ys, xs = np.nonzero(shape)
    if len(ys) == 0:
        raise ProtocolError("the pattern has no live cell", ErrorCode.BAD_FIELD)
    if len(ys) > MAX_PLACE_CELLS:
        raise ProtocolError(f"the pattern has {len(ys)} live cells, more than "
                            f"{MAX_PLACE_CELLS}", ErrorCode.BAD_FIELD)
    return np.stack([ys + y, xs + x], axis=1).astype(np.int64)
