"""The Game of Life, cell by cell: the book's functions and the reference ``simulate``.

``count_neighbors``, ``game_logic``, ``step_cell`` and ``simulate`` are Effective Python's
(item 56), grown by two things lifenet needs: any Life-like rule, and owners. A live cell
that survives keeps its owner; a cell that is born takes the owner most of its live
parents have (neutral parents vote for neutral), and a tie makes it neutral.

``simulate`` is deliberately plain Python over lists: it is the *reference* every faster
or distributed path in lifenet is tested against, and the book's baseline in benchmarks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np

from shared.grid import ALIVE, EMPTY, NEUTRAL, Codes, Grid, owner_of, player_code
from shared.rules import CONWAY, Rule

Get = Callable[[int, int], str]
GetOwner = Callable[[int, int], int]
Set = Callable[[int, int, str, int], None]

# The eight neighbours, in the book's order: N, NE, E, SE, S, SW, W, NW.
OFFSETS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def count_neighbors(y: int, x: int, get: Get) -> int:
    """How many of the eight cells around ``(y, x)`` are alive."""
    count = 0
    for dy, dx in OFFSETS:
        if get(y + dy, x + dx) == ALIVE:
            count += 1
    return count


def game_logic(state: str, neighbors: int, rule: Rule = CONWAY) -> str:
    """The next state of one cell, from its state and its live-neighbour count."""
    if state == ALIVE:
        return ALIVE if rule.survives(neighbors) else EMPTY
    return ALIVE if rule.born(neighbors) else EMPTY


def birth_owner(parents: Iterable[int]) -> int:
    """The owner of a newborn cell: the parents' majority owner, neutral on a tie."""
    ranked = Counter(parents).most_common(2)
    if not ranked:
        return NEUTRAL
    if len(ranked) == 2 and ranked[0][1] == ranked[1][1]:
        return NEUTRAL
    return ranked[0][0]


def step_cell(y: int, x: int, get: Get, get_owner: GetOwner, set_: Set,
              rule: Rule = CONWAY) -> None:
    """Compute one cell of the next generation and ``set_`` it."""
    state = get(y, x)
    neighbors = count_neighbors(y, x, get)
    settle(y, x, state, game_logic(state, neighbors, rule), get, get_owner, set_)


def settle(y: int, x: int, state: str, next_state: str, get: Get, get_owner: GetOwner,
           set_: Set) -> None:
    """Write one cell's next state with its owner: a survivor keeps its owner, a birth
    takes its parents' majority owner."""
    if next_state == EMPTY:
        set_(y, x, EMPTY, NEUTRAL)
    elif state == ALIVE:
        set_(y, x, ALIVE, get_owner(y, x))
    else:
        parents = [get_owner(y + dy, x + dx) for dy, dx in OFFSETS
                   if get(y + dy, x + dx) == ALIVE]
        set_(y, x, ALIVE, birth_owner(parents))


def simulate(grid: Grid, rule: Rule = CONWAY) -> Grid:
    """The next generation of ``grid``, one cell at a time: the reference implementation."""
    height, width = grid.height, grid.width
    rows = grid.codes.tolist()
    out = [[0] * width for _ in range(height)]

    def get(y: int, x: int) -> str:
        return ALIVE if rows[y % height][x % width] else EMPTY

    def get_owner(y: int, x: int) -> int:
        return owner_of(rows[y % height][x % width])

    def set_(y: int, x: int, state: str, owner: int) -> None:
        out[y][x] = player_code(owner) if state == ALIVE else 0

    for y in range(height):
        for x in range(width):
            step_cell(y, x, get, get_owner, set_, rule)
    return Grid.from_codes(out)


def simulate_many(grid: Grid, generations: int, rule: Rule = CONWAY) -> Grid:
    """``simulate`` applied ``generations`` times."""
    for _ in range(generations):
        grid = simulate(grid, rule)
    return grid


def step_tile_reference(padded: Codes, rule: Rule = CONWAY) -> Codes:
    """The inner cells' next generation of a tile with a one-cell halo, cell by cell.

    The per-cell twin of ``shared.kernel.step_tile``: ``count_neighbors`` and
    ``game_logic`` on every cell, reading the halo instead of wrapping.
    """
    rows = padded.tolist()
    h, w = len(rows) - 2, len(rows[0]) - 2
    out = np.zeros((h, w), dtype=padded.dtype)

    def get(y: int, x: int) -> str:
        return ALIVE if rows[y + 1][x + 1] else EMPTY

    def get_owner(y: int, x: int) -> int:
        return owner_of(rows[y + 1][x + 1])

    def set_(y: int, x: int, state: str, owner: int) -> None:
        out[y, x] = player_code(owner) if state == ALIVE else 0

    for y in range(h):
        for x in range(w):
            step_cell(y, x, get, get_owner, set_, rule)
    return out
