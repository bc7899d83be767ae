"""Shields of fresh placements without sockets: zones on the torus, the zone's own
step, and the rules for placements and decisions near a live shield."""

from __future__ import annotations

import numpy as np
import pytest

from server.players import shields as shields_module
from server.players.board import Board
from server.players.decisions import (
    DecisionRound,
    counts_at,
    neighbour_counts,
    zone_counts_at,
)
from server.players.placing import placement_cells
from server.players.registry import PlayerRegistry, RegistryConfig, Request
from server.players.shields import (
    MARGIN,
    MIN_BOX,
    SPREAD,
    Shield,
    Shields,
    compact,
    evolve_zone,
    evolve_zones,
    foreign_mask,
    inside,
    overlap,
    overlapping,
    rows_cols,
    span,
    zone_neighbours,
    zone_of,
    zone_table,
    zones_neighbours,
)
from shared import protocol
from shared.errors import NotAllowed
from shared.grid import Grid, LockingGrid
from shared.kernel import rule_table, step_grid
from shared.library import library
from shared.protocol import MAX_SHIELDS, Kind, Message
from shared.rules import CONWAY

GLIDER = library()["glider"][0]
BLOCK = library()["block"][0]
ACORN = library()["acorn"][0]
GUN = library()["gosper-gun"][0]


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
        reg.shield(placement, n, generation, target.codes)
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
    records = np.frombuffer(msg.payloads[0], protocol.GAME_LOGIC_CELL)
    coords, counts = np.stack([records["y"], records["x"]], axis=1), records["n"]
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


def test_only_a_compact_placement_is_shielded() -> None:
    """Two cells at opposite corners of a 256x256 box cost 2 energy: shielded, they
    would cut 260x260 cells off for 8 generations. A compact box holds at most
    ``max(MIN_BOX, SPREAD * live cells)`` cells: common patterns qualify, that one does
    not; it is placed all the same, unshielded, and others place and decide inside."""
    assert (MIN_BOX, SPREAD) == (64, 16)
    for rle in (GLIDER, ACORN, GUN, BLOCK):
        assert compact(cells(rle, 1000, 1000, 1024, 1024), 1024, 1024)
    corners = placement_cells(None, [[0, 0], [255, 255]], 100, 100, 0, False, 1024, 1024)
    assert not compact(corners, 1024, 1024)
    assert compact(placement_cells(None, [[0, 0], [7, 7]], 0, 0, 0, False, 32, 32), 32, 32)
    assert not compact(placement_cells(None, [[0, 0], [8, 8]], 0, 0, 0, False, 32, 32),
                       32, 32)  # 9x9 = 81 cells of box for 2 live cells
    reg = PlayerRegistry(RegistryConfig(energy_cap=10, energy_regen=0),
                         Shields(1024, 1024, 8))
    alice, _ = reg.join(b"a", "alice", None)
    bob, _ = reg.join(b"b", "bob", None)
    reg.place(alice, corners)
    assert reg.placements[0].zone is None
    target = LockingGrid(1024, 1024)
    [placement] = reg.take_placements(1)
    n = target.fill_empty(placement.ys, placement.xs, placement.code)
    assert n == 2 and reg.shield(placement, n, 1, target.codes) is None
    assert reg.live_shields(1) == [] and alice.energy == 8  # placed, paid, unshielded
    reg.place(bob, cells(GLIDER, 200, 200, 1024, 1024))  # inside the box: taken
    # A sparse placement is refused only where its cells fall in another's shield.
    [placement] = reg.take_placements(2)
    n = target.fill_empty(placement.ys, placement.xs, placement.code)
    assert reg.shield(placement, n, 2, target.codes) is not None
    with pytest.raises(NotAllowed, match="has cells in player 2's shield"):
        reg.place(alice, placement_cells(None, [[0, 0], [100, 100]], 101, 101, 0, False,
                                          1024, 1024))
    reg.place(alice, placement_cells(None, [[0, 0], [100, 100]], 90, 90, 0, False,
                                     1024, 1024))  # around it, not in it: taken


