"""Rounds (``--round N``): the game's goal, its scoring, and who won.

The goal, as a joining player is told (``goal``: ``GOAL`` with rounds, ``GOAL_NO_ROUNDS``
on a server without them, where nobody scores points): own the most live cells. Each
generation a player earns its live-cell count in points (read off the ``Board`` the
generation already counted, so scoring costs a few additions); a round lasts ``N``
generations, and the player with the most points when it ends wins. A steady presence
wins, not a lucky last generation.

Rounds follow the generation counter: round ``k`` (from 1) scores generations
``(k - 1) N + 1 .. k N`` and ends when generation ``k N`` is made. Then:

- the winner is the player with the most points; ties go to the most live cells in
  that generation, then to the lowest id; nobody wins a round in which nobody scored;
- it is announced (frames, status, the log) and the last ``MAX_ROUND_RESULTS`` results
  are kept;
- every player's points go back to 0, every player's cells turn neutral (a fresh
  start), the live shields end, and every connected player's energy refills to the cap,
  less what its placements landing at that boundary reserved.

Placements that land in a round's last generation land after the reset: they are the
new round's first cells, paid for as in any generation. Everything here depends on the
generations alone (never on workers or the order of answers), so the same world and
players give the same winner.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.protocol import MAX_ROUND_RESULTS

GOAL = ("Own the most live cells: each generation your live cells add to your points; "
        "the most points when the round ends wins.")
GOAL_NO_ROUNDS = ("Own the most live cells: the scoreboard counts each player's live "
                  "cells; place patterns that live and grow.")


def goal(round_length: int) -> str:
    """The goal a joining player is told on a server whose rounds last
    ``round_length`` generations (0: no rounds, no points)."""
    return GOAL if round_length > 0 else GOAL_NO_ROUNDS


@dataclass(frozen=True)
class Result:
    """How one round ended."""

    round: int
    winner: str | None  # its name, None when nobody scored
    player: int | None  # its id
    points: int
    ended_at: int       # the generation that ended it

    def wire(self) -> dict[str, Any]:
        return {"round": self.round, "winner": self.winner, "player": self.player,
                "points": self.points, "ended_at": self.ended_at}


def winner(points: Mapping[int, int], live: Mapping[int, int]) -> int | None:
    """The id of the round's winner: the most points, then the most live cells now,
    then the lowest id; None when nobody scored."""
    scored = [pid for pid, p in points.items() if p > 0]
    if not scored:
        return None
    return min(scored, key=lambda pid: (-points[pid], -live.get(pid, 0), pid))


@dataclass(frozen=True)
class Standing:
    """The round at one generation, as frames and status reports show it (never
    changed: made again every generation)."""

    number: int
    length: int
    ends_at: int
    points: tuple[tuple[int, str, int], ...]  # (id, name, points > 0), by id
    last: tuple[Result, ...]                  # newest first

    def frame(self) -> dict[str, Any]:
        """For frames: points by player id."""
        return {"number": self.number, "length": self.length, "ends_at": self.ends_at,
                "points": [[pid, points] for pid, _, points in self.points],
                "last": [r.wire() for r in self.last]}

    def status(self, most: int = 256) -> dict[str, Any]:
        """For status reports: points by player name, the ``most`` highest."""
        best = sorted(self.points, key=lambda row: (-row[2], row[0]))[:most]
        return {**self.frame(), "points": {name: points for _, name, points in best}}


class Rounds:
    """The rounds of one server: their length and the last results (main thread)."""

    def __init__(self, length: int, keep: int = MAX_ROUND_RESULTS) -> None:
        if length < 1:
            raise ValueError(f"a round lasts at least one generation, not {length}")
        self.length = length
        self.last: deque[Result] = deque(maxlen=keep)

    def number(self, generation: int) -> int:
        """The round in progress once ``generation`` is made (1-based)."""
        return generation // self.length + 1

    def ends_at(self, generation: int) -> int:
        """The generation that ends the round in progress at ``generation``."""
        return self.number(generation) * self.length

    def ends(self, generation: int) -> bool:
        """Whether making ``generation`` ends a round."""
        return generation > 0 and generation % self.length == 0

    def close(self, generation: int, standings: Mapping[int, tuple[str, int]],
              live: Mapping[int, int]) -> Result:
        """Record the round ``generation`` ends: ``standings`` are every player's name
        and points, ``live`` their live cells in that generation."""
        best = winner({pid: points for pid, (_, points) in standings.items()}, live)
        result = Result(generation // self.length,
                        standings[best][0] if best is not None else None, best,
                        standings[best][1] if best is not None else 0, generation)
        self.last.appendleft(result)
        return result

    def standing(self, generation: int,
                 points: list[tuple[int, str, int]]) -> Standing:
        """The round as it stands at ``generation``, given every player's points."""
        return Standing(self.number(generation), self.length, self.ends_at(generation),
                        tuple(sorted(p for p in points if p[2] > 0)), tuple(self.last))
