"""The terminal client's pure parts: where the jump keys go, and the colours."""

from __future__ import annotations

import colorsys

import numpy as np
from rich.color import Color

from client.worldview import next_spot, open_spots, own_spots
from shared.colours import CURSOR, EMPTY_BG, NEUTRAL, PLAYERS, WARNING, colour
from shared.grid import FIRST_PLAYER_CODE, NEUTRAL_CODE


def test_open_spots_finds_the_empty_place_first() -> None:
    rng = np.random.default_rng(1)
    codes = (rng.random((96, 96)) < 0.4).astype(np.uint8)
    codes[64:96, 0:32] = 0  # open, across nothing: the lower-left corner
    y, x = open_spots(codes, (0, 48))[0]
    assert 64 <= y < 96 and 0 <= x < 32
    assert not codes[max(0, y - 4):y + 4, max(0, x - 4):x + 4].any()


def test_open_spots_wrap_on_the_torus_and_prefer_the_nearest() -> None:
    codes = np.zeros((64, 64), dtype=np.uint8)  # all open: the nearest block wins
    assert open_spots(codes, (60, 2))[0] == (60, 4)
    codes[:, :] = 1
    codes[0:12, 0:4] = 0
    codes[0:12, 60:64] = 0  # an open place across the seam of the torus
    codes[52:64, 0:4] = 0
    codes[52:64, 60:64] = 0
    assert open_spots(codes, (32, 32))[0] in {(4, 4), (4, 60), (60, 4), (60, 60)}


def test_own_spots_and_next_spot_cycle_through_the_players_groups() -> None:
    codes = np.zeros((40, 40), dtype=np.uint8)
    mine = FIRST_PLAYER_CODE
    codes[2:4, 2:4] = mine
    codes[25:28, 20] = mine
    codes[10, 10] = NEUTRAL_CODE
    spots = own_spots(codes, mine)
    assert len(spots) == 2 and all(codes[s] == mine for s in spots)
    first = next_spot(spots, (0, 0))
    assert first is not None and first[0] < 4
    second = next_spot(spots, first)
    assert second is not None and second[0] >= 25
    assert next_spot(spots, second) == first  # around again
    assert own_spots(codes, mine + 1) == [] and next_spot([], (0, 0)) is None


def _hsv(index: int) -> tuple[float, float, float]:
    r, g, b = Color.from_ansi(index).get_truecolor()
    return colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)


def test_players_colours_are_saturated_distinct_and_apart_from_the_special_ones() -> None:
    assert len(set(PLAYERS)) == len(PLAYERS) >= 24
    assert {CURSOR, WARNING, NEUTRAL, EMPTY_BG}.isdisjoint(PLAYERS)
    for index in PLAYERS:
        _, saturation, value = _hsv(index)
        assert saturation == 1.0 and value == 1.0, index  # no grey, nothing near white
    hues = [_hsv(c)[0] * 360 for c in PLAYERS[:8]]
    # the first eight players (those of a small game) are at least 20 degrees apart
    for i, a in enumerate(hues):
        for b in hues[i + 1:]:
            assert min(abs(a - b), 360 - abs(a - b)) >= 20
    assert colour(0) == EMPTY_BG and colour(1) == NEUTRAL
    assert colour(2) == PLAYERS[0] and colour(2 + len(PLAYERS)) == PLAYERS[0]
