"""The game over real sockets: rounds and their winner in frames and status reports,
shields of fresh placements, and energy numbers that agree."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from client.session import PlayerSession
from server.app import Server
from server.players.rounds import GOAL, GOAL_NO_ROUNDS
from shared import remote
from shared.errors import RemoteError
from shared.frames import FrameView
from shared.grid import Grid
from shared.kernel import step_grid
from shared.library import library
from shared.life import simulate
from shared.rules import CONWAY
from tests.conftest import ROOT, Processes, wait_for
from tests.integration.conftest import MakeServer, start_workers
from tests.integration.test_players import decided_of, join, request_of, step_keeping_all

pytestmark = pytest.mark.integration

GLIDER = library()["glider"][0]
BLOCK = library()["block"][0]
BLINKER = library()["blinker"][0]
ACORN = library()["acorn"][0]


@pytest.fixture
def sessions() -> Iterator[list[PlayerSession]]:
    made: list[PlayerSession] = []
    yield made
    for s in made:
        s.close()


@pytest.fixture
def views() -> Iterator[list[FrameView]]:
    made: list[FrameView] = []
    yield made
    for v in made:
        v.close()


def watch(server: Server, session: PlayerSession, views: list[FrameView]) -> FrameView:
    """A viewer with its first frame (the current generation published until it comes,
    without stepping the world)."""
    view = FrameView(session.frame_endpoint)
    views.append(view)
    assert server.engine.publishing is not None

    def published() -> bool:
        server.engine.publish(0.0)
        return view.poll(0.05)

    wait_for(published, 10, what="the viewer's first frame")
    return view


def step(server: Server, view: FrameView | None = None) -> None:
    """One generation; with a viewer, until it has seen it."""
    server.advance()
    if view is not None:
        wait_for(lambda: (view.poll(0.05), view.gen == server.engine.generation)[1], 5,
                 what=f"the frame of generation {server.engine.generation}")


def game(make_server: MakeServer, processes: Processes, workers: int = 1,
         **kwargs: Any) -> Server:
    options: dict[str, Any] = dict(size=(32, 32), fill=0.0, tile=(8, 32),
                                   decision_window=0.05, player_heartbeat=30.0)
    options.update(kwargs)
    server = make_server(**options)
    start_workers(processes, server, workers)
    return server


def test_a_round_ends_with_its_winner_announced_and_a_fresh_start(
        make_server: MakeServer, processes: Processes, sessions: list[PlayerSession],
        views: list[FrameView]) -> None:
    """A block (4 cells) against a blinker (3): after 6 generations alice has 24
    points, bob 18; the round ends, alice wins, in the frames and in ``status``; the
    points are 0 again, every cell is neutral, energy is at the cap. Carol, gone, is
    away while her grace lasts."""
    server = game(make_server, processes, round_length=6, energy_cap=40, energy_regen=0)
    alice, bob, carol = (join(server, sessions, name) for name in ("alice", "bob", "carol"))
    assert (alice.welcome["round"], alice.welcome["protect"], alice.welcome["goal"]) == (
        6, 8, GOAL)
    view = watch(server, bob, views)
    assert view.info["round"] == {"number": 1, "length": 6, "ends_at": 6, "points": [],
                                  "last": []}
    carol.leave()
    alice.place(2, 2, rle=BLOCK)
    bob.place(20, 20, rle=BLINKER)
    for gen in range(1, 6):
        step(server, view)
        assert view.info["round"]["points"] == [[1, 4 * gen], [2, 3 * gen]]
        assert view.info["away"] == [carol.player]
    assert view.info["round"]["ends_at"] == 6
    assert server.registry.energy_of(alice.player) < 40
    step(server, view)  # generation 6: the round's last
    won = {"round": 1, "winner": "alice", "player": 1, "points": 24, "ended_at": 6}
    assert view.info["round"] == {"number": 2, "length": 6, "ends_at": 12, "points": [],
                                  "last": [won]}
    assert view.codes is not None and int(view.codes.max()) == 1  # all neutral
    assert view.info["population"] == 7
    assert [server.registry.energy_of(p.player) for p in (alice, bob)] == [40, 40]
    report = remote.status(server.lobby.bound_endpoint)
    assert report["round"] == {"number": 2, "length": 6, "ends_at": 12, "points": {},
                               "last": [won]}
    assert report["away"] == ["carol"] and report["scores"]["alice"] == 0
    # The same from a real `lifenet status --json`.
    done = subprocess.run([sys.executable, "-m", "server", "status", "--connect",
                           server.lobby.bound_endpoint, "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["round"]["last"] == [won]
    # The next round scores from zero: nobody owns a cell now, so nobody scores.
    for _ in range(6):
        step(server, view)
    assert view.info["round"]["last"][0] == {"round": 2, "winner": None, "player": None,
                                             "points": 0, "ended_at": 12}
    assert view.info["round"]["last"][1] == won


def test_the_winner_is_the_same_whatever_the_workers(
        make_server: MakeServer, processes: Processes,
        sessions: list[PlayerSession]) -> None:
    """The same world of three players' cells on two servers (one worker and fixed
    tiles; two workers and planned bands): the same points every generation and the
    same winners."""
    histories = []
    for workers, tile in ((1, (8, 32)), (2, None)):
        server = game(make_server, processes, workers, round_length=5, tile=tile)
        for name in ("p1", "p2", "p3"):
            join(server, sessions, name)
        rng = np.random.default_rng(12)
        server.engine.grid = Grid.from_codes(rng.choice([0, 2, 3, 4], size=(32, 32),
                                                        p=[.6, .14, .13, .13]))
        expected = server.engine.grid.copy()
        history = []
        for _ in range(10):
            expected = simulate(expected, server.rule)
            server.advance()
            if server.engine.generation % 5:  # a round's end turns every cell neutral
                assert server.engine.grid == expected
            else:
                assert int(server.engine.grid.codes.max()) <= 1
                expected = server.engine.grid.copy()
            latest = server.engine.latest.round
            assert latest is not None
            history.append(latest.frame())
        histories.append(history)
        server.close()
    assert histories[0] == histories[1]
    last = histories[0][-1]["last"]
    assert [r["round"] for r in last] == [2, 1] and last[1]["winner"] is not None


def test_placements_and_shields_are_the_same_whatever_the_workers(
        make_server: MakeServer, processes: Processes,
        sessions: list[PlayerSession]) -> None:
    """Placements too, shielded ones among them: the same world of three players on two
    servers (one worker and fixed tiles; two workers and planned bands), the same
    placements asked before the same generations (one landing at a round's end). Every
    generation the same cells and owners, the same shields, the same points and the
    same energy; and shields were made."""
    plan = {0: [("p1", 2, 2, GLIDER), ("p2", 2, 14, ACORN), ("p3", 14, 14, BLOCK)],
            3: [("p3", 2, 27, BLINKER)],
            5: [("p1", 9, 4, GLIDER)],  # lands in 6: the round's end
            8: [("p2", 2, 20, GLIDER), ("p3", 20, 3, ACORN)]}
    histories = []
    for workers, tile in ((1, (8, 32)), (2, None)):
        server = game(make_server, processes, workers, round_length=6, tile=tile)
        players = {name: join(server, sessions, name) for name in ("p1", "p2", "p3")}
        rng = np.random.default_rng(5)
        codes = rng.choice([0, 2, 3, 4], size=(32, 32), p=[.7, .1, .1, .1]).astype(np.uint8)
        codes[:12] = 0  # open space, where fresh placements are shielded
        server.engine.grid = Grid.from_codes(codes)
        history = []
        for gen in range(12):
            for name, y, x, rle in plan.get(gen, []):
                players[name].place(y, x, rle=rle)
            server.advance()
            made = server.engine.generation
            latest = server.engine.latest.round
            assert latest is not None
            history.append((made, hashlib.sha256(server.engine.grid.codes.tobytes()).hexdigest(),
                            [s.wire() for s in server.registry.live_shields(made)],
                            latest.frame(), server.registry.energies()))
        histories.append(history)
        server.close()
    for one, two in zip(*histories, strict=True):
        assert one == two, f"generation {one[0]}"
    shielded = {s[5] for _, _, shields, _, _ in histories[0] for s in shields}
    assert shielded == {1, 2, 3}
    assert histories[0][-1][3]["last"][0]["winner"] is not None


def shielded_world(make_server: MakeServer, processes: Processes,
                   sessions: list[PlayerSession], protect: int
                   ) -> tuple[Server, PlayerSession, PlayerSession]:
    """Bob's block, its own shield over; then alice's glider, heading for it, lands
    in generation 10 with the block just outside its zone."""
    server = game(make_server, processes, protect=protect)
    alice, bob = join(server, sessions, "alice"), join(server, sessions, "bob")
    bob.place(15, 13, rle=BLOCK)
    for _ in range(9):
        server.advance()
    assert server.registry.live_shields(9) == []
    alice.place(10, 10, rle=GLIDER)
    server.advance()
    assert server.engine.generation == 10
    return server, alice, bob


def glider_alone(generations: int) -> set[tuple[int, int]]:
    grid = Grid(32, 32)
    grid.codes[10:13, 10:13] = library()["glider"][1].codes * 2
    for _ in range(generations):
        grid = step_grid(grid, CONWAY)
    return {(int(y), int(x)) for y, x in np.argwhere(grid.codes == 2)}


def cells_of(server: Server, session: PlayerSession) -> set[tuple[int, int]]:
    return {(int(y), int(x)) for y, x in np.argwhere(server.engine.grid.codes == session.code)}


def test_a_fresh_glider_beside_a_block_is_shielded_then_follows_the_rule(
        make_server: MakeServer, processes: Processes, sessions: list[PlayerSession],
        views: list[FrameView]) -> None:
    server, alice, bob = shielded_world(make_server, processes, sessions, protect=8)
    assert alice.welcome["round"] == 0 and alice.welcome["goal"] == GOAL_NO_ROUNDS
    view = watch(server, bob, views)
    assert view.info["shields"] == [[8, 8, 7, 7, 18, alice.player]]
    # Bob cannot place into it (nor next to it: his zone would touch it) ...
    with pytest.raises(RemoteError, match=r"player 1's shield .* lasts 7 more generations"):
        bob.place(12, 14, rle=BLOCK)
    for _ in range(8):
        step(server, view)
    # ... and the block beside it did not break it: the glider as if alone.
    assert server.engine.generation == 18
    assert cells_of(server, alice) == glider_alone(8)
    assert view.info["shields"] == []
    # The shield is over: the world follows the rule (the glider meets the block).
    follows_the_rule(server, 6)
    assert cells_of(server, alice) != glider_alone(14)


def follows_the_rule(server: Server, generations: int) -> None:
    """Step ``generations`` times, each one the reference ``simulate`` of the last."""
    for _ in range(generations):
        before = server.engine.grid.copy()
        server.advance()
        assert server.engine.grid == simulate(before, server.rule)


def test_without_protect_the_world_is_the_references(
        make_server: MakeServer, processes: Processes,
        sessions: list[PlayerSession]) -> None:
    server, alice, bob = shielded_world(make_server, processes, sessions, protect=0)
    bob.place(12, 14, rle=BLOCK)  # nothing refuses it
    server.advance()  # where it lands
    follows_the_rule(server, 7)
    assert cells_of(server, alice) != glider_alone(8)


def test_decided_reports_the_energy_a_refusal_then_says(
        make_server: MakeServer, processes: Processes,
        sessions: list[PlayerSession]) -> None:
    """A defending player keeps two dying cells (2 energy) and regains 1 a generation:
    DECIDED says the energy after the regeneration, the number PONG, the registry and a
    refused PLACE say next, and what the keep-alives cost and a generation gives."""
    server = game(make_server, processes, size=(16, 16), tile=(8, 16), decision_window=2.0,
                  energy_cap=20, energy_regen=1)
    player = join(server, sessions, "defender")
    player.place(4, 4, cells=[(0, 0), (0, 4)])  # two lonely cells: the rule kills both
    server.advance()
    decided = step_keeping_all(server, player)
    assert (decided["kept"], decided["spent"], decided["regen"]) == (2, 2, 1)
    energy = decided["energy"]
    assert energy == 18  # 20 - 2 placed + 1 regained, - 2 kept + 1 regained
    assert server.registry.energy_of(player.player) == energy
    assert player.ping()["energy"] == energy
    with pytest.raises(RemoteError, match="needs 33 energy") as refused:
        player.place(0, 0, rle=library()["gosper-gun"][0])
    said = re.search(r"player has (\d+)", str(refused.value))
    assert said is not None and int(said.group(1)) == energy


def test_a_sparse_placement_or_one_on_other_players_cells_is_not_shielded(
        make_server: MakeServer, processes: Processes,
        sessions: list[PlayerSession]) -> None:
    """The grief the rules stop: alice's 2 cells at the corners of a 21x21 box around
    bob's blinker would have shielded it all for 2 energy (bob's cells evolving cut
    off, his keep-alives and placements refused); her glider landing beside the
    blinker, with it in its zone, too. Both are placed, unshielded: the world follows
    the rule and bob places inside the box."""
    server = game(make_server, processes, size=(64, 64), tile=(16, 64))
    alice, bob = join(server, sessions, "alice"), join(server, sessions, "bob")
    bob.place(30, 30, rle=BLINKER)
    for _ in range(9):  # bob's own shield is over
        server.advance()
    assert server.registry.live_shields(9) == []
    energy = server.registry.energy_of(alice.player)
    alice.place(20, 20, cells=[(0, 0), (20, 20)])
    alice.place(26, 30, rle=GLIDER)  # its zone, rows 24..30 and columns 28..34, holds bob's
    server.advance()
    assert server.engine.generation == 10
    assert len(cells_of(server, alice)) == 7
    assert server.registry.energy_of(alice.player) == min(200, energy - 7 + 5)
    assert server.registry.live_shields(10) == []
    for _ in range(8):
        before = server.engine.grid.copy()
        server.advance()
        assert server.engine.grid == simulate(before, server.rule)
    bob.place(35, 35, rle=BLOCK)  # inside alice's box: taken, and shielded (open space)
    server.advance()
    assert [s.player for s in server.registry.live_shields(19)] == [bob.player]


def test_a_shield_dropped_during_a_step_is_applied_to_the_whole_step(
        make_server: MakeServer, processes: Processes, sessions: list[PlayerSession],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The lobby may drop a shield (its player evicted) while a generation is made. The
    step read the live shields once, before asking: the zone it asked the players
    about is the zone it computes and checks their decisions against, whatever was
    dropped meanwhile; the next step goes without it."""
    server = game(make_server, processes, decision_window=1.0)
    alice, bob = join(server, sessions, "alice"), join(server, sessions, "bob")
    alice.place(10, 10, rle=GLIDER)
    server.advance()  # lands in 1: its zone rows and columns 8..14, until 9
    assert [s.player for s in server.registry.live_shields(1)] == [alice.player]
    codes = server.engine.grid.codes.copy()
    codes[14, 8] = bob.code  # bob's lonely cell in the zone: the rule kills it
    codes[9:12, 15] = 1      # neutral cells just outside: (10, 14) is born by the rule
    server.engine.grid = Grid.from_codes(codes)
    registry = server.registry
    assert server.engine.players is not None
    decision_round = server.engine.players.round
    ask = decision_round.ask

    def ask_then_evict(*args: Any, **kwargs: Any) -> int:
        asked = ask(*args, **kwargs)
        with registry.lock:  # as the lobby's eviction does, between the asking and the rest
            registry.shields.drop(alice.player)
        return asked

    monkeypatch.setattr(decision_round, "ask", ask_then_evict)
    stepper = threading.Thread(target=server.advance)
    stepper.start()
    assert len(request_of(bob, 1).ys) == 1
    bob.decide(1, keep=[0])
    stepper.join(10)
    decided = wait_for(lambda: decided_of(bob), 5, what="DECIDED")
    assert (decided["kept"], decided["refused"]) == (0, 1)  # inside alice's shield
    assert server.engine.grid.codes[14, 8] == 0 and server.engine.grid.codes[10, 14] == 0
    assert cells_of(server, alice) == glider_alone(1)  # as if alone
    assert registry.live_shields(2) == []
    before = server.engine.grid.copy()
    server.advance()
    assert server.engine.grid == simulate(before, server.rule)
