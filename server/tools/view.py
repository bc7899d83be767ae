"""A live view of the world in a terminal: two cells per character, with ANSI colours.

Each character shows two rows of cells with the upper half block: the foreground
colour is the upper cell, the background the lower one. A world larger than the
terminal shows its top-left corner. Only the standard library and ANSI escapes: the
embedded default must run on any terminal without extra packages.
"""

from __future__ import annotations

import shutil
from typing import Any

import numpy as np

from shared.colours import colour
from shared.grid import Codes

__all__ = ["ENTER", "LEAVE", "colour", "render"]


def render(codes: Codes, info: dict[str, Any], columns: int | None = None,
           lines: int | None = None) -> str:
    """The whole screen for one frame, starting at the top-left corner."""
    size = shutil.get_terminal_size((80, 24))
    columns = columns or size.columns
    lines = lines or size.lines
    rows_shown = max(2, (lines - 2) * 2)
    view = codes[:rows_shown, :columns]
    if view.shape[0] % 2:
        view = np.vstack([view, np.zeros((1, view.shape[1]), dtype=np.uint8)])
    out = ["\x1b[H"]
    top_rows = view[0::2].tolist()
    bottom_rows = view[1::2].tolist()
    for top, bottom in zip(top_rows, bottom_rows, strict=True):
        last: tuple[int, int] | None = None
        parts: list[str] = []
        for t, b in zip(top, bottom, strict=True):
            pair = (colour(t), colour(b))
            if pair != last:
                parts.append(f"\x1b[38;5;{pair[0]};48;5;{pair[1]}m")
                last = pair
            parts.append("\u2580")
        out.append("".join(parts) + "\x1b[0m\x1b[K\n")
    h, w = codes.shape
    shown = f"showing {min(h, rows_shown)}x{min(w, columns)} of {h}x{w}" \
        if (h > rows_shown or w > columns) else f"world {h}x{w}"
    status = f" {summary(info)}  {shown}  (Ctrl-C quits)"
    out.append("\x1b[1m" + status[:columns] + "\x1b[0m\x1b[K\x1b[J")
    return "".join(out)


def summary(info: dict[str, Any]) -> str:
    """One line about a frame: generation, population, speed, workers, rule, and the
    players with the most live cells."""
    line = (f"generation {info.get('gen', 0)}  population {info.get('population', 0)}  "
            f"{info.get('ms', 0.0):.1f} ms/gen  workers {info.get('workers', 0)}  "
            f"{info.get('rule', '')}")
    board = info.get("board") or []
    if board:
        best = sorted(board, key=lambda row: -row[2])[:3]
        line += f"  players {len(board)}: " + ", ".join(f"{name} {cells}"
                                                       for _, name, cells in best)
    return line


ENTER = "\x1b[?1049h\x1b[?25l\x1b[2J"
LEAVE = "\x1b[0m\x1b[?25h\x1b[?1049l"
