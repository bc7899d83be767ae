"""A thousand players owning cells at once, over real sockets: owner codes above 255
(a *wide* world) in the server, on the wire to the workers, in frames, deltas and
viewport chunks, every generation equal to the reference ``simulate`` with its owner
rules (survivors keep their owner, a birth takes its parents' majority, a tie is
neutral)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zmq

from client.session import PlayerSession
from server.app import Server
from shared import remote
from shared.frames import FrameView
from shared.grid import NARROW_MAX_CODE, Grid, is_wide
from shared.life import simulate
from shared.viewport import Viewport
from tests.conftest import Processes
from tests.integration.conftest import MakeServer
from tests.integration.test_game import BLINKER, GLIDER, game, step
from tests.integration.test_viewports import caught_up, look

pytestmark = pytest.mark.integration

PLAYERS = 1000
SPACING = 6          # one 6x6 slot a player: a blinker or a glider with room around it
SIDE = 32 * SPACING  # 32 x 32 slots, 1024 >= PLAYERS


@pytest.fixture
def crowd() -> Iterator[tuple[zmq.Context[Any], list[PlayerSession]]]:
    """A context with room for a thousand sockets (libzmq's default is 1023), and the
    sessions made on it, all closed at the end."""
    context: zmq.Context[Any] = zmq.Context()
    context.set(zmq.MAX_SOCKETS, 4 * PLAYERS)
    made: list[PlayerSession] = []
    yield context, made
    for s in made:
        s.close()
    context.destroy(linger=0)


@pytest.mark.timeout(240)
def test_a_thousand_players_own_cells_and_every_frame_follows_the_reference(
        make_server: MakeServer, processes: Processes,
        crowd: tuple[zmq.Context[Any], list[PlayerSession]]) -> None:
    context, sessions = crowd
    server: Server = game(make_server, processes, workers=2, size=(SIDE, SIDE),
                          tile=(48, SIDE), protect=0, max_players_per_address=PLAYERS + 1,
                          joins_per_second=1000.0, decision_window=0.02)
    rng = random.Random(13)
    for i in range(PLAYERS):
        session = PlayerSession(server.lobby.bound_endpoint, f"p{i:04d}", context=context)
        sessions.append(session)
        session.join()
    assert sessions[-1].player == PLAYERS and sessions[-1].code == PLAYERS + 1
    for i, session in enumerate(sessions):
        pattern = rng.choice([BLINKER, GLIDER])  # gliders meet: births of mixed parents
        session.place(SPACING * (i // 32) + 1, SPACING * (i % 32) + 1, rle=pattern,
                      rotate=rng.randrange(4))
    view = FrameView(sessions[0].frame_endpoint, context=context)
    chunks = Viewport(server.view_endpoint, server.lobby.bound_endpoint, (SIDE, SIDE),
                      context=context)
    try:
        look(chunks, 0, 0, SIDE, SIDE)
        step(server, view)  # the placements land
        world = server.engine.grid
        assert world.wide and int(world.codes.max()) > NARROW_MAX_CODE
        owners = set(np.unique(world.codes).tolist()) - {0, 1}
        assert owners == {s.code for s in sessions}  # every one of them owns cells
        report = remote.status(server.lobby.bound_endpoint)
        assert (report["players"], report["players_owning"]) == (PLAYERS, PLAYERS)
        births_of_mixed_parents = 0
        for _ in range(10):
            before = server.engine.grid.copy()
            step(server, view)
            expected = simulate(before, server.rule)
            assert server.engine.grid == expected
            assert view.codes is not None and is_wide(view.codes)
            assert np.array_equal(view.codes, expected.codes)  # frames and deltas
            caught_up(chunks, server.engine.generation)
            assert np.array_equal(chunks.cells(0, 0, SIDE, SIDE), expected.codes)
            births_of_mixed_parents += mixed_births(before, expected)
        assert births_of_mixed_parents > 0  # the owner votes were exercised
    finally:
        view.close()
        chunks.close()


def mixed_births(before: Grid, after: Grid) -> int:
    """Births in ``after`` whose live parents in ``before`` had more than one owner."""
    padded = before.padded()
    born = np.argwhere((before.codes == 0) & (after.codes != 0))
    count = 0
    for y, x in born.tolist():
        parents = padded[y:y + 3, x:x + 3].ravel()
        if len(set(parents[parents != 0].tolist())) > 1:
            count += 1
    return count


def test_the_load_test_reports_whether_its_bots_kept_up() -> None:
    """``lifenet loadtest`` (a few bots, a few seconds): the share of answers that came
    in time (from the server's own counts), its bots niced as asked (read from
    ``/proc`` while they run), and every bot still connected at the end."""
    import os
    import threading
    from pathlib import Path

    from server.tools import loadtest
    from server.tools.up import Embedded

    if not Path("/proc/self/stat").exists():
        pytest.skip("reads the bots' priority from /proc (Linux)")
    seen: list[int] = []
    start = Embedded.start

    def start_and_look(self: Embedded) -> None:
        start(self)

        def look_at_bots() -> None:
            for name, proc in self.children.started:
                if name.startswith("bot"):
                    stat = Path(f"/proc/{proc.pid}/stat").read_text()
                    seen.append(int(stat.rsplit(")", 1)[1].split()[16]))  # nice

        threading.Thread(target=look_at_bots).start()

    own = os.nice(0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Embedded, "start", start_and_look)
        report = loadtest.run_loadtest(loadtest.LoadTest(
            bots=12, size="48x48", tick=0.05, seconds=2.0, bot_nice=5))
    assert seen and all(nice == min(19, own + 5) for nice in seen), seen
    assert report["bot_nice"] == 5 and report["players_connected_at_end"] == 12
    assert report["generations"] > 0
    answered = report["answered_in_time"]
    assert answered is not None and 0.5 <= answered <= 1.0, report
    stages = report["server_stages_ms"]
    assert stages is not None and set(stages) >= {"ask", "workers", "players", "publish"}
    assert all(ms >= 0 for ms in stages.values()) and stages["players"] > 0, stages
