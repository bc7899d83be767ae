"""The terminal client's view of the world: a torus seen through a window on the cursor.

Two cells per character: the upper half block "▀" with the upper cell as foreground and
the lower cell as background, the colours of ``shared.colours``. A world larger than
the widget is shown centred on the cursor and wraps seamlessly (the torus has no edge,
so neither has its view: no scrollbars); a world that fits is shown whole.

Over the world: the cursor (a white cell: no player's colour is near white), the
selected pattern's preview at the cursor (the player's colour, faded; red where a cell
is occupied and the pattern would land only in part; dark red everywhere when the
player cannot afford it), the shields of fresh placements (a lighter background), and
other players' cells that share the player's colour (dimmed, so one's own cells stand
out when colours repeat).

``open_spots`` and ``own_spots`` are where the "open space" and "my cells" keys jump.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt
from rich.color import Color, blend_rgb
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from shared.colours import CURSOR, EMPTY_BG, PLAYERS, WARNING, colour
from shared.grid import FIRST_PLAYER_CODE, MAX_CODE, Codes
from shared.protocol import MAX_SHIELDS

HALF_BLOCK = "\u2580"
SHIELD_BG = 236  # a grey a shade lighter than empty space: whoever's shield it is
BLOCK = 8  # the side of the blocks the jump keys reason about

# colour keys: 0..255 a 256-colour index; these are drawn specially
PREVIEW, OCCUPIED, UNAFFORDABLE, CURSOR_KEY, SHIELD, SAME = range(256, 262)


class CursorMoved(Message):
    pass


class WorldView(Widget, can_focus=True):
    """The world around the cursor, two cells per character (see the module doc)."""

    DEFAULT_CSS = """
    WorldView { background: rgb(28,28,28); }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1, 0)", "Up", show=False),
        Binding("down,j", "move(1, 0)", "Down", show=False),
        Binding("left,h", "move(0, -1)", "Left", show=False),
        Binding("right,l", "move(0, 1)", "Right", show=False),
        Binding("K", "move(-8, 0)", "Up 8", show=False),
        Binding("J", "move(8, 0)", "Down 8", show=False),
        Binding("H", "move(0, -8)", "Left 8", show=False),
        Binding("L", "move(0, 8)", "Right 8", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.codes: Codes = np.zeros((0, 0), dtype=np.uint8)
        self.cursor = (0, 0)
        self.own_code = FIRST_PLAYER_CODE
        self.affordable = True
        self.shape: npt.NDArray[np.bool_] = np.zeros((0, 0), dtype=np.bool_)
        self.shields: list[tuple[int, int, int, int]] = []  # y, x, h, w of live shields
        self._preview: dict[int, list[int]] = {}  # world row -> columns of the preview
        self._styles: dict[tuple[int, int], Style] = {}
        self._lut = self._make_lut()

    # -- colours ---------------------------------------------------------------------------

    def _make_lut(self) -> npt.NDArray[np.int16]:
        """Each cell code's colour key, for every code a wide world may hold; another
        player's cells in one's own colour are ``SAME`` (colours repeat after 29)."""
        codes = np.arange(MAX_CODE + 1)
        lut: npt.NDArray[np.int16] = np.asarray(PLAYERS, dtype=np.int16)[
            (codes - FIRST_PLAYER_CODE) % len(PLAYERS)]
        lut[:FIRST_PLAYER_CODE] = [colour(c) for c in range(FIRST_PLAYER_CODE)]
        same = lut == colour(self.own_code)
        same[:FIRST_PLAYER_CODE] = False
        same[self.own_code] = False
        lut[same] = SAME
        return lut

    def _colour(self, key: int) -> Color:
        background = Color.from_ansi(EMPTY_BG).get_truecolor()
        mine = Color.from_ansi(colour(self.own_code)).get_truecolor()
        if key == CURSOR_KEY:
            return Color.from_ansi(CURSOR)
        if key == OCCUPIED:
            return Color.from_ansi(WARNING)
        if key == UNAFFORDABLE:
            return Color.from_ansi(88)
        if key == PREVIEW:
            return Color.from_triplet(blend_rgb(mine, background, 0.45))
        if key == SAME:
            return Color.from_triplet(blend_rgb(mine, background, 0.55))
        if key == SHIELD:
            return Color.from_ansi(SHIELD_BG)
        return Color.from_ansi(key)

    def _style(self, fg: int, bg: int) -> Style:
        style = self._styles.get((fg, bg))
        if style is None:
            style = self._styles[fg, bg] = Style(color=self._colour(fg),
                                                 bgcolor=self._colour(bg))
        return style

    # -- state -------------------------------------------------------------------------------

    def set_world(self, codes: Codes) -> None:
        resized = codes.shape != self.codes.shape
        self.codes = codes
        if resized:
            self._update_preview()
        self.refresh()

    def set_own(self, code: int) -> None:
        if code != self.own_code:
            self.own_code = code
            self._lut = self._make_lut()
            self._styles.clear()
            self.refresh()

    def set_pattern(self, shape: npt.NDArray[np.bool_], affordable: bool = True) -> None:
        self.shape = shape
        self.affordable = affordable
        self._update_preview()
        self.refresh()

    def set_shields(self, shields: list[tuple[int, int, int, int]]) -> None:
        """The live shields' zones (at most ``MAX_SHIELDS`` kept, each clamped to the
        world: a server's list is drawn, never trusted to be small)."""
        h, w = self.codes.shape
        kept = [(y, x, min(sh, h), min(sw, w)) for y, x, sh, sw in shields[:MAX_SHIELDS]]
        if kept != self.shields:
            self.shields = kept
            self.refresh()

    def preview_cells(self) -> list[tuple[int, int]]:
        """The world cells the selected pattern covers at the cursor."""
        return sorted((y, x) for y, xs in self._preview.items() for x in xs)

    def occupied(self) -> int:
        """How many of the preview's cells are alive now (they would not land)."""
        return sum(int(self.codes[y, x] != 0) for y, xs in self._preview.items() for x in xs)

    def _update_preview(self) -> None:
        self._preview = {}
        h, w = self.codes.shape
        if not h or not w:
            return
        ys, xs = np.nonzero(self.shape)
        for y, x in zip((ys + self.cursor[0]) % h, (xs + self.cursor[1]) % w, strict=True):
            self._preview.setdefault(int(y), []).append(int(x))

    # -- moving ------------------------------------------------------------------------------

    def action_move(self, dy: int, dx: int) -> None:
        h, w = self.codes.shape
        if h and w:
            self.jump((self.cursor[0] + dy) % h, (self.cursor[1] + dx) % w)

    def jump(self, y: int, x: int) -> None:
        h, w = self.codes.shape
        self.cursor = (y % h, x % w) if h and w else (y, x)
        self._update_preview()
        self.refresh()
        self.post_message(CursorMoved())

    # -- the window ----------------------------------------------------------------------------

    def origin(self) -> tuple[int, int]:
        """The world cell at the top-left of the widget: the cursor is in the middle of
        a world larger than the widget; a world that fits is shown from (0, 0)."""
        h, w = self.codes.shape
        rows, columns = 2 * self.size.height, self.size.width
        oy = 0 if h <= rows else (self.cursor[0] - rows // 2) % h
        ox = 0 if w <= columns else (self.cursor[1] - columns // 2) % w
        return oy, ox

    def on_screen(self, y: int, x: int) -> tuple[int, int] | None:
        """The character (column, line) that shows world cell ``(y, x)``, if shown."""
        h, w = self.codes.shape
        oy, ox = self.origin()
        row, column = (y - oy) % h, (x - ox) % w
        if row < 2 * self.size.height and column < self.size.width:
            return column, row // 2
        return None

    def _columns(self) -> npt.NDArray[np.int64]:
        w = self.codes.shape[1]
        _, ox = self.origin()
        columns: npt.NDArray[np.int64] = (ox + np.arange(min(w, self.size.width))) % w
        return columns

    def _keys(self, row: int, columns: npt.NDArray[np.int64]) -> npt.NDArray[np.int16]:
        """The colour keys of world row ``row`` at ``columns``: cells, shields, preview
        and cursor."""
        cells = self.codes[row, columns]
        keys: npt.NDArray[np.int16] = self._lut[cells]
        h, w = self.codes.shape
        for y, x, sh, sw in self.shields:
            if (row - y) % h < sh:
                keys[((columns - x) % w < sw) & (cells == 0)] = SHIELD
        preview = self._preview.get(row)
        if preview:
            where = {int(x): i for i, x in enumerate(columns)}
            for x in preview:
                i = where.get(x)
                if i is None:
                    continue
                if cells[i]:
                    keys[i] = OCCUPIED
                else:
                    keys[i] = PREVIEW if self.affordable else UNAFFORDABLE
        if self.cursor[0] == row:
            hit = np.nonzero(columns == self.cursor[1])[0]
            keys[hit] = CURSOR_KEY
        return keys

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        h, w = self.codes.shape
        if not h or not w:
            return Strip.blank(width)
        oy, _ = self.origin()
        rows = 2 * self.size.height
        first, second = 2 * y, 2 * y + 1
        if first >= min(h, rows):
            return Strip.blank(width)
        columns = self._columns()
        blank = np.full(len(columns), EMPTY_BG, dtype=np.int16)
        tops = self._keys((oy + first) % h, columns).tolist()
        bottoms = (self._keys((oy + second) % h, columns) if second < min(h, rows)
                   else blank).tolist()
        segments: list[Segment] = []
        run, start = (tops[0], bottoms[0]), 0
        for i in range(1, len(tops) + 1):
            pair = (tops[i], bottoms[i]) if i < len(tops) else None
            if pair != run:
                segments.append(Segment(HALF_BLOCK * (i - start), self._style(*run)))
                if pair is not None:
                    run, start = pair, i
        return Strip(segments, len(tops)).extend_cell_length(width)


# -- where the jump keys go -----------------------------------------------------------------------


def _blocks(alive: npt.NDArray[np.bool_], side: int) -> npt.NDArray[np.int64]:
    """Live cells per ``side`` x ``side`` block (the world's ragged edge left out)."""
    h, w = alive.shape
    ny, nx = max(1, h // side), max(1, w // side)
    sy, sx = min(side, h), min(side, w)
    counts: npt.NDArray[np.int64] = alive[:ny * sy, :nx * sx].reshape(
        ny, sy, nx, sx).sum(axis=(1, 3))
    return counts


def open_spots(codes: Codes, cursor: tuple[int, int], side: int = BLOCK,
               limit: int = 16) -> list[tuple[int, int]]:
    """The centres of the emptiest places of the world, best first: blocks whose 3x3
    neighbourhood of blocks (on the torus) has the fewest live cells, the nearest to
    ``cursor`` first among equals."""
    h, w = codes.shape
    if not h or not w:
        return []
    counts = _blocks(codes != 0, side)
    ny, nx = counts.shape
    crowd = np.zeros_like(counts)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            crowd += np.roll(np.roll(counts, dy, 0), dx, 1)
    sy, sx = min(side, h), min(side, w)
    cy, cx = cursor[0] // sy, cursor[1] // sx
    by, bx = np.indices((ny, nx))
    dist = np.minimum(abs(by - cy), ny - abs(by - cy)) ** 2 + \
        np.minimum(abs(bx - cx), nx - abs(bx - cx)) ** 2
    order = np.lexsort((dist.ravel(), crowd.ravel()))[:limit]
    return [(int(i // nx) * sy + sy // 2, int(i % nx) * sx + sx // 2) for i in order]


def own_spots(codes: Codes, code: int, side: int = BLOCK) -> list[tuple[int, int]]:
    """One cell of each block holding the player's cells (the one nearest the block's
    centre of mass), in reading order: the stops of the "my cells" key."""
    ys, xs = np.nonzero(codes == code)
    if not len(ys):
        return []
    blocks: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
        blocks.setdefault((y // side, x // side), []).append((y, x))
    spots = []
    for key in sorted(blocks):
        cells = blocks[key]
        my = sum(y for y, _ in cells) / len(cells)
        mx = sum(x for _, x in cells) / len(cells)
        spots.append(min(cells, key=lambda c: (c[0] - my) ** 2 + (c[1] - mx) ** 2))
    return spots


def next_spot(spots: list[tuple[int, int]], cursor: tuple[int, int]) -> tuple[int, int] | None:
    """The first spot after ``cursor`` in reading order, wrapping around."""
    if not spots:
        return None
    return next((s for s in spots if s > cursor), spots[0])