def test_a_zone_holding_another_players_cells_gets_no_shield() -> None:
    """A glider landing with bob's cell inside its zone is placed, unshielded: a
    shield never cuts another player's cells off. Neutral cells do not count; nor do
    the placer's own."""
    for owner, shielded in ((3, False), (1, True), (2, True)):  # bob, neutral, alice
        reg = registry()
        alice, _ = reg.join(b"a", "alice", None)
        reg.join(b"b", "bob", None)
        codes = np.zeros((32, 32), np.uint8)
        codes[14, 14] = owner  # the zone's corner: 8..14
        reg.place(alice, cells(GLIDER, 10, 10))
        assert land_all(reg, codes, 1) == [5]
        assert bool(reg.live_shields(1)) is shielded, owner
    # Another player's (sparse, unshielded) placement landing earlier at the same
    # boundary counts too.
    reg = registry(energy_cap=10, energy_regen=0)
    alice, _ = reg.join(b"a", "alice", None)
    bob, _ = reg.join(b"b", "bob", None)
    reg.place(bob, placement_cells(None, [[0, 0], [9, 9]], 14, 14, 0, False, 32, 32))
    reg.place(alice, cells(GLIDER, 10, 10))
    assert land_all(reg, np.zeros((32, 32), np.uint8), 1) == [2, 5]
    assert reg.live_shields(1) == []


def boundary(reg: PlayerRegistry, generation: int) -> list[int]:
    """Land what is queued in ``generation`` as a step does: the shields done by
    ``generation - 1`` forgotten first, on an empty world."""
    reg.step_shields(generation - 1)
    return land_all(reg, np.zeros((32, 32), np.uint8), generation)


def test_a_player_cannot_chain_shields_on_one_spot() -> None:
    """Alice's shield landed in generation 1 computes 2..9. A zone of hers overlapping
    it gets no shield before 8 generations after it ended (landing in 17): no chaining
    one after the other. Elsewhere hers does, and so does another player's there; a
    round's end forgets the rest with the shields (a fresh start for everyone)."""
    for case in ("alice", "bob", "round"):
        reg = registry(energy_cap=100)
        alice, _ = reg.join(b"a", "alice", None)
        bob, _ = reg.join(b"b", "bob", None)
        reg.place(alice, cells(GLIDER, 10, 10))
        boundary(reg, 1)
        assert [(s.until, s.player) for s in reg.live_shields(1)] == [(9, alice.id)]
        boundary(reg, 8)  # placements queued from now on land in 9
        if case == "bob":
            reg.place(bob, cells(BLOCK, 12, 12))
            boundary(reg, 9)  # right after it ended: bob's fresh start is shielded
            assert [s.player for s in reg.live_shields(9)] == [bob.id]
        elif case == "round":
            boundary(reg, 9)
            boundary(reg, 10)
            assert reg.shields.ended and not reg.shields.live
            reg.end_round()
            reg.place(alice, cells(BLOCK, 12, 12))
            boundary(reg, 11)
            assert [s.player for s in reg.live_shields(11)] == [alice.id]
        else:
            reg.place(alice, cells(BLOCK, 12, 12))  # the same spot
            reg.place(alice, cells(BLOCK, 25, 25))  # elsewhere
            boundary(reg, 9)
            assert [(s.y, s.x) for s in reg.live_shields(9)] == [(23, 23)]
            boundary(reg, 15)
            reg.place(alice, cells(BLOCK, 12, 12))
            boundary(reg, 16)  # still resting
            assert [(s.y, s.x) for s in reg.live_shields(16)] == [(23, 23)]
            reg.place(alice, cells(BLOCK, 12, 12))
            boundary(reg, 17)  # 8 generations after it ended: a fresh start again
            assert [(s.y, s.x) for s in reg.live_shields(17)] == [(10, 10)]


