"""Shields of fresh placements without sockets: zones on the torus, the zone's own
step, and the rules for placements and decisions near a live shield."""

from __future__ import annotations

import numpy as np
import pytest

from server.players.board import Board
from server.players.decisions import DecisionRound, neighbour_counts
from server.players.placing import placement_cells
from server.players.registry import PlayerRegistry, RegistryConfig, Request
from server.players.shields import (
    MARGIN,
    Shields,
    evolve_zone,
    overlap,
    rows_cols,
    span,
    zone_neighbours,
    zone_of,
)
from shared.errors import NotAllowed
from shared.grid import Grid, LockingGrid
from shared.kernel import rule_table, step_grid
from shared.library import library
from shared.protocol import MAX_SHIELDS, Kind, Message
from shared.rules import CONWAY

GLIDER = library()["glider"][0]
BLOCK = library()["block"][0]


def cells(rle: str, y: int, x: int, h: int = 32, w: int = 32) -> np.ndarray:
    return placement_cells(rle, None, y, x, 0, False, h, w)


def test_span_is_the_shortest_arc_on_the_circle() -> None:
    assert span([3, 4, 5], 10) == (3, 3)
    assert span([9, 0, 1], 10) == (9, 3)  # across the seam
    assert span([7], 10) == (7, 1)
    assert span([0, 5], 10) == (5, 6)     # two gaps as large: after the first
    assert span(range(10), 10) == (1, 10)  # the whole circle (its start is any)


def test_zones_grow_by_the_margin_and_wrap() -> None:
    assert MARGIN == 2
    assert zone_of(cells(GLIDER, 10, 10), 32, 32) == (8, 8, 7, 7)
    assert zone_of(cells(GLIDER, 31, 31), 32, 32) == (29, 29, 7, 7)  # wraps both ways
    assert zone_of(cells(GLIDER, 0, 0, 6, 40), 6, 40) == (0, 38, 6, 7)  # whole height
    a, b = (29, 29, 7, 7), (3, 3, 2, 2)  # a covers rows and columns 29..31 and 0..3
    assert overlap(a, b, 32, 32) and overlap(b, a, 32, 32)
    assert not overlap(a, (4, 0, 3, 3), 32, 32) and not overlap(a, (0, 4, 3, 3), 32, 32)
    rows, cols = rows_cols(a, 32, 32)
    assert rows.tolist() == [29, 30, 31, 0, 1, 2, 3] and cols.tolist() == rows.tolist()


def glider_beside_a_block() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Alice's (code 2) glider at 10,10 heading for Bob's (code 3) block just outside
    the glider's zone."""
    codes = np.zeros((32, 32), np.uint8)
    codes[15:17, 13:15] = 3
    glider = cells(GLIDER, 10, 10)
    codes[glider[:, 0], glider[:, 1]] = 2
    return codes, zone_of(glider, 32, 32)


def test_a_zone_evolves_as_if_alone() -> None:
    codes, zone = glider_beside_a_block()
    table = rule_table(CONWAY)
    alone = np.where(codes == 2, codes, 0).astype(np.uint8)
    rows, cols = rows_cols(zone, 32, 32)
    world, shielded, by_itself = Grid(32, 32, codes.copy()), codes.copy(), Grid(32, 32, alone)
    for _ in range(8):
        nxt = step_grid(Grid(32, 32, shielded), CONWAY).codes
        nxt[np.ix_(rows, cols)] = evolve_zone(shielded, zone, table)
        shielded = nxt
        world, by_itself = step_grid(world, CONWAY), step_grid(by_itself, CONWAY)
    assert not np.array_equal(world.codes == 2, by_itself.codes == 2)  # the block broke it
    assert np.array_equal(shielded == 2, by_itself.codes == 2)          # not shielded
    # Counting neighbours in the zone counts only the zone's cells.
    counts = zone_neighbours(codes, zone)
    inside = np.zeros_like(codes)
    inside[np.ix_(rows, cols)] = codes[np.ix_(rows, cols)]
    assert np.array_equal(counts, neighbour_counts(inside)[np.ix_(rows, cols)])


def test_a_zone_that_covers_an_axis_wraps_on_it() -> None:
    """A zone as tall as the world sees the torus in that direction: a blinker across
    the seam of a 4-row world evolves as the rule says."""
    codes = np.zeros((4, 16), np.uint8)
    codes[[3, 0, 1], 5] = 2
    zone = zone_of(np.argwhere(codes), 4, 16)
    assert zone[2] == 4
    rows, cols = rows_cols(zone, 4, 16)
    expected = step_grid(Grid(4, 16, codes.copy()), CONWAY).codes
    assert np.array_equal(evolve_zone(codes, zone, rule_table(CONWAY)),
                          expected[np.ix_(rows, cols)])


def registry(protect: int = 8, **kw: float) -> PlayerRegistry:
    return PlayerRegistry(RegistryConfig(**kw), Shields(32, 32, protect))  # type: ignore[arg-type]


def land_all(reg: PlayerRegistry, codes: np.ndarray, generation: int) -> list[int]:
    """The generation's placements landed as ``Engine._fan_in_players`` lands them;
    how many cells each put."""
    target = LockingGrid(32, 32, codes)
    placed = []
    for placement in reg.take_placements(generation):
        ys, xs = reg.unshielded(placement, generation)
        n = target.fill_empty(ys, xs, placement.code)
        reg.shield(placement, n, generation)
        reg.refund(placement, n)
        placed.append(n)
    return placed


