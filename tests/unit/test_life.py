"""The reference: the book's functions, and known patterns on a torus."""

from __future__ import annotations

import numpy as np

from shared.grid import ALIVE, EMPTY, Grid, LockingGrid
from shared.life import birth_owner, count_neighbors, game_logic, simulate, simulate_many
from shared.rle import parse_rle
from shared.rules import parse_rule
from tests.conftest import PATTERNS


def place(height: int, width: int, name: str, top: int, left: int) -> Grid:
    grid = Grid(height, width)
    pattern = parse_rle((PATTERNS / f"{name}.rle").read_text())
    grid.codes[top:top + pattern.height, left:left + pattern.width] = pattern.codes
    return grid


def test_grid_wraps_like_the_book() -> None:
    grid = Grid(3, 4)
    grid.set(-1, -1, ALIVE, 2)
    assert grid.get(2, 3) == ALIVE and grid.get(5, 7) == ALIVE
    assert grid.owner(2, 3) == 2
    assert grid.get(0, 0) == EMPTY
    assert count_neighbors(0, 0, grid.get) == 1


def test_game_logic_is_conways_by_default() -> None:
    assert game_logic(ALIVE, 1) == EMPTY
    assert game_logic(ALIVE, 2) == ALIVE
    assert game_logic(ALIVE, 4) == EMPTY
    assert game_logic(EMPTY, 3) == ALIVE
    assert game_logic(EMPTY, 6, parse_rule("B36/S23")) == ALIVE


def test_birth_owner_majority_and_ties() -> None:
    assert birth_owner([1, 1, 2]) == 1
    assert birth_owner([1, 2, 3]) == 0
    assert birth_owner([0, 0, 5]) == 0
    assert birth_owner([4, 4, 0, 0, 4, 2]) == 4
    assert birth_owner([4, 4, 2, 2]) == 0


def test_blinker_has_period_two() -> None:
    start = place(5, 5, "blinker", 2, 1)
    one = simulate(start)
    assert one != start
    assert simulate(one) == start


def test_block_stays() -> None:
    start = place(4, 4, "block", 1, 1)
    assert simulate(start) == start


def test_glider_returns_after_64_generations_on_16x16() -> None:
    start = place(16, 16, "glider", 0, 0)
    for n in (1, 4, 63):
        assert simulate_many(start, n) != start
    assert simulate_many(start, 64) == start


def test_survivors_keep_owner_and_births_take_majority() -> None:
    grid = Grid(6, 6)
    for x in range(1, 4):
        grid.set(2, x, ALIVE, 1 if x < 3 else 2)  # blinker: two of player 1, one of 2
    nxt = simulate(grid)
    assert nxt.owner(2, 2) == 1  # the survivor
    assert nxt.owner(1, 2) == 1 and nxt.owner(3, 2) == 1  # born of 1, 1, 2


def test_locking_grid_applies_a_batch_once() -> None:
    grid = LockingGrid(4, 4)
    tile = np.ones((2, 2), dtype=np.uint8)
    assert grid.paste_once(7, 1, 1, tile)
    assert not grid.paste_once(7, 0, 0, tile)
    assert grid.population == 4 and grid.applied() == 1


def test_padded_wraps_like_np_pad() -> None:
    rng = np.random.default_rng(5)
    for h, w in [(1, 1), (1, 2), (2, 1), (3, 2), (5, 7), (16, 9)]:
        codes = rng.integers(0, 5, size=(h, w), dtype=np.uint8)
        grid = Grid.from_codes(codes)
        for halo in (1, 2):
            assert np.array_equal(grid.padded(halo), np.pad(codes, halo, mode="wrap"))
        assert np.array_equal(grid.frozen().padded(), np.pad(codes, 1, mode="wrap"))
