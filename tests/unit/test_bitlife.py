"""The bit-parallel kernel equals the reference, and its packing equals ``pack_bits``.

Neutral worlds only (the kernel's domain): random tiles of odd sizes with their halos
as a worker gets them, whole tori stepped for many generations, every kind of rule the
server accepts (random B/S sets, B0 excepted: ``shared.rules`` refuses it), known
patterns. The packing is checked against ``np.packbits`` for widths that are not
multiples of 8 or 64, both ways, from any column.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from shared import bitlife
from shared.grid import Grid, pack_bits, unpack_bits
from shared.kernel import rule_table, step_tile
from shared.life import simulate, step_tile_reference
from shared.rules import CONWAY, Rule, parse_rule

rules = st.builds(lambda b, s: parse_rule("B" + "".join(map(str, sorted(b))) + "/S"
                                          + "".join(map(str, sorted(s)))),
                  st.sets(st.integers(1, 8)), st.sets(st.integers(0, 8)))
MANY_TERMS = ["B3/S23", "B36/S23", "B2/S", "B3678/S34678", "B1357/S1357", "B3/S012345678",
              "B12345678/S012345678", "B1/S8", "B8/S", "B45678/S2345", "B2345678/S"]


def soup(shape: tuple[int, int], fill: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < fill).astype(np.uint8)


def step_via_wire(padded: np.ndarray, rule: Rule) -> np.ndarray:
    """What a worker does with a packed batch, unpacked to compare."""
    h, w = padded.shape[0] - 2, padded.shape[1] - 2
    return unpack_bits(bitlife.step_wire(pack_bits(padded), h, w, rule), (h, w))


@settings(max_examples=300, deadline=None)
@given(st.integers(3, 150), st.integers(3, 150), st.floats(0.0, 1.0), st.integers(0, 99),
       rules)
def test_tiles_with_halos_equal_the_kernels(height: int, width: int, fill: float,
                                            seed: int, rule: Rule) -> None:
    padded = soup((height, width), fill, seed)
    expected = step_tile(padded, rule_table(rule))
    assert np.array_equal(step_via_wire(padded, rule), expected), str(rule)
    assert np.array_equal(bitlife.step_cells(padded, rule), expected), str(rule)


@settings(max_examples=150, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(3, 12), st.integers(3, 12)),
              elements=st.sampled_from([0, 0, 1])), rules)
def test_small_tiles_equal_the_reference(padded: np.ndarray, rule: Rule) -> None:
    expected = step_tile_reference(padded, rule)
    assert np.array_equal(step_via_wire(padded, rule), expected), str(rule)
    assert np.array_equal(bitlife.step_cells(padded, rule), expected), str(rule)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 90), st.integers(0, 99), rules,
       st.integers(1, 4))
def test_tori_equal_simulate(height: int, width: int, seed: int, rule: Rule,
                             generations: int) -> None:
    """A whole torus: its ``Grid.padded`` world stepped again and again (heights from 1,
    where a cell's rows above and below are its own)."""
    grid = Grid.from_codes(soup((height, width), 0.4, seed))
    expected = grid
    for _ in range(generations):
        expected = simulate(expected, rule)
        grid = Grid.from_codes(bitlife.step_cells(grid.padded(), rule))
        assert grid == expected, str(rule)


@pytest.mark.parametrize("rule_text", MANY_TERMS)
@pytest.mark.parametrize("shape", [(1, 1), (1, 130), (57, 1), (37, 53), (64, 64),
                                   (65, 129), (100, 190), (8, 8)])
def test_named_rules_many_generations(rule_text: str, shape: tuple[int, int]) -> None:
    rule = parse_rule(rule_text)
    grid = Grid.from_codes(soup(shape, 0.35, 7))
    expected = grid
    for _ in range(12):
        expected = Grid(grid.height, grid.width, step_tile(expected.padded(),
                                                           rule_table(rule)))
        grid = Grid.from_codes(bitlife.step_cells(grid.padded(), rule))
        assert grid == expected


def test_glider_crosses_the_torus_and_comes_back() -> None:
    """A glider moves one cell diagonally every 4 generations: on a 10x70 torus (a width
    not a multiple of 8) it is back where it started after 4 * 70 generations."""
    grid = Grid(10, 70)
    for y, x in ((0, 1), (1, 2), (2, 0), (2, 1), (2, 2)):
        grid.set(y, x, "*")
    start = grid
    wire = bytes(pack_bits(start.codes))
    for _ in range(4 * 70):
        grid = Grid.from_codes(bitlife.step_cells(grid.padded(), CONWAY))
        assert grid.population == 5
    assert grid == start
    assert bitlife.to_wire(bitlife.from_cells(grid.codes), 70) == wire


def test_blinker_and_block() -> None:
    grid = Grid(6, 67)
    for y, x in ((3, 62), (3, 63), (3, 64), (0, 0), (0, 1), (1, 0), (1, 1)):
        grid.set(y, x, "*")
    once = Grid.from_codes(bitlife.step_cells(grid.padded(), CONWAY))
    assert once == simulate(grid)
    assert sorted((y, x) for y, x, _ in once.live_cells()) == [
        (0, 0), (0, 1), (1, 0), (1, 1), (2, 63), (3, 63), (4, 63)]
    assert Grid.from_codes(bitlife.step_cells(once.padded(), CONWAY)) == grid


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 140), st.integers(1, 300), st.integers(0, 99), st.integers(0, 70))
def test_wire_and_words_both_ways(height: int, width: int, seed: int, start: int) -> None:
    """``from_wire`` and ``to_wire`` are ``pack_bits`` read and written as words, from
    any column; the pad bits of a row's last word are zero."""
    cells = soup((height, width), 0.5, seed)
    wire = bytes(pack_bits(cells))
    plane = bitlife.from_wire(wire, height, width)
    assert np.array_equal(plane, bitlife.from_cells(cells))
    assert np.array_equal(bitlife.to_cells(plane, width), cells)
    assert bitlife.to_wire(plane, width) == wire
    start = min(start, width - 1)
    assert bitlife.to_wire(plane, width - start, start=start) == bytes(
        pack_bits(cells[:, start:]))
    tail = (plane[:, -1] & ~bitlife._tail_mask(width))
    assert not tail.any()


@pytest.mark.parametrize("rows_a_phase", [0, 64])
def test_from_wire_strided_and_gathered_agree(rows_a_phase: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Tall planes are read by strided views, short ones by a gather: the same words."""
    monkeypatch.setattr(bitlife, "MIN_ROWS_A_PHASE", rows_a_phase)
    for height, width in ((130, 64), (300, 66), (97, 1026), (1, 5), (70, 129)):
        cells = soup((height, width), 0.5, height)
        assert np.array_equal(bitlife.from_wire(pack_bits(cells), height, width),
                              bitlife.from_cells(cells))


def test_bit_order_is_packbits_big_endian() -> None:
    """Cell 0 of a row is the most significant bit of its first word."""
    cells = np.zeros((1, 70), dtype=np.uint8)
    cells[0, 0] = cells[0, 65] = 1
    plane = bitlife.from_cells(cells)
    assert plane.tolist() == [[1 << 63, 1 << 62]]


def test_a_plane_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError):
        bitlife.step_words(np.zeros((4, 2), dtype=np.uint64), 64)