def test_many_zones_step_at_once_as_each_would_alone() -> None:
    """``evolve_zones``/``zones_neighbours`` (one kernel call on a canvas of padded
    zones) equal ``evolve_zone``/``zone_neighbours`` zone by zone, across the seams, for
    zones as wide as the world, and in a wide world; ``foreign_mask`` and
    ``overlapping`` (every shield at once) equal the one-shield tests."""
    rng = np.random.default_rng(11)
    table = rule_table(CONWAY)
    for height, width, wide in ((40, 50, False), (33, 1200, False), (24, 24, True)):
        codes = rng.choice(np.array([0, 0, 0, 1, 2, 3, 700 if wide else 4]),
                           size=(height, width)).astype(np.uint16 if wide else np.uint8)
        zones = [(int(rng.integers(height)), int(rng.integers(width)),
                  int(rng.integers(1, height + 1)), int(rng.integers(1, min(width, 300) + 1)))
                 for _ in range(40)]
        zones.append((0, 0, height, width))
        for zone, got in zip(zones, evolve_zones(codes, zones, table), strict=True):
            assert np.array_equal(got, evolve_zone(codes, zone, table)), zone
        for zone, got in zip(zones, zones_neighbours(codes, zones), strict=True):
            assert np.array_equal(got, zone_neighbours(codes, zone)), zone
        shields = [Shield(*zone, until=int(rng.integers(5, 10)),
                          player=int(rng.integers(1, 4))) for zone in zones]
        ys, xs = rng.integers(height, size=500), rng.integers(width, size=500)
        for player, gen in ((1, 4), (2, 7), (9, 9)):
            expected = np.zeros(500, dtype=np.bool_)
            for s in shields:
                if s.player != player and s.live_after(gen):
                    expected |= inside(s.zone, ys, xs, height, width)
            mask = foreign_mask(shields, player, ys, xs, gen, height, width)
            assert np.array_equal(np.zeros(500, bool) if mask is None else mask, expected)
        zone = zones[0]
        assert overlapping(zone, zone_table(shields), height, width).tolist() == [
            overlap(zone, s.zone, height, width) for s in shields]


def test_counts_at_the_players_cells_equal_the_whole_world_counts_with_zones() -> None:
    """``counts_at`` and ``zone_counts_at`` (the players' cells alone) give what the
    whole-world ``neighbour_counts`` with each zone's own counts written over it gives;
    ``Board.of`` counts owners as a histogram of every cell does."""
    rng = np.random.default_rng(3)
    codes = rng.choice(np.array([0, 0, 0, 1, 2, 3, 300], dtype=np.uint16), size=(45, 70))
    zones = [(40, 60, 9, 14), (3, 3, 5, 5), (10, 0, 6, 70), (20, 30, 7, 8)]
    expected = neighbour_counts(codes)
    for zone, alone in zip(zones, zones_neighbours(codes, zones), strict=True):
        rows, cols = rows_cols(zone, *codes.shape)
        expected[np.ix_(rows, cols)] = alone
    board = Board.of(codes)
    assert board.owned.tolist() == np.flatnonzero(codes.ravel() > 1).tolist()
    assert board.counts[1:301].tolist() == np.bincount(codes.ravel(), minlength=301)[1:].tolist()
    ys, xs = np.divmod(board.owned, codes.shape[1])
    got = counts_at(codes, ys, xs)  # many cells: a whole pass
    zone_counts_at(codes, zones, board.owned, got)
    assert got.tolist() == expected[ys, xs].tolist()
    few = board.owned[::60]  # a few: gathered
    ys, xs = np.divmod(few, codes.shape[1])
    got = counts_at(codes, ys, xs)
    zone_counts_at(codes, zones, few, got)
    assert got.tolist() == expected[ys, xs].tolist()


def test_the_kept_table_always_equals_the_live_shields() -> None:
    """``Shields.table`` is kept between calls and grown by ``add``'s appends; after
    any run of adds, prunes and drops it is the table of the live shields."""
    import random

    rng = random.Random(7)
    shields = Shields(64, 64, 4, limit=40)
    most = 0
    for generation in range(200):
        action = rng.random()
        if action < 0.6:
            shields.add(rng.randrange(1, 6), (rng.randrange(64), rng.randrange(64),
                                              rng.randrange(3, 9), rng.randrange(3, 9)),
                        generation)
        elif action < 0.9:
            shields.prune(generation)
        else:
            shields.drop(rng.randrange(1, 6) if rng.random() < 0.8 else None)
        assert shields.table.tolist() == zone_table(shields.live).tolist()
        most = max(most, len(shields.live))
    assert most > 3  # the run did hold several shields at once


def test_one_pass_for_every_players_cells_equals_one_pass_each() -> None:
    """``foreign_mask`` with each cell's own player (a generation's answers at once)
    says what it says for each player's cells alone."""
    rng = np.random.default_rng(3)
    for _ in range(50):
        h, w = int(rng.integers(8, 40)), int(rng.integers(8, 40))
        shields = [Shield(int(rng.integers(h)), int(rng.integers(w)), int(rng.integers(1, 9)),
                          int(rng.integers(1, 9)), int(rng.integers(0, 6)),
                          int(rng.integers(1, 5))) for _ in range(int(rng.integers(0, 12)))]
        n = int(rng.integers(1, 60))
        ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
        owners = rng.integers(1, 5, n)
        together = foreign_mask(shields, owners, ys, xs, 2, h, w)
        for player in range(1, 5):
            alone = foreign_mask(shields, player, ys[owners == player],
                                 xs[owners == player], 2, h, w)
            expected = np.zeros(int((owners == player).sum()), np.bool_) if alone is None \
                else alone
            got = np.zeros(n, np.bool_) if together is None else together
            assert got[owners == player].tolist() == expected.tolist()


