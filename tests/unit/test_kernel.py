"""The vectorised game_logic equals the reference, cell for cell, owners included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from shared import kernel
from shared.grid import Grid
from shared.kernel import rule_table, step_grid, step_tile
from shared.life import simulate, step_tile_reference
from shared.rules import Rule, parse_rule

RULES = ["B3/S23", "B36/S23", "B2/S", "B3678/S34678", "B1357/S1357", "B3/S012345678"]

worlds = arrays(np.uint8, st.tuples(st.integers(1, 14), st.integers(1, 14)),
                elements=st.sampled_from([0, 0, 0, 1, 1, 2, 3, 4, 200]))


@settings(max_examples=150, deadline=None)
@given(worlds, st.sampled_from(RULES), st.integers(1, 6))
def test_step_grid_equals_reference(codes: np.ndarray, rule_text: str,
                                    generations: int) -> None:
    rule = parse_rule(rule_text)
    expected = actual = Grid.from_codes(codes)
    for _ in range(generations):
        expected = simulate(expected, rule)
        actual = step_grid(actual, rule)
        assert actual == expected


@pytest.mark.parametrize("rule_text", RULES)
def test_larger_random_worlds_many_generations(rule_text: str) -> None:
    rng = np.random.default_rng(7)
    rule = parse_rule(rule_text)
    grid = Grid.from_codes(rng.choice([0, 1, 2, 3, 4], size=(37, 53), p=[.55, .15, .1, .1, .1]))
    expected = grid
    for _ in range(25):
        expected = simulate(expected, rule)
        grid = step_grid(grid, rule)
    assert grid == expected


@settings(max_examples=100, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(3, 10), st.integers(3, 10)),
              elements=st.sampled_from([0, 0, 1, 2, 3, 9])), st.sampled_from(RULES))
def test_tile_kernels_agree(padded: np.ndarray, rule_text: str) -> None:
    rule = parse_rule(rule_text)
    assert np.array_equal(step_tile(padded, rule_table(rule)),
                          step_tile_reference(padded, rule))


def test_three_way_tie_is_neutral_and_majority_wins() -> None:
    padded = np.zeros((5, 5), dtype=np.uint8)
    padded[1, 1], padded[1, 3], padded[3, 2] = 2, 3, 4  # parents of (2, 2): a 3-way tie
    out = step_tile(padded, rule_table(parse_rule("B3/S23")))
    assert out[1, 1] == 1
    padded[3, 2] = 3
    out = step_tile(padded, rule_table(parse_rule("B3/S23")))
    assert out[1, 1] == 3


rules = st.builds(lambda b, s: parse_rule("B" + "".join(map(str, sorted(b))) + "/S"
                                          + "".join(map(str, sorted(s)))),
                  st.sets(st.integers(1, 8)), st.sets(st.integers(0, 8)))


@settings(max_examples=200, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(3, 12), st.integers(3, 12)),
              elements=st.sampled_from([0, 0, 1])),
       arrays(np.uint8, st.tuples(st.integers(3, 12), st.integers(3, 12)),
              elements=st.sampled_from([0, 0, 1, 2, 3])), rules)
def test_any_rule_neutral_or_owned_equals_reference(
        neutral: np.ndarray, owned: np.ndarray, rule: Rule) -> None:
    """Every Life-like rule, whether applied as comparisons or as a table lookup."""
    for padded in (neutral, owned):
        assert np.array_equal(step_tile(padded, rule_table(rule)),
                              step_tile_reference(padded, rule)), str(rule)


@pytest.mark.parametrize("rule_text", ["B3/S23", "B36/S23"])
def test_wide_owners_in_blocks_and_strided_tiles_equal_reference(
        rule_text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Births found by flat index (``_vote_births``) in a wide world of many owners,
    a tile cut in blocks of rows, and a tile that is a strided view (its rows longer
    than the tile), all as the reference says."""
    monkeypatch.setattr(kernel, "BLOCK_CELLS", 200)  # blocks of a few rows
    rule = parse_rule(rule_text)
    rng = np.random.default_rng(11)
    alive = rng.random((40, 61)) < 0.35
    codes = np.where(alive, rng.choice([1, 2, 300, 301, 40000], size=alive.shape), 0)
    wide = codes.astype(np.uint16)
    assert np.array_equal(step_tile(wide, rule_table(rule)),
                          step_tile_reference(wide, rule))
    strided = wide[:, 5:50]  # a view: the padded tile is not contiguous
    assert not strided.flags.c_contiguous
    assert np.array_equal(step_tile(strided, rule_table(rule)),
                          step_tile_reference(strided, rule))
