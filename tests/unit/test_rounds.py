"""Rounds without sockets: points, the winner and its ties, the history, what frames
and status reports carry, snapshots of points, and the options."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import server.cli.serve as serve_module
from server.cli.options import server_argv
from server.config import ServerConfig
from server.players.board import Board
from server.players.placing import placement_cells
from server.players.registry import PlayerRegistry, RegistryConfig
from server.players.rounds import GOAL, GOAL_NO_ROUNDS, Rounds, goal, winner
from server.players.shields import Shields
from shared import protocol
from shared.errors import ProtocolError
from shared.grid import LockingGrid
from shared.protocol import Kind


def test_the_winner_has_most_points_then_most_cells_then_the_lowest_id() -> None:
    assert winner({1: 10, 2: 30, 3: 20}, {}) == 2
    assert winner({1: 30, 2: 30, 3: 20}, {1: 4, 2: 5, 3: 99}) == 2  # more cells now
    assert winner({4: 30, 2: 30}, {4: 5, 2: 5}) == 2                # then the lowest id
    assert winner({1: 30, 2: 30}, {}) == 1
    assert winner({1: 0, 2: 0}, {1: 50}) is None                    # nobody scored
    assert winner({}, {}) is None


def test_rounds_follow_the_generation_counter() -> None:
    rounds = Rounds(10)
    assert [rounds.number(g) for g in (0, 9, 10, 11, 25)] == [1, 1, 2, 2, 3]
    assert [rounds.ends_at(g) for g in (0, 9, 10, 11)] == [10, 10, 20, 20]
    assert [g for g in range(31) if rounds.ends(g)] == [10, 20, 30]
    with pytest.raises(ValueError):
        Rounds(0)


def test_the_last_five_results_are_kept_newest_first() -> None:
    rounds = Rounds(3)
    for k in range(1, 8):
        rounds.close(3 * k, {1: ("alice", k), 2: ("bob", 0)}, {})
    assert [r.round for r in rounds.last] == [7, 6, 5, 4, 3]
    assert rounds.last[0].wire() == {"round": 7, "winner": "alice", "player": 1,
                                     "points": 7, "ended_at": 21}
    nobody = rounds.close(24, {1: ("alice", 0)}, {1: 3})
    assert (nobody.winner, nobody.player, nobody.points) == (None, None, 0)


def registry() -> PlayerRegistry:
    return PlayerRegistry(RegistryConfig(energy_cap=50, energy_regen=1),
                          Shields(8, 8, 4))


def test_points_add_up_live_cells_and_a_round_end_starts_afresh() -> None:
    reg = registry()
    alice, _ = reg.join(b"a", "alice", None)
    bob, _ = reg.join(b"b", "bob", None)
    carol, _ = reg.join(b"c", "carol", None)
    codes = np.zeros((8, 8), np.uint8)
    codes[0, :4] = alice.code  # alice 4 cells, bob 2, carol none
    codes[5, :2] = bob.code
    for _ in range(3):
        reg.score(Board.of(codes).cells)
    assert reg.points() == [(1, "alice", 12), (2, "bob", 6), (3, "carol", 0)]
    rounds = Rounds(3)
    standing = rounds.standing(2, reg.points())
    assert standing.frame() == {"number": 1, "length": 3, "ends_at": 3,
                                "points": [[1, 12], [2, 6]], "last": []}
    assert standing.status()["points"] == {"alice": 12, "bob": 6}
    assert reg.shields.add(alice.id, (5, 5, 2, 2), 1) is not None
    alice.energy, bob.energy = 3, 4
    reg.leave(bob)
    standings = reg.end_round()
    assert standings == {1: ("alice", 12), 2: ("bob", 6), 3: ("carol", 0)}
    result = rounds.close(3, standings, {1: 4, 2: 2})
    assert (result.round, result.winner, result.player, result.points) == (1, "alice", 1, 12)
    assert [p for _, _, p in reg.points()] == [0, 0, 0]
    assert (alice.energy, bob.energy, carol.energy) == (50, 4, 50)  # bob is away
    assert reg.live_shields(1) == []
    after = rounds.standing(3, reg.points())
    assert after.frame()["number"] == 2 and after.frame()["points"] == []
    assert after.frame()["last"][0]["winner"] == "alice"


def test_the_round_and_the_new_fields_pass_the_protocols_checks() -> None:
    rounds = Rounds(4)
    rounds.close(4, {1: ("alice", 9)}, {1: 1})
    standing = rounds.standing(5, [(1, "alice", 3), (2, "bob", 0)])
    codes = np.zeros((2, 2), np.uint8)
    frame = protocol.message(Kind.FRAME, [codes.tobytes()], gen=5, h=2, w=2, population=0,
                             ms=0.0, workers=1, rule="B3/S23", board=[],
                             round=standing.frame(), away=[2],
                             shields=[[0, 0, 2, 2, 9, 1]])
    assert protocol.decode(protocol.encode(frame)).body["round"]["last"][0]["player"] == 1
    protocol.message(Kind.DECIDED, gen=1, kept=2, died=0, refused=0, energy=7, spent=2,
                     regen=5)
    body = protocol.decode(protocol.encode(frame)).body
    bad = dict(body, round={**body["round"], "extra": 1})
    with pytest.raises(ProtocolError):
        protocol.message(Kind.FRAME, [codes.tobytes()], **bad)
    assert "points" in GOAL and "round" in GOAL


def test_the_goal_mentions_rounds_only_on_a_server_with_rounds() -> None:
    """With ``--round 0`` nobody scores points: the goal says what the scoreboard
    counts, not who wins a round."""
    assert goal(600) == GOAL and goal(1) == GOAL
    assert goal(0) == GOAL_NO_ROUNDS
    assert "round" not in GOAL_NO_ROUNDS and "points" not in GOAL_NO_ROUNDS
    assert "live cells" in GOAL_NO_ROUNDS and len(GOAL_NO_ROUNDS) <= protocol.MAX_REASON


def test_placements_landing_at_a_round_end_are_paid_for() -> None:
    """The round ends at the boundary where queued placements land, after their cost
    was reserved: energy refills to the cap less what they reserved, so what lands
    costs what it costs (and what does not land is refunded), as in any generation."""
    reg = registry()  # cap 50
    alice, _ = reg.join(b"a", "alice", None)
    bob, _ = reg.join(b"b", "bob", None)
    carol, _ = reg.join(b"c", "carol", None)
    def block(y: int, x: int) -> np.ndarray:
        return placement_cells(None, [[0, 0], [0, 1], [1, 0], [1, 1]], y, x, 0, False, 8, 8)

    reg.place(alice, block(0, 0))  # 4 reserved, all land
    reg.place(bob, placement_cells(None, [[0, 0], [0, 1]], 4, 4, 0, False, 8, 8))  # 2
    reg.place(bob, block(0, 4))    # 4 reserved, 2 occupied
    alice.energy, bob.energy = 10, 3  # spent on keep-alives besides
    carol.energy = 7
    reg.leave(carol)
    reg.end_round()
    assert (alice.energy, bob.energy, carol.energy) == (46, 44, 7)
    target = LockingGrid(8, 8)
    target.codes[0, 5] = target.codes[1, 5] = 1  # two of bob's second cells are taken
    for placement in reg.take_placements(1):
        reg.refund(placement, target.fill_empty(placement.ys, placement.xs,
                                                placement.code))
    assert (alice.energy, bob.energy) == (50 - 4, 50 - 2 - 2)


def test_points_survive_a_snapshot_of_the_same_round_only() -> None:
    reg = registry()
    alice, _ = reg.join(b"a", "alice", None)
    alice.points = 42
    exported = reg.export(round_ends_at=20)
    assert exported[0]["points"] == 42 and exported[0]["round_ends_at"] == 20
    same, other, off = registry(), registry(), registry()
    same.restore(exported, round_ends_at=20)
    other.restore(exported, round_ends_at=30)  # restored with another --round
    off.restore(exported)                      # without rounds
    assert [r.players[1].points for r in (same, other, off)] == [42, 0, 0]
    assert "points" not in reg.export()[0]     # without rounds: nothing to keep


def test_round_and_protect_options_reach_the_config_and_a_child_server(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``lifenet server --round N --protect G`` fills the config (defaults: no rounds,
    8 generations of shield), and ``server_argv`` (how ``lifenet up`` starts its server
    child) passes both on."""
    configs: list[ServerConfig] = []

    def fake_serve(config: ServerConfig) -> int:
        configs.append(config)
        return 0

    monkeypatch.setattr(serve_module, "serve", fake_serve)
    for args in (["--round", "50", "--protect", "0"], []):
        result = CliRunner().invoke(serve_module.server, args)
        assert result.exit_code == 0, result.output
    assert [(c.round_length, c.protect) for c in configs] == [(50, 0), (0, 8)]
    argv = server_argv({"round": 50, "protect": 3, "size": (8, 8)}, 0.1, None)
    assert argv[argv.index("--round") + 1] == "50"
    assert argv[argv.index("--protect") + 1] == "3"
