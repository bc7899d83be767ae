"""The vectorised ``game_logic``: one whole tile at a time with NumPy.

A tile arrives with a one-cell halo (its neighbours on the torus), as ``uint8`` cell
codes. The kernel applies the same rule as ``shared.life.game_logic`` to every cell at
once: neighbour counts from two separable 3-sums, then a rule lookup table. Owners follow
the same law as the reference: survivors keep theirs; a birth takes its parents'
majority owner, a tie is neutral. Only births need the vote, so it runs on them alone,
and not at all in a world of neutral cells.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shared.grid import Codes, Grid
from shared.rules import Rule

_OFFSETS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def rule_table(rule: Rule) -> npt.NDArray[np.uint8]:
    """``table[total + 8 * alive]`` is the next liveness, where ``total`` is the 3x3 sum.

    ``total`` counts the cell itself, so ``total + 8 * alive`` is ``neighbors`` for an
    empty cell and ``neighbors + 9`` for a live one: the layout of ``Rule.table``.
    """
    return rule.table.astype(np.uint8)


def step_tile(padded: Codes, table: npt.NDArray[np.uint8]) -> Codes:
    """The next generation of the inner ``(h, w)`` cells of a ``(h + 2, w + 2)`` tile."""
    if padded.ndim != 2 or padded.shape[0] < 3 or padded.shape[1] < 3:
        raise ValueError(f"a padded tile is at least 3x3, not {padded.shape}")
    alive = (padded != 0).view(np.uint8)
    rows = alive[:-2] + alive[1:-1]
    rows += alive[2:]
    total = rows[:, :-2] + rows[:, 1:-1]
    total += rows[:, 2:]
    center = alive[1:-1, 1:-1]
    total += center << 3
    nxt = table[total]
    out = np.maximum(padded[1:-1, 1:-1], 1)
    out *= nxt
    if padded.max(initial=0) > 1:
        _vote_births(padded, center, nxt, out)
    return out


def _vote_births(padded: Codes, center: Codes, nxt: Codes, out: Codes) -> None:
    """Give every birth in ``out`` its parents' majority owner (a tie stays neutral)."""
    ys, xs = np.nonzero(nxt & (center ^ 1))
    if ys.size == 0:
        return
    ys = ys + 1
    xs = xs + 1
    parents = np.stack([padded[ys + dy, xs + dx] for dy, dx in _OFFSETS])  # (8, births)
    if parents.max() <= 1:
        return
    live = parents != 0
    # votes[j, i]: how many parents of birth i share the code of its parent j.
    votes = np.zeros(parents.shape, dtype=np.uint8)
    for k in range(8):
        votes += (parents == parents[k]) & live[k]
    votes *= live
    best = votes.max(axis=0)
    winners = np.count_nonzero(votes == best, axis=0)
    # `winners` positions share the top count; they hold winners // best distinct codes.
    unique = winners == best
    winner_code = parents[votes.argmax(axis=0), np.arange(parents.shape[1])]
    out[ys - 1, xs - 1] = np.where(unique, winner_code, 1).astype(np.uint8)


def step_grid(grid: Grid, rule: Rule) -> Grid:
    """The next generation of a whole torus, in this process (no workers)."""
    return Grid(grid.height, grid.width, step_tile(grid.padded(), rule_table(rule)))
