"""Wide worlds without sockets: owner codes above 255 in the grid, the kernel, the wire
format and the client's colours."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.worldview import SAME, WorldView
from server.players.board import Board
from shared import protocol
from shared.colours import colour
from shared.errors import ProtocolError
from shared.grid import (
    MAX_CODE,
    MAX_PLAYER,
    NARROW,
    WIDE,
    Grid,
    LockingGrid,
    code_of,
    codes_from,
    codes_payload,
    narrowest,
)
from shared.kernel import rule_table, step_tile
from shared.life import simulate, step_tile_reference
from shared.protocol import Kind
from shared.rules import CONWAY, parse_rule


def test_a_grid_is_narrow_until_a_code_above_255_is_written() -> None:
    grid = LockingGrid(4, 4)
    grid.set(0, 0, "*", 254)
    assert not grid.wide and grid.codes.dtype == NARROW
    grid.fill_empty(np.array([1]), np.array([1]), 300)
    assert grid.wide and grid.owner(1, 1) == 299 and grid.owner(0, 0) == 254
    assert narrowest(grid.codes) is grid.codes  # 300 is still there
    grid.recolour(300, 1)
    assert narrowest(grid.codes).dtype == NARROW
    grid = LockingGrid(4, 4, narrowest(grid.codes))
    assert grid.owner(0, 0) == 254 and grid.get(1, 1) == "*"
    # a wide tile pasted into a narrow grid widens it first
    target = LockingGrid(4, 4)
    assert target.paste_once(0, 0, 0, np.full((2, 2), MAX_CODE, dtype=WIDE))
    assert target.wide and int(target.codes[1, 1]) == MAX_CODE


def test_codes_and_owners_have_their_bounds() -> None:
    assert code_of("*", MAX_PLAYER) == MAX_CODE == 65535
    with pytest.raises(ValueError):
        code_of("*", MAX_PLAYER + 1)
    assert Grid.from_codes([[0, 255]]).codes.dtype == NARROW
    assert Grid.from_codes([[0, 256]]).codes.dtype == WIDE
    with pytest.raises(ValueError):
        Grid.from_codes([[0, MAX_CODE + 1]])
    with pytest.raises(ValueError):
        Grid(2, 2, np.zeros((2, 2), dtype=np.int32))


def test_wide_codes_travel_little_endian_and_come_back() -> None:
    codes = np.array([[0, 1, 256], [65535, 2, 0x1234]], dtype=WIDE)
    wide, payload = codes_payload(codes)
    assert wide and bytes(payload)[4:6] == b"\x00\x01" and bytes(payload)[-2:] == b"\x34\x12"
    assert np.array_equal(codes_from(payload, True, (2, 3)), codes)
    narrow = narrowest(np.array([[0, 1, 255]], dtype=WIDE))
    assert narrow.dtype == NARROW and codes_payload(narrow)[0] is False


def test_frames_deltas_and_chunks_say_how_wide_their_codes_are() -> None:
    info = dict(population=1, ms=1.0, workers=1, rule="B3/S23")
    wide_frame = protocol.message(Kind.FRAME, [b"\0" * 12], gen=1, h=2, w=3, wide=True,
                                  **info)
    protocol.validate(wide_frame)
    with pytest.raises(ProtocolError, match="payload"):
        protocol.validate(protocol.message(Kind.FRAME, [b"\0" * 6], gen=1, h=2, w=3,
                                           wide=True, **info))
    protocol.validate(protocol.message(Kind.DELTA, [b"\0" * 8, b"\0" * 4], gen=1, h=2, w=3,
                                       count=2, wide=True, **info))
    protocol.validate(protocol.message(Kind.CHUNK_DELTA, [b"\0" * 4, b"\0" * 4], gen=1,
                                       cy=0, cx=0, h=2, w=3, count=2, wide=True))
    with pytest.raises(ProtocolError, match="payload"):
        protocol.validate(protocol.message(Kind.CHUNK_DELTA, [b"\0" * 4, b"\0" * 2], gen=1,
                                           cy=0, cx=0, h=2, w=3, count=2, wide=True))
    protocol.validate(protocol.message(Kind.BATCH, [b"\0" * 32], gen=0, batch=0, attempt=0,
                                       y=0, x=0, h=2, w=2, rule="B3/S23", wide=True))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 12), w=st.integers(1, 12),
       rule=st.sampled_from(["B3/S23", "B36/S23", "B2/S", "B1357/S1357"]),
       owners=st.integers(1, 6))
def test_the_kernel_on_wide_tiles_equals_the_reference(seed: int, h: int, w: int,
                                                       rule: str, owners: int) -> None:
    """Owners drawn among a few codes near 65535 (so that births have majorities and
    ties): the vectorised step equals the per-cell reference, and stays wide."""
    rng = np.random.default_rng(seed)
    palette = np.array([0, 1, *(MAX_CODE - k for k in range(owners))], dtype=WIDE)
    padded = palette[rng.integers(0, len(palette), size=(h + 2, w + 2))] * (
        rng.random((h + 2, w + 2)) < 0.45)
    padded = padded.astype(WIDE)
    parsed = parse_rule(rule)
    out = step_tile(padded, rule_table(parsed))
    assert out.dtype == WIDE
    assert np.array_equal(out, step_tile_reference(padded, parsed))


def test_a_wide_world_steps_as_the_reference_and_counts_every_owner() -> None:
    rng = np.random.default_rng(5)
    codes = rng.choice(np.array([0, 0, 1, 300, 301, 60000], dtype=WIDE), size=(24, 24))
    grid = Grid(24, 24, codes)
    nxt = Grid(24, 24, step_tile(grid.padded(), rule_table(CONWAY)))
    assert nxt == simulate(grid)
    board = Board.of(nxt.codes)
    assert board.cells(299) == int(np.count_nonzero(nxt.codes == 300))
    assert board.cells(MAX_PLAYER) == 0 and Board.of(np.zeros((2, 2), NARROW)).cells(400) == 0


def test_the_client_colours_every_code_and_sets_its_own_apart() -> None:
    view = WorldView()
    view.set_own(1000)
    lut = view._lut
    assert len(lut) == MAX_CODE + 1
    assert lut[1000] == colour(1000) and lut[0] == colour(0) and lut[1] == colour(1)
    twin = 1000 + 29  # the same hue: colours repeat after 29 players
    assert colour(twin) == colour(1000) and lut[twin] == SAME
    assert lut[MAX_CODE] in (colour(MAX_CODE), SAME)


def test_a_tile_with_its_halo_is_the_padded_worlds_slice() -> None:
    """``Grid.tile`` (cut from the codes, wrapping at the edges) equals the slice of the
    whole padded world, for tiles at every edge and as wide or high as the world."""
    rng = np.random.default_rng(2)
    for dtype in (NARROW, WIDE):
        grid = Grid(13, 17, rng.integers(0, 300 if dtype == WIDE else 200,
                                         size=(13, 17)).astype(dtype))
        padded = grid.padded()
        for y, x, h, w in [(0, 0, 13, 17), (0, 0, 1, 1), (12, 16, 1, 1), (5, 0, 3, 17),
                           (0, 4, 13, 5), (11, 15, 2, 2), (3, 3, 4, 4)]:
            tile = grid.tile(y, x, h, w)
            assert tile.flags.c_contiguous and tile.dtype == dtype
            assert np.array_equal(tile, padded[y:y + h + 2, x:x + w + 2]), (y, x, h, w)
    with pytest.raises(ValueError):
        grid.tile(0, 0, 14, 1)
