"""The terminal client, driven headless by Textual's pilot against a real server.

Each test runs the real ``LifenetClient`` (its network thread, its sockets) with
``App.run_test()`` against an in-process server with one real worker process. The test
steps the server itself (``server.advance()``), so "the next generation" is exact; the
server waits for the client's per-cell answers (a long decision window that closes as
soon as every asked player answered), so the policy's effect is exact too.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
import numpy as np
import pytest
import zmq
from textual.pilot import Pilot
from textual.widgets import Static

from client.commands import client_command, credentials
from client.session import PlayerSession
from client.tui import HelpScreen, IntroScreen, LifenetClient, PatternSearch
from client.worldview import WorldView
from server.app import Server
from shared import protocol, remote
from shared.colours import CURSOR, WARNING, colour
from shared.errors import LifenetError
from shared.frames import FrameView
from shared.grid import NEUTRAL_CODE
from shared.library import library
from shared.policies import POLICIES
from shared.remote import player_endpoint
from tests.conftest import Processes, free_port, wait_for
from tests.integration.conftest import MakeServer, start_workers

pytestmark = pytest.mark.integration

T = TypeVar("T")
Scenario = Callable[[LifenetClient, Pilot[Any]], Coroutine[Any, Any, None]]


def play(server: Server, scenario: Scenario, size: tuple[int, int] = (110, 36),
         **kwargs: Any) -> LifenetClient:
    """Run ``scenario`` in a headless client of ``server``; the app is quit at the end."""
    app = LifenetClient(server.lobby.bound_endpoint, kwargs.pop("name", "alice"), **kwargs)

    async def run() -> None:
        async with app.run_test(size=size) as pilot:
            await scenario(app, pilot)
            if app.is_running:
                await pilot.press("q")

    asyncio.run(run())
    return app


async def until(pilot: Pilot[Any], condition: Callable[[], T], what: str,
                timeout: float = 10.0) -> T:
    """Let the app run until ``condition()`` is truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.02)
    return value


async def joined(app: LifenetClient, pilot: Pilot[Any]) -> None:
    await until(pilot, lambda: app.welcome, "the client to join")


async def advance(app: LifenetClient, pilot: Pilot[Any], server: Server, n: int = 1) -> None:
    """Step the server ``n`` generations and wait until the client shows the last one.

    The first frame can be lost while the subscription travels to the publisher, so
    this steps again until the client has a world at all.
    """
    for _ in range(n):
        server.advance()
    for _ in range(50):
        if app.state.gen >= 0:
            break
        await pilot.pause(0.05)
        if app.state.gen < 0:
            server.advance()
    gen = server.engine.generation
    await until(pilot, lambda: app.state.gen >= gen, f"the client to show generation {gen}")


def cells_of(codes: Any, code: int) -> set[tuple[int, int]]:
    ys, xs = np.nonzero(codes == code)
    return {(int(y), int(x)) for y, x in zip(ys, xs, strict=True)}