def random_shield(rng: np.random.Generator, height: int, width: int, landed: int,
                  side: int) -> Shield:
    """A shield of a random player somewhere on the torus, sides below ``side``, live
    or ended around generation ``landed``."""
    h, w = (int(v) for v in rng.integers(1, side, 2))
    return Shield(int(rng.integers(height)), int(rng.integers(width)),
                  min(h, height), min(w, width), until=landed + int(rng.integers(-8, 8)),
                  player=int(rng.integers(1, 4)))


def random_cells(rng: np.random.Generator, n: int, spread: int, height: int,
                 width: int) -> np.ndarray:
    """``n`` cells within ``spread`` of a random spot of the torus (wrapping)."""
    cells = np.stack([rng.integers(0, spread, n) + int(rng.integers(height)),
                      rng.integers(0, spread, n) + int(rng.integers(width))], axis=1)
    cells[:, 0] %= height
    cells[:, 1] %= width
    return cells


def keep(shields: Shields, shield: Shield, landed: int) -> None:
    """``shield`` among the live shields, or the ended ones, as of ``landed``."""
    (shields.live if shield.live_after(landed - 1) else shields.ended).append(shield)


def test_the_quick_paths_of_landing_agree_with_the_whole_passes() -> None:
    """``Shields.foreign`` given a placement's zone (only the shields touching it are
    tested cell by cell) says what the pass over every shield says, and ``Shields.add``
    (the live and the ended tables tested as arrays) refuses exactly what the loop over
    every nearby shield refused: random small tori, shields live and ended, wrapping
    placements of every player."""
    rng = np.random.default_rng(7)
    for trial in range(300):
        height, width = (int(v) for v in rng.integers(8, 60, 2))
        shields = Shields(height, width, length=int(rng.integers(1, 6)))
        landed = int(rng.integers(5, 20))
        for _ in range(int(rng.integers(0, 25))):
            keep(shields, random_shield(rng, height, width, landed, 12), landed)
        player = int(rng.integers(1, 4))
        n = int(rng.integers(1, 12))
        cells = random_cells(rng, n, 6, height, width)
        zone = zone_of(cells, height, width)

        quick = shields.foreign(player, cells[:, 0], cells[:, 1], landed, zone)
        whole = shields.foreign(player, cells[:, 0], cells[:, 1], landed)
        assert ([False] * n if quick is None else quick.tolist()) == \
            ([False] * n if whole is None else whole.tolist()), trial
        refused = any(
            overlap(zone, s.zone, height, width)
            and (s.live_after(landed)
                 or (s.player == player and landed - s.until < shields.length))
            for s in [*shields.live, *shields.ended])
        before = len(shields.live)
        added = shields.add(player, zone, landed)
        assert (added is None) == (refused or before >= shields.limit), trial


