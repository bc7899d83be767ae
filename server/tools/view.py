"""A live view of the world in a terminal: two cells per character, with ANSI colours.

Each character shows two rows of cells with the upper half block: the foreground
colour is the upper cell, the background the lower one. Only the standard library,
NumPy and ANSI escapes: the embedded default must run on any terminal without extra
packages.

A world larger than the terminal is scaled down to fit, by a whole factor k (the same
both ways, so shapes keep their proportions): each half character shows a block of
k x k cells, drawn alive if any cell of the block is alive, in the colour of the owner
of most of the block's live cells (a tie goes to the lowest code, so neutral wins ties,
as it does for a birth between two owners). The status line then says ``scaled 1:k``.

A world of more than ``REGION_CELLS`` cells is not fetched whole (a 4096x4096 world's
frames are megabytes a generation): ``lifenet up`` shows the middle of it through a
viewport (``shared.viewport``), scaled 1:k with k at most ``REGION_SCALE``, and the status
line says ``the middle HxW``; the bytes it receives follow that region, not the world.

The screen is exactly the terminal's lines: the world, blank lines, and the status line
on the last one, never wider than the terminal. When the status line does not fit, its
parts go in a fixed order (the players first, the generation last); "Ctrl-C quits"
always stays.
"""

from __future__ import annotations

import shutil
from typing import Any

import numpy as np

from shared.colours import colour
from shared.grid import Codes

__all__ = ["ENTER", "LEAVE", "colour", "downscale", "render", "scale_for", "status_line",
           "summary"]

QUIT = "Ctrl-C quits"
FEW_CODES = 24  # up to this many owners in the blocks to merge: a pass per owner
REGION_CELLS = 1 << 20  # worlds above this many cells are watched through a viewport
REGION_SCALE = 8        # ... at 1:8 at most (about 400 chunks on a 200x60 terminal)


def region_for(height: int, width: int, columns: int,
               lines: int) -> tuple[int, int, int, int]:
    """The middle of a ``height`` x ``width`` world that a terminal of ``columns`` x
    ``lines`` shows at a scale of at most 1:``REGION_SCALE``: ``(y, x, h, w)``."""
    rows = max(1, (lines - 1) * 2)
    k = min(scale_for(height, width, columns, rows), REGION_SCALE)
    h, w = min(height, rows * k), min(width, columns * k)
    return (height - h) // 2, (width - w) // 2, h, w


