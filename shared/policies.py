"""How a player answers the server's per-cell ``game_logic`` requests: the policies.

Each generation the server asks every player about the live cells it owns (a
``GAME_LOGIC`` message: the cells and their live-neighbour counts). A policy looks at a
``GameLogicRequest`` and picks, by index into its cells, the cells to keep alive that
the rule would kill (one energy each) and the cells to let die that the rule would keep
(free). The terminal client's ``d`` key switches between ``POLICIES``; a bot plays one of
the ``STRATEGIES`` (a policy and how often it places a pattern). Both read them from
here, so a policy means the same thing wherever it is named.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.protocol import GAME_LOGIC_CELL, Message
from shared.rules import Rule


@dataclass
class GameLogicRequest:
    """The server's question for one generation: these cells of yours, these counts."""

    gen: int
    ys: npt.NDArray[np.uint16]
    xs: npt.NDArray[np.uint16]
    neighbors: npt.NDArray[np.uint8]
    deadline_ms: float

    @classmethod
    def of(cls, msg: Message) -> GameLogicRequest:
        cells = np.frombuffer(msg.payloads[0], dtype=GAME_LOGIC_CELL)
        return cls(msg["gen"], cells["y"], cells["x"], cells["n"], msg["deadline_ms"])

    def survives(self, rule: Rule) -> npt.NDArray[np.bool_]:
        """The rule's verdict for each cell (True: it lives on)."""
        verdict: npt.NDArray[np.bool_] = rule.table[9:][self.neighbors]
        return verdict


Choice = tuple[list[int], list[int]]  # (keep alive, let die): indices into the cells
Policy = Callable[[GameLogicRequest, Rule, int, random.Random], Choice]
"""``policy(request, rule, energy, rng)``: the player's answer, given what it can spend."""


def follow(request: GameLogicRequest, rule: Rule, energy: int,
           rng: random.Random) -> Choice:
    """Never override the rule."""
    return [], []


def defend(request: GameLogicRequest, rule: Rule, energy: int,
           rng: random.Random) -> Choice:
    """Keep alive every cell the rule would kill, while the energy lasts (one is kept
    back, so the answer is never refused for want of it)."""
    dying = np.flatnonzero(~request.survives(rule))
    return dying[: max(0, energy - 1)].tolist(), []


def border(request: GameLogicRequest, rule: Rule, energy: int,
           rng: random.Random) -> Choice:
    """Keep alive only the lonely cells on the edge of a group (fewer than two
    neighbours) that the rule would kill, keeping some energy back for placements."""
    edge = ~request.survives(rule) & (request.neighbors < 2)
    budget = max(0, energy - 10)
    return np.flatnonzero(edge)[:budget].tolist(), []


def meddle(request: GameLogicRequest, rule: Rule, energy: int,
           rng: random.Random) -> Choice:
    """Override a few random cells both ways (the ``random`` bot: load, not strategy)."""
    n = len(request.ys)
    picks = [rng.randrange(n) for _ in range(min(n, 3))]
    return picks[:1], picks[1:]


POLICIES: dict[str, Policy] = {
    "follow": follow,
    "defend": defend,
    "border": border,
}
"""The policies a human player switches between."""

POLICY_HELP = {
    "follow": "the rule decides every cell",
    "defend": "spend energy keeping every dying cell alive",
    "border": "spend energy keeping lonely edge cells alive",
}


@dataclass(frozen=True)
class Strategy:
    """How a bot plays: its policy, and its chance of placing a pattern on each request
    when it can pay (a bot that owns nothing places surely: see ``client.bot``)."""

    policy: Policy
    place_chance: float


MAX_BOTS = 4096  # bots one ``lifenet bot`` process runs (a socket each), as ``--max-players``

STRATEGIES: dict[str, Strategy] = {
    "follow": Strategy(follow, 0.05),
    "defend": Strategy(defend, 0.05),
    "random": Strategy(meddle, 0.2),
    "idle": Strategy(follow, 0.0),  # joins and heartbeats only (load tests of sessions)
}
"""The bots' strategies, by the name ``lifenet bot --strategy`` takes."""