@pytest.mark.parametrize("wide", [False, True])
def test_landing_under_one_hold_of_the_lock_equals_landing_step_by_step(wide: bool) -> None:
    """``PlayerRegistry.land`` (every placement under one hold of the lock, as the
    engine lands them) leaves the world, the shields, the energies and what each
    placement is told exactly as ``take_placements``, ``unshielded``, ``fill_empty``,
    ``shield`` and ``refund`` one after the other: random placements of four players
    around a few spots over a few generations, some refused, some partly blocked by a
    shield made earlier at the same boundary. ``wide``: one of them has a player id
    past 254, whose first cells widen the narrow world mid-boundary (the shields of
    the placements after it are judged on the widened array)."""
    side = 64
    patterns = [text for text, _ in library().values() if len(text) < 400][:12]
    rng = np.random.default_rng(3)
    config = RegistryConfig(energy_cap=120, energy_regen=40, per_address=400,
                            max_players=400)
    one, other = (PlayerRegistry(config, Shields(side, side, 8)) for _ in range(2))
    joined = [[reg.join(b"p%d" % i, f"p{i}", None)[0] for i in range(300 if wide else 4)]
              for reg in (one, other)]
    players = [[ps[0], ps[1], ps[2], ps[-1]] for ps in joined]
    assert (players[0][3].code > 255) == wide
    target_one = LockingGrid(side, side, np.zeros((side, side), np.uint8))
    target = LockingGrid(side, side, np.zeros((side, side), np.uint8))
    told = blocked = 0
    for generation in range(1, 13):
        spots = rng.integers(0, side, (2, 2))
        for _ in range(int(rng.integers(3, 9))):
            who = int(rng.integers(4))
            text = patterns[int(rng.integers(len(patterns)))]
            y, x = (int(v) for v in (spots[int(rng.integers(2))] + rng.integers(-6, 7, 2)) % side)
            turn = int(rng.integers(8))
            cells = placement_cells(text, None, y, x, turn % 4, turn > 3, side, side)
            outcomes: list[object] = []
            for reg, ps in ((one, players[0]), (other, players[1])):
                try:
                    outcomes.append(reg.place(ps[who], cells))
                except NotAllowed as e:
                    outcomes.append(str(e))
            assert outcomes[0] == outcomes[1]
        stepwise = []
        for placement in one.take_placements(generation):
            ys, xs = one.unshielded(placement, generation)
            blocked += len(ys) < len(placement.ys)
            n = target_one.fill_empty(ys, xs, placement.code)
            one.shield(placement, n, generation, target_one.codes)
            stepwise.append(one.refund(placement, n))
        together = [done for _, _, _, done in
                    other.land(generation, target.fill_empty, lambda: target.codes)]
        assert stepwise == together, generation
        told += len(together)
        assert np.array_equal(target_one.codes, target.codes), generation
        assert np.array_equal(one.shields.table, other.shields.table), generation
        assert one.energies() == other.energies()
        for reg in (one, other):
            reg.prune_shields(generation)
            reg.regenerate()
    assert told > 20 and blocked > 0 and len(one.shields.live) > 0, (told, blocked)
    assert (target.codes.dtype == np.uint16) == wide


def test_foreign_cells_found_row_by_row_equal_the_pass_over_every_pair() -> None:
    """``foreign_mask`` on many cells against many shields goes row by row (sorted
    cells, binary search a zone row); it says exactly what testing every cell against
    every shield says: random tori, zones that wrap and zones as wide or tall as the
    world, one player for all the cells or each cell's own, expired shields."""
    from server.players import shields as module

    rng = np.random.default_rng(11)
    for trial in range(200):
        height, width = (int(v) for v in rng.integers(1, 90, 2))
        k = int(rng.integers(1, 60))
        table = np.stack([rng.integers(0, height, k), rng.integers(0, width, k),
                          rng.integers(1, height + 1, k), rng.integers(1, width + 1, k),
                          rng.integers(0, 10, k), rng.integers(1, 6, k)], axis=1)
        n = int(rng.integers(1, 3000))
        ys, xs = rng.integers(0, height, n), rng.integers(0, width, n)
        player = rng.integers(1, 6, n) if trial % 2 else int(rng.integers(1, 6))
        fast = foreign_mask(table, player, ys, xs, 4, height, width)
        was = module.BY_ROWS_FROM
        try:
            module.BY_ROWS_FROM = 1 << 62  # every pair
            slow = foreign_mask(table, player, ys, xs, 4, height, width)
        finally:
            module.BY_ROWS_FROM = was
        assert (fast is None) == (slow is None), trial
        if fast is not None and slow is not None:
            assert np.array_equal(fast, slow), trial


def test_zone_counts_found_row_by_row_equal_each_zone_counted_alone() -> None:
    """``zone_counts_at`` (each zone row's cells by binary search, then their eight
    neighbours inside the zone) equals ``zones_neighbours`` (each zone on a canvas of
    its own) on random tori: zones that wrap, zones as tall or as wide as the world
    (which wrap on themselves), cells in no zone left as they were."""
    rng = np.random.default_rng(5)
    for trial in range(150):
        height, width = (int(v) for v in rng.integers(1, 40, 2))
        codes = rng.choice(np.array([0, 0, 1, 2, 300], dtype=np.uint16),
                           size=(height, width))
        zones: list[tuple[int, int, int, int]] = []
        for _ in range(int(rng.integers(1, 8))):
            h = height if rng.random() < 0.15 else int(rng.integers(1, height + 1))
            w = width if rng.random() < 0.15 else int(rng.integers(1, width + 1))
            zone = (int(rng.integers(height)), int(rng.integers(width)), h, w)
            if not any(overlap(zone, z, height, width) for z in zones):
                zones.append(zone)
        expected = np.full((height, width), 99, dtype=np.uint8)
        for zone, alone in zip(zones, zones_neighbours(codes, zones), strict=True):
            rows, cols = rows_cols(zone, height, width)
            expected[np.ix_(rows, cols)] = alone
        cells = np.flatnonzero(rng.random(height * width) < 0.6)
        got = np.full(len(cells), 99, dtype=np.uint8)
        zone_counts_at(codes, zones, cells, got)
        ys, xs = np.divmod(cells, width)
        assert got.tolist() == expected[ys, xs].tolist(), (trial, zones)


