"""A neutral world kept packed in the server (issue 16, parts 3 and 4), without sockets.

The bands of a packed torus (whole rows of words, the columns wrapping in the kernel)
equal the reference ``simulate`` for every Life-like rule on odd sizes, however the
world is cut; a worker answers a ``rows`` batch exactly with each of its kernels; a
packed ``Grid`` unpacks to the same codes, read-only; a packed fan-in target turns into
codes when a player writes; the frames' changes found from words are those found from
cells.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.generation import board_of, made
from server.publisher import changes
from server.verify import LocalKernel
from server.worker.process import Worker, WorkerConfig
from shared import bitlife, protocol
from shared.errors import ProtocolError
from shared.grid import Grid, LockingGrid, as_payload, pack_words, unpack_words
from shared.life import simulate
from shared.protocol import Kind
from shared.rules import Rule, parse_rule

rules = st.builds(lambda b, s: parse_rule("B" + "".join(map(str, sorted(b))) + "/S"
                                          + "".join(map(str, sorted(s)))),
                  st.sets(st.integers(1, 8)), st.sets(st.integers(0, 8)))


def soup(shape: tuple[int, int], fill: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < fill).astype(np.uint8)


def step_in_bands(world: np.ndarray, width: int, cuts: list[int], rule: Rule) -> np.ndarray:
    """A packed torus stepped as the engine does it: band after band (``cuts``: the
    rows each band starts at), each from its rows and the rows around them, on the wire."""
    height = world.shape[0]
    starts = sorted({0, *(c % height for c in cuts)})
    parts = []
    for y, end in zip(starts, [*starts[1:], height], strict=True):
        band = bitlife.band_payload(bitlife.rows_of(world, y, end - y))
        parts.append(bitlife.step_band(as_payload(band), end - y, width, rule))
    return np.concatenate(parts)


@settings(max_examples=120, deadline=None)
@given(st.integers(1, 40), st.integers(1, 200), st.floats(0.0, 1.0), st.integers(0, 99),
       rules, st.lists(st.integers(0, 40), max_size=4), st.integers(1, 3))
def test_bands_of_a_packed_torus_equal_simulate(height: int, width: int, fill: float,
                                                seed: int, rule: Rule, cuts: list[int],
                                                generations: int) -> None:
    grid = Grid.from_codes(soup((height, width), fill, seed))
    world = pack_words(grid.codes)
    for _ in range(generations):
        grid = simulate(grid, rule)
        world = step_in_bands(world, width, cuts, rule)
        assert np.array_equal(unpack_words(world, width), grid.codes), str(rule)
        assert bitlife.population(world) == grid.population
        assert not (world[:, -1] & ~bitlife._tail_mask(width)).any(), "bits past the width"


@pytest.mark.parametrize("rule", ["B3/S23", "B36/S23", "B2/S", "B1357/S1357"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 64), (3, 65), (7, 129), (33, 200)])
def test_the_torus_wraps_in_both_directions(rule: str, shape: tuple[int, int]) -> None:
    """One band of the whole world: its rows above and below are its own last and first."""
    grid = Grid.from_codes(soup(shape, 0.45, shape[1]))
    world = pack_words(grid.codes)
    for _ in range(5):
        grid = simulate(grid, parse_rule(rule))
        world = step_in_bands(world, shape[1], [], parse_rule(rule))
        assert np.array_equal(unpack_words(world, shape[1]), grid.codes)


def rows_batch(world: np.ndarray, y: int, h: int, width: int, rule: str
               ) -> protocol.Message:
    band = bitlife.band_payload(bitlife.rows_of(world, y, h))
    msg = protocol.message(Kind.BATCH, [as_payload(band)], gen=1, batch=0, attempt=0,
                           y=y, x=0, h=h, w=width, rule=rule, rows=True)
    return protocol.decode(protocol.encode(msg))  # as the worker receives it


@pytest.mark.parametrize("kernel", ["bits", "numpy", "python"])
@pytest.mark.parametrize("rule", ["B3/S23", "B36/S23", "B45678/S2345"])
def test_a_worker_answers_a_rows_batch_exactly(kernel: str, rule: str) -> None:
    height, width, y, h = 23, 77, 5, 9
    grid = Grid.from_codes(soup((height, width), 0.4, 3))
    world = pack_words(grid.codes)
    answer = Worker(WorkerConfig(connect="tcp://127.0.0.1:1", kernel=kernel)).compute(
        rows_batch(world, y, h, width, rule))
    assert answer.kind is Kind.RESULT and answer["rows"] is True
    assert protocol.decode(protocol.encode(answer)).kind is Kind.RESULT  # sizes check
    got = unpack_words(bitlife.band_from_wire(answer.payloads[0], h, width), width)
    expected = simulate(grid, parse_rule(rule)).codes[y:y + h]
    assert np.array_equal(got, expected)
    here = LocalKernel().compute(bitlife.band_payload(bitlife.rows_of(world, y, h)), h,
                                 width, rule, packed=False, rows=True)
    assert np.array_equal(unpack_words(here, width), expected)


def test_a_rows_payload_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ProtocolError):  # 4 rows of 2 words are 64 bytes, not 24
        protocol.message(Kind.BATCH, [b"\0" * 8 * 3], gen=1, batch=0, attempt=0, y=0,
                         x=0, h=2, w=65, rule="B3/S23", rows=True)


def test_stray_bits_past_the_width_never_count() -> None:
    raw = np.full((2, 2), np.uint64(0xFFFF_FFFF_FFFF_FFFF))
    plane = bitlife.band_from_wire(as_payload(raw), 2, 70)
    assert bitlife.population(plane) == 2 * 70


def test_a_packed_grid_is_its_codes_read_only() -> None:
    codes = soup((37, 130), 0.4, 1)
    grid = Grid(37, 130, bits=pack_words(codes))
    assert grid.packed and grid.population == int(codes.sum())
    assert np.array_equal(grid.codes, codes) and grid.packed  # the bits stay
    with pytest.raises(ValueError):
        grid.codes[0, 0] = 1
    assert grid.frozen() is grid
    assert board_of(grid).population == int(codes.sum())
    assert board_of(grid).cells(1) == 0
    with pytest.raises(ValueError):
        Grid(37, 130, bits=np.zeros((37, 2), np.uint64))  # 130 cells need 3 words


def test_a_packed_target_turns_into_codes_when_a_player_writes() -> None:
    codes = soup((20, 70), 0.4, 2)
    bits = pack_words(codes)
    target = LockingGrid(20, 70, bits=np.empty_like(bits))
    assert target.paste_once(0, 0, 0, bits[:12]) and target.paste_once(1, 12, 0, bits[12:])
    assert not target.paste_once(1, 12, 0, bits[12:] ^ np.uint64(1))  # once only
    assert target.applied() == 2
    with pytest.raises(ValueError):
        target.paste_once(2, 3, 5, bits[:2])  # not whole rows
    grid = made(target)
    assert grid.packed and np.array_equal(grid.codes, codes)
    target = LockingGrid(20, 70, bits=bits.copy())
    target.write(np.array([0]), np.array([0]), 3)  # a player's cell: codes from now on
    assert not target.packed
    expected = codes.copy()
    expected[0, 0] = 3
    grid = made(target)
    assert not grid.packed and np.array_equal(grid.codes, expected)
    assert board_of(grid).cells(2) == 1


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(1, 150), st.integers(0, 99), st.floats(0.0, 0.5))
def test_changes_from_words_are_changes_from_cells(height: int, width: int, seed: int,
                                                   churn: float) -> None:
    before = soup((height, width), 0.4, seed)
    flips = soup((height, width), churn, seed + 1)
    after = before ^ flips
    packed = changes(Grid(height, width, bits=pack_words(before)),
                     Grid(height, width, bits=pack_words(after)))
    plain = changes(Grid(height, width, before), Grid(height, width, after))
    assert packed[0].dtype == np.uint32
    assert np.array_equal(packed[0], plain[0]) and np.array_equal(packed[1], plain[1])
    assert np.array_equal(plain[0], np.flatnonzero(flips))
