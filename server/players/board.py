"""The scoreboard of one generation: live cells per owner."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from shared.grid import NEUTRAL_CODE, Codes, player_code


@dataclass(frozen=True)
class Board:
    """Live cells per owner (index = cell code, up to the highest code present, at
    least 255) of one generation."""

    counts: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(256, np.int64))
    codes: Codes | None = None  # the generation counted (not copied)
    # The players' cells (flat indices, ascending) and their codes: what the next
    # generation's requests are cut from, found once.
    owned: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    owners: Codes = field(default_factory=lambda: np.zeros(0, np.uint8))

    @classmethod
    def of(cls, codes: Codes) -> Board:
        # A neutral world needs one count, not a histogram (1 ms, not 50, at 4096x4096);
        # a world with players counts the players' cells alone (a histogram of all 16 M
        # cells of 4096x4096 costs 40 ms, a few players' cells next to nothing).
        counts = np.zeros(256, np.int64)
        live = int(np.count_nonzero(codes))
        if int(codes.max(initial=0)) <= NEUTRAL_CODE:
            counts[NEUTRAL_CODE] = live
            return cls(counts, codes)
        flat = codes.ravel()
        owned = np.flatnonzero(flat > NEUTRAL_CODE)
        owners = flat[owned]
        counts = np.bincount(owners, minlength=256).astype(np.int64)
        counts[NEUTRAL_CODE] = live - len(owned)
        return cls(counts, codes, owned, owners)

    def cells(self, player_id: int) -> int:
        """Live cells of player ``player_id`` (0 beyond the highest code counted: a
        narrow world's histogram stops at 255)."""
        code = player_code(player_id)
        return int(self.counts[code]) if code < len(self.counts) else 0

    @property
    def population(self) -> int:
        """Live cells of every owner, neutral included."""
        return int(self.counts[1:].sum())


BOARD_TOP = 10  # the rows of the scoreboard a frame carries


@dataclass(frozen=True)
class Ranking:
    """Every player's place on the scoreboard, best first: the most points (with
    rounds), then the most live cells, then the lowest id. Made once a generation by
    the main thread and replaced whole, so other threads read it without a lock.

    Frames carry only the top ``BOARD_TOP`` rows (a thousand players would otherwise
    be a thousand rows in every frame); each player learns its own place from ``PONG``.
    """

    rows: tuple[tuple[int, str, int, int], ...] = ()  # (id, name, live cells, points)
    places: dict[int, int] = field(default_factory=dict)  # id -> place, from 1

    @classmethod
    def of(cls, board: Board, names: dict[int, str], points: dict[int, int]) -> Ranking:
        rows = sorted(((pid, name, board.cells(pid), points.get(pid, 0))
                       for pid, name in names.items()),
                      key=lambda row: (-row[3], -row[2], row[0]))
        return cls(tuple(rows), {row[0]: i + 1 for i, row in enumerate(rows)})

    def top(self, n: int = BOARD_TOP) -> tuple[tuple[int, str, int, int], ...]:
        return self.rows[:n]

    @property
    def owning(self) -> int:
        """How many players own live cells."""
        return sum(1 for row in self.rows if row[2] > 0)

    def standing(self, player_id: int) -> dict[str, int]:
        """A player's own line, for its ``PONG``: place, players ranked, cells, points
        (empty if the player is not on the scoreboard yet)."""
        place = self.places.get(player_id)
        if place is None:
            return {}
        _, _, cells, points = self.rows[place - 1]
        return {"rank": place, "ranked": len(self.rows), "cells": cells, "points": points}