def test_it_renders_the_world(make_server: MakeServer, processes: Processes) -> None:
    server = make_server(size=(24, 60), seed=7, fill=0.3, decision_window=2.0)
    start_workers(processes, server, 1)

    async def scenario(app: LifenetClient, pilot: Pilot[Any]) -> None:
        await joined(app, pilot)
        await advance(app, pilot, server, 3)
        world = app.world
        codes = server.engine.grid.codes
        assert np.array_equal(world.codes, codes)
        assert np.count_nonzero(codes), "the soup died out: pick another seed"
        special = {world.cursor, *world.preview_cells()}
        shown = 0
        for row in range(codes.shape[0] // 2):
            strip = world.render_line(row)
            colours = [(seg.style.color, seg.style.bgcolor)
                       for seg in strip if seg.style is not None for _ in seg.text]
            assert len(colours) >= codes.shape[1]
            for x in range(codes.shape[1]):
                fg, bg = colours[x]
                assert fg is not None and bg is not None
                # one character, two cells: the upper one in front, the lower behind
                for (y, x_), drawn in (((2 * row, x), fg), ((2 * row + 1, x), bg)):
                    if (y, x_) not in special:
                        assert drawn.number == colour(int(codes[y, x])), (y, x)
                        shown += bool(codes[y, x])
        assert shown > 10, "the rendered lines show live cells"
        assert f"{server.engine.generation}" in str(app.query_one("#side").render())

    play(server, scenario)


def test_the_cursor_moves_and_the_view_follows(make_server: MakeServer,
                                               processes: Processes) -> None:
    server = make_server(size=(160, 300), fill=0.0, decision_window=2.0)
    start_workers(processes, server, 1)

    async def scenario(app: LifenetClient, pilot: Pilot[Any]) -> None:
        await joined(app, pilot)
        world = app.world

        def centred() -> bool:
            """The cursor is drawn in the middle of the view (the world is larger)."""
            spot = world.on_screen(*world.cursor)
            return spot == (world.size.width // 2, world.size.height // 2)

        assert world.cursor == (80, 150)
        assert centred()
        await pilot.press("right", "right", "down")
        assert world.cursor == (81, 152)
        await pilot.press("l", "j", "k", "h", "h")
        assert world.cursor == (81, 151)
        for _ in range(10):
            await pilot.press("J")
        assert world.cursor == (1, 151)  # the world is a torus
        await pilot.pause()
        assert centred()
        for _ in range(19):
            await pilot.press("L")
        await pilot.pause()
        assert world.cursor == (1, 3) and centred()
        assert "1,3" in str(app.query_one("#side").render())

    play(server, scenario, size=(100, 30))


def test_a_pattern_is_placed_turned_and_flipped(make_server: MakeServer,
                                                processes: Processes) -> None:
    server = make_server(size=(32, 48), fill=0.0, decision_window=2.0)
    start_workers(processes, server, 1)

    async def scenario(app: LifenetClient, pilot: Pilot[Any]) -> None:
        await joined(app, pilot)
        await advance(app, pilot, server)
        code = app.welcome["code"]
        assert app.patterns[app.selected][0] == "glider"
        await pilot.press("r", "f", "up", "left")
        assert (app.rotate, app.flip) == (1, True)
        preview = set(app.world.preview_cells())
        assert len(preview) == app.selected_cost() == 5
        await pilot.press("space")
        await until(pilot, lambda: app.placed, "the PLACED reply")
        assert app.placed[0]["generation"] == server.engine.generation + 1
        await advance(app, pilot, server)
        # the server turned and flipped the glider exactly as the preview showed it
        assert cells_of(server.engine.grid.codes, code) == preview
        assert cells_of(app.world.codes, code) == preview
        await until(pilot, lambda: app.landed, "the LANDED notice")
        assert (app.landed[0]["placed"], app.landed[0]["occupied"]) == (5, 0)
        cap = app.welcome["energy_cap"]
        assert app.placed[0]["energy"] == cap - 5
        # paid 5, regenerated 5 at the boundary; the next PONG tells the client
        await until(pilot, lambda: app.state.energy == cap, "the energy to come back")

    play(server, scenario)


def test_a_refusal_is_shown(make_server: MakeServer, processes: Processes) -> None:
    server = make_server(size=(48, 48), fill=0.0, energy_cap=20, decision_window=2.0)
    start_workers(processes, server, 1)

    async def scenario(app: LifenetClient, pilot: Pilot[Any]) -> None:
        await joined(app, pilot)
        while app.patterns[app.selected][0] != "gosper-gun":
            await pilot.press("]")
        await pilot.press("enter")
        await until(pilot, lambda: app.last_refusal, "the refusal")
        assert "needs 36 energy" in app.last_refusal
        assert "needs 36 energy" in str(app.query_one("#side").render())

    play(server, scenario)


def test_help_opens_and_closes(make_server: MakeServer, processes: Processes) -> None:
    server = make_server(size=(16, 16), fill=0.0)
    start_workers(processes, server, 1)

    async def scenario(app: LifenetClient, pilot: Pilot[Any]) -> None:
        await joined(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert any(isinstance(s, HelpScreen) for s in app.screen_stack)
        cursor = app.world.cursor
        await pilot.press("right")  # the help has the keys now
        assert app.world.cursor == cursor
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")

    play(server, scenario)


@pytest.mark.parametrize("policy, cells", [("follow", 3), ("defend", 5)])
def test_the_policy_answers_the_servers_requests(make_server: MakeServer,
                                                 processes: Processes, policy: str,
                                                 cells: int) -> None:
    server = make_server(size=(16, 16), fill=0.0, decision_window=5.0)
    start_workers(processes, server, 1)

    async def scenario(app: LifenetClient, pilot: Pilot[Any]) -> None:
        await joined(app, pilot)
        assert app.policy == "follow"
        if policy == "defend":
            await pilot.press("d")
            assert app.policy == "defend"
        while app.patterns[app.selected][0] != "blinker":
            await pilot.press("p")
        await pilot.press("space")
        await until(pilot, lambda: app.placed, "the PLACED reply")
        await advance(app, pilot, server)  # the blinker lands: three cells in a row
        code = app.welcome["code"]
        assert len(cells_of(server.engine.grid.codes, code)) == 3
        await advance(app, pilot, server)  # its ends die, unless defended
        assert app.state.answered >= 1
        assert len(cells_of(server.engine.grid.codes, code)) == cells
        await until(pilot, lambda: app.state.kept == cells - 3, "the DECIDED report")

    play(server, scenario)


def test_quit_leaves_and_returns_the_token(make_server: MakeServer,
                                           processes: Processes) -> None:
    server = make_server(size=(16, 16), fill=0.0)

    async def scenario(app: LifenetClient, pilot: Pilot[Any]) -> None:
        await joined(app, pilot)
        assert [p.name for p in server.registry.connected()] == ["alice"]
        await pilot.press("q")

    app = play(server, scenario)
    token = app.return_value
    assert token and [p.token for p in server.registry.snapshot()] == [token]
    assert server.registry.connected() == []
    # and the token brings the same player back
    again = play(server, joined, token=token)
    assert again.welcome["rejoined"] and again.welcome["player"] == app.welcome["player"]


def test_no_server_fails_with_a_reason() -> None:
    app = LifenetClient(f"127.0.0.1:{free_port()}", "alice", timeout=0.3)

    async def run() -> None:
        async with app.run_test() as pilot:
            await until(pilot, lambda: not app.is_running, "the app to give up")

    asyncio.run(run())
    assert app.return_code == 1 and "cannot join" in app.failure


def test_the_cli_offers_every_policy() -> None:
    [policy] = [p for p in client_command.params if p.name == "policy"]
    assert isinstance(policy.type, click.Choice)
    assert list(policy.type.choices) == list(POLICIES)


# -- two players: what one places, the other sees ------------------------------------------------


def test_a_pattern_placed_in_the_tui_appears_in_another_players_frames(
        make_server: MakeServer, processes: Processes, zmq_context: zmq.Context[Any]) -> None:
    server = make_server(size=(24, 40), fill=0.0, decision_window=2.0)
    start_workers(processes, server, 2)
    bob = PlayerSession(server.lobby.bound_endpoint, "bob", context=zmq_context)
    bob.join()
    view = FrameView(bob.frame_endpoint, zmq_context)

    async def scenario(app: LifenetClient, pilot: Pilot[Any]) -> None:
        await joined(app, pilot)
        await advance(app, pilot, server)
        await pilot.press("space")
        await until(pilot, lambda: app.placed, "the PLACED reply")
        preview, code = set(app.world.preview_cells()), app.welcome["code"]
        assert code != bob.code
        target = app.placed[0]["generation"]
        server.advance()
        assert server.engine.generation == target
        while view.gen < target:
            view.poll(0.1)
        assert view.gen == target and view.codes is not None
        assert cells_of(view.codes, code) == preview
        assert any(row[1] == "alice" for row in view.info["board"])

    try:
        play(server, scenario)
    finally:
        view.close()
        bob.close()


def test_two_players_with_a_server_process(processes: Processes,
                                           zmq_context: zmq.Context[Any]) -> None:
    """The real ``lifenet server`` loop and ``lifenet worker`` processes: alice places
    a glider, bob's frames first show it in alice's colour in the generation PLACED
    named, not before and not later."""
    worker, player, frames = free_port(), free_port(), free_port()
    processes.lifenet("server", "--size", "24x24", "--fill", "0", "--tick", "0.05",
                      "--worker-port", str(worker), "--player-port", str(player),
                      "--frame-port", str(frames))
    processes.worker(f"tcp://127.0.0.1:{worker}")
    alice = PlayerSession(f"127.0.0.1:{player}", "alice", context=zmq_context, timeout=20)
    bob = PlayerSession(f"127.0.0.1:{player}", "bob", context=zmq_context, timeout=20)
    view: FrameView | None = None
    try:
        alice.join()
        bob.join()
        view = FrameView(bob.frame_endpoint, zmq_context)
        deadline = time.monotonic() + 20
        while view.codes is None or view.info.get("workers", 0) < 1:
            view.poll(0.1)
            assert time.monotonic() < deadline, "no frames with a worker"
        text, pattern = library()["glider"]
        placed = alice.place(5, 7, rle=text)
        glider = {(5 + int(y), 7 + int(x)) for y, x in zip(*np.nonzero(pattern.codes),
                                                           strict=True)}
        # every frame, one at a time, until the generation PLACED promised
        first = None
        while view.gen < placed["generation"]:
            assert time.monotonic() < deadline, "no frame of the promised generation"
            if view.sock.poll(100):
                view.apply(protocol.decode(protocol.topic_of(view.sock.recv_multipart())[1]))
                assert view.codes is not None
                if first is None and cells_of(view.codes, alice.code):
                    first = view.gen
                    assert cells_of(view.codes, alice.code) == glider
        assert first == placed["generation"], "the glider appeared in another generation"
    finally:
        if view is not None:
            view.close()
        alice.close()
        bob.close()


# -- a first game: layout, keys, the goal ----------------------------------------------------------


def side_text(app: LifenetClient) -> str:
    return str(app.query_one("#side", Static).render())


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
def test_the_layout_keeps_the_players_score_and_the_cursor_in_view(
        make_server: MakeServer, processes: Processes, size: tuple[int, int]) -> None:
    server = make_server(size=(160, 300), seed=3, fill=0.2, decision_window=2.0)
    start_workers(processes, server, 1)

    async def scenario(app: LifenetClient, pilot: Pilot[Any]) -> None:
        await joined(app, pilot)
        await advance(app, pilot, server)
        await pilot.pause()
        world = app.world
        compact = size[0] < 100
        assert app.compact is compact
        keys = str(app.query_one("#keys", Static).render())
        assert "quit" in keys and "move" in keys and "[" not in keys
        status, side = app.query_one("#status", Static), app.query_one("#side", Static)
        assert world.size.width > 0 and world.size.height > 0
        if compact:
            assert status.display and not side.display
            line = str(status.render())
            assert "alice" in line and "cells" in line and "#1/1" in line
            await pilot.press("s")  # the panel, on demand
            await pilot.pause()
            assert side.display and "rank 1/1" in side_text(app)
            await pilot.press("s")
            await pilot.pause()
            assert not side.display
        else:
            assert side.display and not status.display
            text = side_text(app)
            for part in ("alice", "rank 1/1", "energy", "server", "workers", "ms/gen"):
                assert part in text
            # the player's facts come before the operator's numbers
            assert text.index("energy") < text.index("server") < text.index("workers")
        # the cursor is drawn in the middle, and stays there as it moves
        for keys_ in ([], ["J"] * 12, ["L"] * 20, ["k"] * 3):
            for key in keys_:
                await pilot.press(key)
            await pilot.pause()
            column, middle = world.size.width // 2, world.size.height // 2
            assert world.on_screen(*world.cursor) == (column, middle)
            # the middle row of cells (the widget's height: it shows twice as many
            # rows) is the upper cell of its character when that is even
            assert drawn_at(world, column, middle)[world.size.height % 2] == CURSOR

    play(server, scenario, size=size)


def drawn_at(world: WorldView, column: int, line: int) -> tuple[int | None, int | None]:
    """The 256-colour numbers (upper cell, lower cell) drawn at a character."""
    cells = [(seg.style.color, seg.style.bgcolor) for seg in world.render_line(line)
             if seg.style is not None for _ in seg.text]
    upper, lower = cells[column]
    return (upper.number if upper else None, lower.number if lower else None)


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
def test_the_view_wraps_across_the_torus(make_server: MakeServer, processes: Processes,
                                         size: tuple[int, int]) -> None:
    server = make_server(size=(120, 200), fill=0.0, decision_window=2.0)
    start_workers(processes, server, 1)
    codes = server.engine.grid.codes
    codes[118:120, 198:200] = NEUTRAL_CODE  # a block, a still life, at the far corner

    async def scenario(app: LifenetClient, pilot: Pilot[Any]) -> None:
        await joined(app, pilot)
        await advance(app, pilot, server)
        world = app.world
        world.jump(0, 0)  # the near corner: the far one shows up and to the left
        await pilot.pause()
        spot = world.on_screen(119, 199)
        assert spot is not None
        column, line = spot
        assert column == world.size.width // 2 - 1 and line <= world.size.height // 2
        assert colour(NEUTRAL_CODE) in drawn_at(world, column, line)
        assert world.scroll_offset == (0, 0)  # no scrolling: the view wraps
        # and the near corner's neighbours across both seams are drawn beside it
        row_above = world.on_screen(119, 0)
        column_left = world.on_screen(0, 199)
        assert row_above is not None and column_left is not None
        assert row_above[0] == world.size.width // 2
        assert column_left == (world.size.width // 2 - 1, world.on_screen(0, 0)[1])  # type: ignore[index]

    play(server, scenario, size=size)


def test_ctrl_c_quits_and_returns_the_token(make_server: MakeServer) -> None:
    server = make_server(size=(16, 16), fill=0.0)

    async def scenario(app: LifenetClient, pilot: Pilot[Any]) -> None:
        await joined(app, pilot)
        await pilot.press("ctrl+c")
        await until(pilot, lambda: not app.is_running, "ctrl+c to quit")

    app = play(server, scenario)
    assert app.return_value and app.return_value == app.network.token
    assert server.registry.connected() == []


def test_the_first_run_screen_and_the_help_state_the_goal(make_server: MakeServer) -> None:
    server = make_server(size=(16, 16), fill=0.0, round_length=100)

    async def scenario(app: LifenetClient, pilot: Pilot[Any]) -> None:
        await joined(app, pilot)
        # the screen is pushed before its text is mounted: wait for both
        await until(pilot, lambda: isinstance(app.screen, IntroScreen)
                    and bool(app.screen.query(Static)), "the intro")
        text = str(app.screen.query_one(Static).render())
        assert "Own the most live cells" in text and "points" in text
        assert "A round lasts 100 generations" in text
        assert "open space" in text
        await pilot.press("x")  # any key plays
        await until(pilot, lambda: not isinstance(app.screen, IntroScreen), "the game")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await until(pilot, lambda: bool(app.screen.query(Static)), "the help's text")
        text = str(app.screen.query_one(Static).render())
        assert "The goal" in text and "Own the most live cells" in text
        assert "ctrl+c" in text and "open space" in text
        await pilot.press("escape")

    play(server, scenario, size=(80, 24), intro=True)


def test_jump_to_open_space_and_to_ones_own_cells(make_server: MakeServer,
                                                  processes: Processes) -> None:
    server = make_server(size=(64, 64), seed=5, fill=0.5, decision_window=2.0)
    start_workers(processes, server, 1)
    codes = server.engine.grid.codes
    codes[36:64, 36:64] = 0  # the one open space of a crowded world

    async def scenario(app: LifenetClient, pilot: Pilot[Any]) -> None:
        await joined(app, pilot)
        await advance(app, pilot, server)
        await pilot.press("o")
        y, x = app.world.cursor
        assert 40 <= y < 62 and 40 <= x < 62, app.world.cursor
        assert app.world.occupied() == 0
        await pilot.press("space")
        await until(pilot, lambda: app.placed, "the PLACED reply")
        await advance(app, pilot, server)
        await until(pilot, lambda: app.landed, "the LANDED notice")
        assert app.landed[0]["occupied"] == 0
        app.world.jump(0, 0)
        await pilot.press("m")
        code = app.welcome["code"]
        assert app.world.codes[app.world.cursor] == code
        assert int(app.state.codes[app.world.cursor]) == code  # type: ignore[index]

    play(server, scenario)


def test_the_preview_marks_occupied_cells_and_what_cannot_be_afforded(
        make_server: MakeServer, processes: Processes) -> None:
    server = make_server(size=(32, 32), fill=0.0, energy_cap=20, decision_window=2.0)
    start_workers(processes, server, 1)
    server.engine.grid.codes[16:18, 16:18] = NEUTRAL_CODE  # a block under the cursor

    def drawn(app: LifenetClient) -> set[int | None]:
        world = app.world
        found: set[int | None] = set()
        for y, x in world.preview_cells():
            spot = world.on_screen(y, x)
            assert spot is not None
            found.add(drawn_at(world, *spot)[y % 2])  # the world fits: row 0 on top
        return found

    async def scenario(app: LifenetClient, pilot: Pilot[Any]) -> None:
        await joined(app, pilot)
        await advance(app, pilot, server)
        app.world.jump(15, 15)  # the glider's cells over the block
        await pilot.pause()
        assert app.world.occupied() > 0
        assert WARNING in drawn(app)
        assert "occupied" in side_text(app)
        while app.patterns[app.selected][0] != "gosper-gun":
            await pilot.press("p")
        await pilot.pause()
        assert not app.affordable()
        assert 88 in drawn(app)  # dark red: cannot be afforded
        assert "you have 20" in side_text(app)

    play(server, scenario, size=(110, 36))


def test_a_client_survives_a_server_restart_and_keeps_its_settings(
        processes: Processes) -> None:
    """A real ``lifenet server`` stops and starts again on the same ports: the client
    notices, joins again under its name (the new server does not know the old token)
    and keeps its policy, cursor and pattern."""
    worker, player, frames = free_port(), free_port(), free_port()
    args = ["server", "--size", "32x48", "--fill", "0", "--tick", "0.05",
            "--worker-port", str(worker), "--player-port", str(player),
            "--frame-port", str(frames), "--heartbeat", "0.3"]
    first = processes.lifenet(*args)
    processes.worker(f"tcp://127.0.0.1:{worker}")
    app = LifenetClient(f"127.0.0.1:{player}", "alice", timeout=1.0)

    async def run() -> None:
        async with app.run_test(size=(110, 36)) as pilot:
            await until(pilot, lambda: app.welcome, "the client to join", timeout=20)
            before = dict(app.welcome)
            await pilot.press("d", "p", "r", "right", "right", "down")
            settings = (app.policy, app.selected, app.rotate, app.world.cursor)
            first.terminate()
            first.wait(10)
            await until(pilot, lambda: app.state.trouble, "the client to notice")
            # a placement meanwhile is refused at once, not queued for a dead server
            await pilot.press("space")
            await until(pilot, lambda: app.last_refusal.startswith("not placed"),
                        "the placement to be refused", timeout=3)
            processes.lifenet(*args)
            await until(pilot, lambda: app.network.joins == 2, "the client to join again",
                        timeout=30)
            assert app.is_running
            assert app.welcome["token"] != before["token"]
            assert (app.policy, app.selected, app.rotate, app.world.cursor) == settings
            await until(pilot, lambda: not app.state.trouble and app.state.gen >= 0,
                        "frames from the new server", timeout=20)
            await pilot.press("q")

    asyncio.run(run())


def test_a_round_ends_and_the_client_announces_its_winner(make_server: MakeServer,
                                                           processes: Processes) -> None:
    server = make_server(size=(32, 48), fill=0.0, round_length=4, decision_window=2.0)
    start_workers(processes, server, 1)

    async def scenario(app: LifenetClient, pilot: Pilot[Any]) -> None:
        await joined(app, pilot)
        assert app.welcome["round"] == 4 and app.grace == 15.0
        await advance(app, pilot, server)
        while app.patterns[app.selected][0] != "block":
            await pilot.press("p")
        await pilot.press("space")
        await until(pilot, lambda: app.placed, "the PLACED reply")
        landing = app.placed[0]["generation"]
        await advance(app, pilot, server)
        assert server.engine.generation == landing < 4
        await until(pilot, lambda: "points" in side_text(app) and app.board()[0][3] == 4,
                    "4 points for 4 cells")
        assert "round    1" in side_text(app)
        await advance(app, pilot, server, 4 - landing)  # the round's last generation
        await until(pilot, lambda: app.announced, "the round's result")
        assert app.announced[0]["winner"] == "alice"
        assert app.announced[0]["points"] == 4 * (4 - landing + 1)
        text = side_text(app)
        assert "round    2" in text and "1: alice" in text
        assert app.own_cells() == 0  # a fresh start: every cell neutral

    play(server, scenario)


def test_a_client_of_a_local_up_survives_its_restart_with_new_keys(
        processes: Processes) -> None:
    """``lifenet up`` makes new keys each run: the client of a local ``up`` that stops
    and starts again finds the new server key, joins again and plays on."""
    worker, player, frames = free_port(), free_port(), free_port()
    args = ["up", "--headless", "--workers", "1", "--bots", "0", "--size", "32x48",
            "--fill", "0", "--tick", "0.05", "--worker-port", str(worker),
            "--player-port", str(player), "--frame-port", str(frames)]
    connect = f"127.0.0.1:{player}"

    def answers() -> bool:
        try:
            found = credentials(connect, None, None)
            return found is not None and bool(remote.status(
                player_endpoint(connect), 0.5, found))
        except LifenetError:
            return False

    first = processes.lifenet(*args)
    wait_for(answers, 30, what="the first up to answer")
    keys = credentials(connect, None, None)
    assert keys is not None  # up is secure by default: CURVE with keys of its own
    app = LifenetClient(connect, "alice", timeout=1.0, credentials=keys,
                        rekey=lambda: credentials(connect, None, None))

    async def run() -> None:
        async with app.run_test(size=(110, 36)) as pilot:
            await until(pilot, lambda: app.welcome, "the client to join", timeout=20)
            await pilot.press("d", "p")
            settings = (app.policy, app.selected)
            first.send_signal(signal.SIGTERM)
            first.wait(20)
            await until(pilot, lambda: app.state.trouble, "the client to notice")
            processes.lifenet(*args)
            await until(pilot, lambda: app.network.joins == 2, "the client to join again",
                        timeout=40)
            assert app.network.credentials is not None
            assert app.network.credentials.server != keys.server  # the new up's key
            assert (app.policy, app.selected) == settings
            await until(pilot, lambda: not app.state.trouble and app.state.gen >= 0,
                        "frames from the new up", timeout=20)
            await pilot.press("q")

    asyncio.run(run())


def test_the_scoreboard_shows_the_top_and_ones_own_place_below_it(
        make_server: MakeServer, processes: Processes,
        zmq_context: zmq.Context[Any]) -> None:
    """Eleven players with two blocks each, alice with one: the frames carry the top
    ten, and alice's own row (12th of 12, from her PONG) is shown under them."""
    server = make_server(size=(64, 64), fill=0.0, protect=0, decision_window=2.0,
                         heartbeat=0.2, max_players_per_address=16)
    start_workers(processes, server, 1)
    block = library()["block"][0]
    others = []
    for k in range(11):
        player = PlayerSession(server.lobby.bound_endpoint, f"bot-{k:02d}",
                               context=zmq_context)
        player.join()
        others.append(player)
        for j in range(2):
            player.place(8 * (k // 4) + 4 * j, 16 * (k % 4), rle=block)

    async def scenario(app: LifenetClient, pilot: Pilot[Any]) -> None:
        await joined(app, pilot)
        while app.patterns[app.selected][0] != "block":
            await pilot.press("p")
        app.world.jump(60, 60)
        await pilot.press("space")
        await until(pilot, lambda: app.placed, "the PLACED reply")
        await advance(app, pilot, server, 2)
        await until(pilot, lambda: app.rank() == (12, 12), "alice's place from her PONG")
        text = side_text(app)
        assert text.count("bot-") == 7  # seven of the top, then alice's own row
        assert "12 " in text and "alice" in text and "4 more" in text

    try:
        play(server, scenario)
    finally:
        for player in others:
            player.close()


def test_a_pattern_is_found_by_name(make_server: MakeServer) -> None:
    server = make_server(size=(32, 32), fill=0.0)

    async def scenario(app: LifenetClient, pilot: Pilot[Any]) -> None:
        await joined(app, pilot)
        await pilot.press("slash")
        assert isinstance(app.screen, PatternSearch)
        await pilot.press(*"GUN")  # any case
        await pilot.press("enter")
        assert not isinstance(app.screen, PatternSearch)
        assert "gun" in app.patterns[app.selected][0]
        assert "gun" in side_text(app)
        await pilot.press("slash", *"blink", "escape")  # escape keeps the selection
        assert "gun" in app.patterns[app.selected][0]
        await pilot.press("slash", *"bl", "down", "up", "enter")
        assert app.patterns[app.selected][0].startswith("bl")  # names that start first
        assert app.world.preview_cells()  # the preview follows

    play(server, scenario)


def test_the_players_own_patterns_join_the_library(make_server: MakeServer,
                                                   tmp_path: Path) -> None:
    """``--patterns DIR``: a plaintext pattern of the player's is found by its name
    and placed; a broken file is skipped with a notice, the game goes on."""
    server = make_server(size=(32, 32), fill=0.0, decision_window=2.0)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "my-arrow.cells").write_text("!Name: My arrow\n.O.\nOOO\n")
    (mine / "broken.rle").write_text("x = 3, y = 3\nbo$2bo$3o%!\n")
    app = LifenetClient(server.lobby.bound_endpoint, "alice", pattern_dirs=[mine])
    assert len(app.problems) == 1 and "broken.rle" in app.problems[0]

    async def run() -> None:
        async with app.run_test(size=(110, 36)) as pilot:
            await joined(app, pilot)
            await pilot.press("slash", *"my arrow", "enter")
            assert app.patterns[app.selected][0] == "my-arrow"
            assert app.selected_cost() == 4
            await pilot.press("space")
            await until(pilot, lambda: app.placed, "the PLACED reply")
            await pilot.press("q")

    asyncio.run(run())