def test_a_shield_is_judged_on_the_world_as_widened_by_an_earlier_placement() -> None:
    """At one boundary a player with an id past 254 lands first (its cells widen the
    narrow world to two bytes a cell: a new array), then a glider of another player
    right beside one of them: that glider's zone holds a live cell of another player,
    so it gets no shield, judged on the widened world, not the one before it."""
    reg = PlayerRegistry(RegistryConfig(per_address=400, max_players=400),
                         Shields(32, 32, 8))
    players = [reg.join(b"p%d" % i, f"p{i}", None)[0] for i in range(300)]
    late, low = players[-1], players[0]
    assert late.code > 255
    reg.place(late, np.array([[10, 10], [25, 25]], np.int64))  # spread out: no zone
    reg.place(low, np.array([[11, 12], [12, 13], [13, 11], [13, 12], [13, 13]], np.int64))
    target = LockingGrid(32, 32, np.zeros((32, 32), np.uint8))
    landed = reg.land(5, target.fill_empty, lambda: target.codes)
    assert [done.placed for _, _, _, done in landed] == [2, 5]
    assert target.codes.dtype == np.uint16 and target.codes[10, 10] == late.code
    assert reg.shields.live == []


@pytest.mark.parametrize("at_once", [True, False])
def test_a_boundarys_landing_says_what_foreign_and_add_say_one_by_one(
        at_once: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Shields.landing`` (every zone tested against the live and ended tables, and
    against the other zones of the boundary, in one pass each) blocks the same cells
    and adds the same shields as ``Shields.foreign`` and ``Shields.add`` one placement
    after the other: random small tori crowded with shields live and ended of a few
    players, batches whose zones overlap each other, some without a zone, a world
    holding other players' cells, and now and then a limit that the batch reaches.
    ``at_once`` False: boundaries too large for one pass, landed one by one."""
    if not at_once:
        monkeypatch.setattr(shields_module, "LANDING_AT_ONCE", 2)
    rng = np.random.default_rng(17)
    added = refused = blocked = 0
    for trial in range(300):
        height, width = (int(v) for v in rng.integers(10, 50, 2))
        length = int(rng.integers(1, 6))
        limit = int(rng.integers(3, 12)) if trial % 3 == 0 else MAX_SHIELDS
        one, other = (Shields(height, width, length=length, limit=limit) for _ in range(2))
        landed = int(rng.integers(8, 20))
        for _ in range(int(rng.integers(0, 10))):
            shield = random_shield(rng, height, width, landed, 10)
            for shields in (one, other):
                keep(shields, shield, landed)
        world = np.zeros((height, width), dtype=np.uint8)
        world[rng.random((height, width)) < 0.02] = int(rng.integers(2, 5))
        batch = []
        for _ in range(int(rng.integers(1, 10))):
            player = int(rng.integers(1, 4))
            at = random_cells(rng, int(rng.integers(1, 10)), 5, height, width)
            zone = zone_of(at, height, width) if rng.random() < 0.85 else None
            batch.append((player, zone, at))
        landing = other.landing([zone for _, zone, _ in batch], landed)
        for i, (player, zone, at) in enumerate(batch):
            code = player + 1
            expected = one.foreign(player, at[:, 0], at[:, 1], landed, zone)
            got = landing.foreign(i, player, at[:, 0], at[:, 1])
            n = len(at)
            assert ([False] * n if got is None else got.tolist()) == \
                ([False] * n if expected is None else expected.tolist()), trial
            blocked += expected is not None and bool(expected.any())
            if zone is None:
                continue
            made = one.add(player, zone, landed, world, code)
            assert landing.add(i, player, world, code) == made, trial
            added += made is not None
            refused += made is None
        assert one.live == other.live, trial
    assert added > 200 and refused > 200 and blocked > 50, (added, refused, blocked)
