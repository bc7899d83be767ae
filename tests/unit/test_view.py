"""The live view's status line (``server.view``), without a terminal."""

from __future__ import annotations

import numpy as np

from server.tools import view


def test_the_status_line_names_the_best_players() -> None:
    info = {"gen": 7, "population": 40, "ms": 1.25, "workers": 2, "rule": "B3/S23",
            "board": [[1, "ada", 3], [2, "bob", 20], [3, "cy", 0], [4, "dee", 9]]}
    line = view.summary(info)
    assert line.startswith("generation 7  population 40  1.2 ms/gen  workers 2  B3/S23")
    assert line.endswith("players 4: bob 20, dee 9, ada 3")
    assert "players" not in view.summary({**info, "board": []})


def test_a_frame_renders_the_status_line_below_the_world() -> None:
    codes = np.zeros((4, 6), dtype=np.uint8)
    codes[1, 2] = 2
    screen = view.render(codes, {"gen": 3, "board": [[1, "ada", 1]]}, columns=80, lines=10)
    assert "generation 3" in screen and "players 1: ada 1" in screen
