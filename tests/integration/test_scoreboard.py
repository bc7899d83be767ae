"""The scoreboard at scale: frames carry the top rows, each player learns its own
place from its ``PONG``, and ``status`` counts the players who own cells."""

from __future__ import annotations

import pytest

from client.session import PlayerSession
from server.players.board import BOARD_TOP
from shared import remote
from shared.frames import FrameView
from tests.conftest import Processes
from tests.integration.conftest import MakeServer
from tests.integration.test_game import BLOCK, game, sessions, step, views, watch
from tests.integration.test_players import join

__all__ = ["sessions", "views"]  # fixtures

pytestmark = pytest.mark.integration

PLAYERS = BOARD_TOP + 4


def test_frames_carry_the_top_and_each_player_its_own_place(
        make_server: MakeServer, processes: Processes, sessions: list[PlayerSession],
        views: list[FrameView]) -> None:
    """Player k owns k blocks (4k cells): the frames list the top ``BOARD_TOP`` (the
    most cells first), and every player's PONG says its place among all of them."""
    server = game(make_server, processes, size=(64, 64), tile=(16, 64), protect=0,
                  max_players_per_address=PLAYERS + 1)
    players = [join(server, sessions, f"p{k:02d}") for k in range(1, PLAYERS + 1)]
    slot = 0
    for k, player in enumerate(players, start=1):
        for _ in range(k):  # k blocks, each in its own 4x4 slot of the world
            player.place(4 * (slot // 16), 4 * (slot % 16), rle=BLOCK)
            slot += 1
    view = watch(server, players[0], views)
    step(server, view)
    step(server, view)
    board = view.info["board"]
    assert len(board) == BOARD_TOP
    assert [row[1] for row in board] == [f"p{k:02d}" for k in range(PLAYERS, 0, -1)][:BOARD_TOP]
    assert [row[2] for row in board] == [4 * k for k in range(PLAYERS, 0, -1)][:BOARD_TOP]
    assert (view.info["ranked"], view.info["players"], view.info["players_owning"]) == (
        PLAYERS, PLAYERS, PLAYERS)
    for k, player in enumerate(players, start=1):
        pong = player.ping()
        assert (pong["rank"], pong["ranked"], pong["cells"], pong["points"]) == (
            PLAYERS + 1 - k, PLAYERS, 4 * k, 0), player.name
    report = remote.status(server.lobby.bound_endpoint)
    assert (report["players"], report["players_owning"]) == (PLAYERS, PLAYERS)
    # every JOINED, PLACED, PONG, GAME_LOGIC... the players got, counted
    assert report["player_bytes"] > PLAYERS * 100
    assert len(report["scores"]) == PLAYERS
