"""The live view (``server.tools.view``), without a terminal: the status line, the
screen's size, and the world scaled down to fit."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest

from server.tools import view

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def visible(line: str) -> str:
    return ESCAPE.sub("", line)


def test_the_status_line_names_the_best_players() -> None:
    info = {"gen": 7, "population": 40, "ms": 1.25, "workers": 2, "rule": "B3/S23",
            "board": [[1, "ada", 3], [2, "bob", 20], [3, "cy", 0], [4, "dee", 9]]}
    line = view.summary(info)
    assert line.startswith("generation 7  population 40  1.2 ms/gen  workers 2  B3/S23")
    assert line.endswith("players 4: bob 20, dee 9, ada 3")
    assert "players" not in view.summary({**info, "board": []})


def test_board_rows_may_grow_and_frames_may_say_more() -> None:
    """Rows are read by position: a field added after the live cells changes nothing;
    the round (docs/protocol.md) and the players away are shown, keys the view does
    not know are ignored."""
    info: dict[str, Any] = {
        "gen": 2, "board": [[1, "ada", 3, 17, "extra"], [2, "bob", 5, 0, "x"]],
        "away": [2], "shields": [[0, 0, 4, 4, 9, 1]], "something": "new"}
    assert view.summary(info).endswith("  players 2: bob 5 (away), ada 3")
    won = {"round": 2, "winner": "ada", "player": 1, "points": 90, "ended_at": 1200}
    info["round"] = {"number": 3, "length": 600, "ends_at": 1800, "points": [[1, 40]],
                     "last": [won]}
    assert "  round 3 ends at 1800, last won by ada  players 2:" in view.summary(info)
    info["round"] = {**info["round"], "last": [{**won, "winner": None, "player": None}]}
    assert "  round 3 ends at 1800  players 2:" in view.summary(info)
    assert view.status_line(info, (64, 64), 1, 40) == " generation 2  round 3  Ctrl-C quits"


def test_a_frame_renders_the_status_line_below_the_world() -> None:
    codes = np.zeros((4, 6), dtype=np.uint8)
    codes[1, 2] = 2
    screen = view.render(codes, {"gen": 3, "board": [[1, "ada", 1]]}, columns=120, lines=10)
    assert "generation 3" in screen and "players 1: ada 1" in screen
    assert "world 4x6  Ctrl-C quits" in screen and "scaled" not in screen


@pytest.mark.parametrize("columns, lines", [(80, 24), (200, 60)])
@pytest.mark.parametrize("height, width", [(64, 160), (1024, 1024)])
def test_the_screen_fits_the_terminal(columns: int, lines: int, height: int,
                                      width: int) -> None:
    rng = np.random.default_rng(height + columns)
    codes = ((rng.random((height, width)) < 0.3)
             * rng.integers(1, 5, (height, width))).astype(np.uint8)
    board = [[i, f"player-with-a-long-name-{i}", 1000 + i] for i in range(1, 9)]
    info = {"gen": 123456, "population": int((codes > 0).sum()), "ms": 12.5, "workers": 16,
            "rule": "B36/S23", "board": board}
    screen = view.render(codes, info, columns=columns, lines=lines)
    rows = screen.split("\n")
    assert len(rows) == lines
    assert max(len(visible(row)) for row in rows) <= columns
    status = visible(rows[-1])
    assert status.rstrip().endswith("Ctrl-C quits")
    assert "generation 123456" in status
    k = view.scale_for(height, width, columns, (lines - 1) * 2)
    world_rows = math.ceil(math.ceil(height / k) / 2)  # k x k cells a half character
    assert [len(visible(row)) for row in rows[:-1]] == \
        [math.ceil(width / k)] * world_rows + [0] * (lines - 1 - world_rows)
    if k > 1:
        assert f"scaled 1:{k}" in status
    else:
        assert "scaled" not in status


def test_the_status_line_drops_the_players_first_and_keeps_ctrl_c() -> None:
    info = {"gen": 9, "population": 300, "ms": 1.0, "workers": 2, "rule": "B3/S23",
            "board": [[1, "a-rather-long-player-name", 120], [2, "another-long-name", 80]]}
    wide = view.status_line(info, (1024, 1024), 4, 200)
    assert "players 2" in wide and "scaled 1:4" in wide and wide.endswith("Ctrl-C quits")
    leader = view.status_line(info, (1024, 1024), 4, 150)  # the leader alone, first
    assert "players 2: a-rather-long-player-name 120  world" in leader
    narrow = view.status_line(info, (1024, 1024), 4, 79)
    assert "players" not in narrow and narrow.endswith("Ctrl-C quits")
    assert "generation 9" in narrow and "scaled 1:4" in narrow and len(narrow) <= 79
    tiny = view.status_line(info, (1024, 1024), 4, 30)
    assert tiny.endswith("Ctrl-C quits") and "generation 9" in tiny and len(tiny) <= 30
    assert view.status_line(info, (8, 8), 1, 5) == "Ctrl-"


def reference(codes: np.ndarray, k: int) -> np.ndarray:
    """The rule, cell by cell: a block is alive if any cell is, in its most frequent
    live code (the lowest of those that tie)."""
    h, w = codes.shape
    out = np.zeros((-(-h // k), -(-w // k)), dtype=np.uint8)
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            block = codes[y * k:(y + 1) * k, x * k:(x + 1) * k].ravel()
            live = block[block != 0]
            if len(live):
                out[y, x] = int(np.argmax(np.bincount(live)))
    return out


@pytest.mark.parametrize("owners", [3, 60])  # a pass per owner; sorted blocks for many
def test_downscale_keeps_any_live_cell_in_its_majority_owner(owners: int) -> None:
    rng = np.random.default_rng(owners)
    for _ in range(150):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        k = int(rng.integers(2, 8))
        codes = ((rng.random((h, w)) < rng.random())
                 * rng.integers(1, owners + 1, (h, w))).astype(np.uint8)
        assert np.array_equal(view.downscale(codes, k), reference(codes, k))


def test_downscale_ties_go_to_the_lowest_code() -> None:
    codes = np.array([[3, 2], [0, 0]], dtype=np.uint8)
    assert view.downscale(codes, 2).tolist() == [[2]]
    codes = np.array([[1, 4], [4, 1]], dtype=np.uint8)  # neutral wins a tie
    assert view.downscale(codes, 2).tolist() == [[1]]
    assert view.downscale(codes, 1) is codes


def test_the_players_count_is_every_ranked_player_not_the_rows_carried() -> None:
    info = {"gen": 1, "board": [[1, "ada", 9], [2, "bob", 4]], "ranked": 1000}
    assert "players 1000: ada 9, bob 4" in view.summary(info)


def test_a_big_world_is_shown_by_its_middle_at_a_bounded_scale() -> None:
    """``region_for``: the middle of the world at 1:8 at most (its chunks fit a
    viewport), the whole world when it fits at a smaller scale; ``render`` with the
    world's size says which part it shows."""
    assert view.region_for(4096, 4096, 200, 60) == (4096 // 2 - 472, 4096 // 2 - 800, 944, 1600)
    assert view.region_for(300, 500, 200, 60) == (0, 0, 300, 500)  # 1:3 shows it all
    screen = view.render(np.ones((944, 1600), dtype=np.uint8), {"gen": 7}, 200, 60,
                    world=(4096, 4096))
    status = screen.rsplit("\n", 1)[1]
    assert "world 4096x4096, the middle 944x1600" in status and "scaled 1:8" in status