def scale_for(height: int, width: int, columns: int, rows: int) -> int:
    """The smallest whole factor k that fits ``height`` x ``width`` cells into
    ``columns`` x ``rows`` cells (1: the world fits as it is)."""
    return max(1, -(-height // max(1, rows)), -(-width // max(1, columns)))


def downscale(codes: Codes, k: int) -> Codes:
    """``codes`` with each k x k block made one cell: alive if any of its cells is, in
    the code most of its live cells have (the lowest of those that tie)."""
    if k <= 1:
        return codes
    h, w = codes.shape
    bh, bw = -(-h // k), -(-w // k)
    padded = np.zeros((bh * k, bw * k), dtype=codes.dtype)
    padded[:h, :w] = codes
    blocks = padded.reshape(bh, k, bw, k)
    high = blocks.max(axis=(1, 3))
    low = np.where(blocks == 0, np.iinfo(codes.dtype).max, blocks).min(axis=(1, 3))
    out: Codes = high.copy()  # a block of one owner (or none) is that owner (or empty)
    ys, xs = np.nonzero((high != 0) & (low != high))
    if len(ys):  # blocks of several owners: the most frequent live code
        out[ys, xs] = _majority(blocks[ys, :, xs, :].reshape(len(ys), k * k))
    return out


def _majority(blocks: Codes) -> Codes:
    """Each row's most frequent nonzero code, the lowest of those that tie."""
    present = np.flatnonzero(np.bincount(blocks.ravel(), minlength=2)[1:]) + 1
    if len(present) <= FEW_CODES:  # a pass per code: a few owners, the usual game
        best = np.zeros(len(blocks), dtype=np.int64)
        chosen = np.zeros(len(blocks), dtype=blocks.dtype)
        for code in present:  # ascending: a tie keeps the lower code
            count = np.count_nonzero(blocks == code, axis=1)
            better = count > best
            best[better], chosen[better] = count[better], code
        return chosen
    # many owners: sort each block; the longest run of one code (the first: lowest)
    ranked = np.sort(blocks, axis=1)
    n = ranked.shape[1]
    start = np.ones(ranked.shape, dtype=bool)
    start[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    index = np.broadcast_to(np.arange(n), ranked.shape)
    run_start = np.maximum.accumulate(np.where(start, index, 0), axis=1)
    run = np.where(ranked != 0, index - run_start + 1, 0)
    chosen_many: Codes = ranked[np.arange(len(ranked)), run.argmax(axis=1)]
    return chosen_many


def render(codes: Codes, info: dict[str, Any], columns: int | None = None,
           lines: int | None = None, world: tuple[int, int] | None = None) -> str:
    """The whole screen for one frame: ``lines`` lines, none wider than ``columns``.
    With ``world`` (its height and width), ``codes`` is the middle of that world (a
    ``region_for``), and the status line says so."""
    size = shutil.get_terminal_size((80, 24))
    columns = max(1, columns or size.columns)
    lines = max(2, lines or size.lines)
    height, width = codes.shape
    k = scale_for(height, width, columns, (lines - 1) * 2)
    view = downscale(codes, k)
    if view.shape[0] % 2:
        view = np.vstack([view, np.zeros((1, view.shape[1]), dtype=view.dtype)])
    out = ["\x1b[H"]
    for top, bottom in zip(view[0::2].tolist(), view[1::2].tolist(), strict=True):
        last: tuple[int, int] | None = None
        parts: list[str] = []
        for t, b in zip(top, bottom, strict=True):
            pair = (colour(t), colour(b))
            if pair != last:
                parts.append(f"\x1b[38;5;{pair[0]};48;5;{pair[1]}m")
                last = pair
            parts.append("\u2580")
        out.append("".join(parts) + "\x1b[0m\x1b[K\n")
    out.extend("\x1b[K\n" for _ in range(lines - 1 - view.shape[0] // 2))
    # The last line: one column short of the edge, so no terminal wraps or scrolls.
    status = status_line(info, world or codes.shape, k, columns - 1,
                         region=codes.shape if world else None)
    out.append("\x1b[1m" + status + "\x1b[0m\x1b[K\x1b[J")
    return "".join(out)


def status_line(info: dict[str, Any], shape: tuple[int, ...], k: int, width: int,
                region: tuple[int, ...] | None = None) -> str:
    """The status line in at most ``width`` characters, ending with "Ctrl-C quits":
    what does not fit goes, the players first (the leader alone, then none), then the
    rule, the workers, the speed, the population, the world's size (and the ``region``
    of it shown), the round (its number alone, then none), the scale; the generation
    last."""
    h, w = shape[0], shape[1]
    parts = _summary_parts(info)  # (drop rank, [text, shorter text...]): lowest goes first
    if region is None:
        parts.append((6, [f"world {h}x{w}"]))
    else:
        parts.append((6, [f"world {h}x{w}, the middle {region[0]}x{region[1]}",
                          f"world {h}x{w}"]))
    if k > 1:
        parts.append((8, [f"scaled 1:{k}"]))
    while True:
        line = " " + "  ".join([*(texts[0] for _, texts in parts), QUIT])
        if len(line) <= width or not parts:
            break
        lowest = min(parts, key=lambda p: p[0])  # the first of the lowest rank
        if len(lowest[1]) > 1:
            lowest[1].pop(0)
        else:
            parts.remove(lowest)
    if len(line) > width:  # not even "Ctrl-C quits" with a space fits
        line = QUIT[:max(0, width)]
    return line


def _summary_parts(info: dict[str, Any]) -> list[tuple[int, list[str]]]:
    """generation, population, ms/gen, workers, rule, then the round (with rounds on:
    its number, the generation that ends it, the last winner) and the players with the
    most live cells (those in their grace marked away), if any; each with its rank
    in ``status_line``'s order of what goes first when space runs out, and its
    shorter forms."""
    parts = [(9, [f"generation {info.get('gen', 0)}"]),
             (5, [f"population {info.get('population', 0)}"]),
             (4, [f"{info.get('ms', 0.0):.1f} ms/gen"]),
             (3, [f"workers {info.get('workers', 0)}"])]
    if info.get("rule"):
        parts.append((2, [str(info["rule"])]))
    game = info.get("round")
    if isinstance(game, dict) and type(game.get("number")) is int:
        short = f"round {game['number']}"
        long = short + (f" ends at {game['ends_at']}" if "ends_at" in game else "")
        last = game.get("last") or []
        if last and isinstance(last[0], dict) and last[0].get("winner"):
            long += f", last won by {last[0]['winner']}"
        parts.append((7, [long, short]))
    board = info.get("board") or []
    if board:
        # rows are [player, name, live cells, ...]: read by position, more may follow
        away = set(info.get("away") or ())
        best = [f"{row[1]} {row[2]}" + (" (away)" if row[0] in away else "")
                for row in sorted(board, key=lambda row: -row[2])[:3]]
        # frames carry the top rows only; "ranked" counts every player on the board
        count = info.get("ranked") if type(info.get("ranked")) is int else len(board)
        parts.append((1, [f"players {count}: {', '.join(best)}",
                          f"players {count}: {best[0]}"]))
    return parts


def summary(info: dict[str, Any]) -> str:
    """One line about a frame: generation, population, speed, workers, rule, and the
    players with the most live cells."""
    return "  ".join(texts[0] for _, texts in _summary_parts(info))


ENTER = "\x1b[?1049h\x1b[?25l\x1b[2J"
LEAVE = "\x1b[0m\x1b[?25h\x1b[?1049l"