def test_a_placement_touching_another_players_shield_is_refused() -> None:
    reg = registry()
    alice, _ = reg.join(b"a", "alice", None)
    bob, _ = reg.join(b"b", "bob", None)
    codes = np.zeros((32, 32), np.uint8)
    reg.place(alice, cells(GLIDER, 10, 10))
    assert land_all(reg, codes, 1) == [5]
    [shield] = reg.live_shields(1)
    assert (shield.zone, shield.until, shield.player) == ((8, 8, 7, 7), 9, alice.id)
    energy = bob.energy
    with pytest.raises(NotAllowed, match=r"player 1's shield .* lasts 7 more generations"):
        reg.place(bob, cells(BLOCK, 16, 16))  # its zone (14..19) touches 8..14
    assert bob.energy == energy  # nothing reserved
    reg.place(bob, cells(BLOCK, 17, 17))  # just clear of it
    reg.place(alice, cells(BLOCK, 13, 13))  # her own: taken, lands without a shield
    assert land_all(reg, codes, 2) == [4, 4]
    assert [s.player for s in reg.live_shields(2)] == [alice.id, bob.id]
    # Once it has computed its last generation, its zone is anyone's.
    reg.prune_shields(9)
    assert [s.player for s in reg.live_shields(9)] == [bob.id]
    reg.place(bob, cells(GLIDER, 9, 9))


def test_placements_of_one_boundary_are_shielded_in_the_order_they_came() -> None:
    """Both queued before either landed: the first one's zone is shielded at once, so
    the second puts none of its cells there (refunded, as occupied) and gets no shield."""
    reg = registry(energy_cap=10, energy_regen=0)
    alice, _ = reg.join(b"a", "alice", None)
    bob, _ = reg.join(b"b", "bob", None)
    reg.place(alice, cells(BLOCK, 10, 10))
    reg.place(bob, cells(BLOCK, 11, 13))  # two cells in alice's zone, two outside
    codes = np.zeros((32, 32), np.uint8)
    assert land_all(reg, codes, 1) == [4, 2]
    assert bob.energy == 8  # 10 - 4 reserved + 2 refunded
    assert [s.player for s in reg.live_shields(1)] == [alice.id]


def test_decisions_inside_another_players_shield_are_refused() -> None:
    reg = registry(energy_cap=10)
    alice, _ = reg.join(b"a", "alice", None)
    bob, _ = reg.join(b"b", "bob", None)
    reg.place(alice, cells(GLIDER, 10, 10))
    land_all(reg, np.zeros((32, 32), np.uint8), 1)
    # bob owns (12, 14), in alice's zone, and (20, 20), outside; the rule kills both
    request = Request(np.array([12, 20]), np.array([14, 20]), np.array([False, False]))
    reg.open_requests(1, {bob.id: request})
    energy = bob.energy
    reg.post_decision(bob, 1, [0, 1], [])
    writes, results = reg.close_decisions()
    assert (results[bob.id].kept, results[bob.id].refused) == (1, 1)
    assert [(w.ys.tolist(), w.xs.tolist()) for w in writes] == [([20], [20])]
    assert bob.energy == energy - 1  # the refused keep cost nothing


def test_the_players_are_asked_with_their_zones_counts() -> None:
    """Alice's glider cell next to bob's block outside the zone: its count in the
    request is the zone's (the block not counted), as the zone's step will count."""
    reg = registry()
    alice, _ = reg.join(b"a", "alice", None)
    codes, _ = glider_beside_a_block()
    reg.place(alice, cells(GLIDER, 10, 10))
    land_all(reg, np.zeros((32, 32), np.uint8), 1)
    sent: list[Message] = []
    DecisionRound(reg, CONWAY, 0.0, lambda identity, msg: sent.append(msg)).ask(
        1, codes, Board.of(codes))
    [msg] = [m for m in sent if m.kind is Kind.GAME_LOGIC]
    coords = np.frombuffer(msg.payloads[0], np.uint16).reshape(-1, 2)
    counts = np.frombuffer(msg.payloads[1], np.uint8)
    alone = np.where(codes == 2, codes, 0).astype(np.uint8)
    assert counts.tolist() == neighbour_counts(alone)[coords[:, 0], coords[:, 1]].tolist()


def test_no_more_than_the_limit_of_shields_and_none_when_off() -> None:
    shields = Shields(32, 32, 4, limit=2)
    assert shields.add(1, (0, 0, 3, 3), 1) and shields.add(2, (10, 10, 3, 3), 1)
    assert shields.add(3, (20, 20, 3, 3), 1) is None
    assert "2 shields" in (shields.refusal(3, (20, 20, 3, 3), 2) or "")
    shields.drop(1)
    assert [s.player for s in shields.live] == [2]
    shields.drop()
    assert shields.live == []
    off = Shields(32, 32, 0)
    assert off.refusal(1, (0, 0, 3, 3), 1) is None and off.add(1, (0, 0, 3, 3), 1) is None
    reg = PlayerRegistry(RegistryConfig())  # no world given: no shields
    p, _ = reg.join(b"a", "p", None)
    reg.place(p, cells(GLIDER, 0, 0))
    assert reg.placements[0].zone is None
    assert MAX_SHIELDS == 256
