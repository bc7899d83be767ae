"""Shields: a fresh placement evolves as if alone for a few generations (``--protect``).

A placement lands next to anything: without help, a glider put beside another player's
block is broken by it before its owner can do anything. So for ``length`` generations
after a placement lands, its *zone* (the bounding box of its cells on the torus, grown by
``MARGIN`` cells on every side) evolves as if it were alone in the world: the engine
computes the zone's next generation from the frozen world with every cell outside the
zone counted as dead (the kernel's owner-aware step on the zone padded with dead cells,
so a birth takes its parents' majority owner as everywhere), and writes it over what
the workers made there. Cells inside the zone still act on the world outside it (the
workers see the whole world); only the zone is shielded.

Who gets a shield (a shield protects a fresh start; it must never be a weapon):

- Only a *compact* placement: its bounding box (before the margin) holds at most
  ``max(MIN_BOX, SPREAD * live cells)`` cells (a glider's 3x3 for 5 cells, an acorn's 7x3
  for 7, a Gosper gun's 36x9 for 36 all qualify). Two cells at opposite corners of a
  256x256 box cost 2 energy and would shield all of it: such a placement is still
  placed, unshielded.
- Only a placement whose zone holds no live cell of another player when it lands (after
  its own cells and the boundary's earlier placements are in): a shield protects a fresh
  start in open space or beside neutral cells, and never cuts another player's cells off
  from the world. Such a placement too is placed, unshielded.
- Not a zone that overlaps one of the same player's shields that ended fewer than
  ``length`` generations before it lands: a spot is shielded for ``length`` generations,
  then open to everyone for at least as long (no chaining one shield after the other).

Rules that keep every generation exact and deterministic:

- Zones of live shields never overlap. A ``PLACE`` whose zone would overlap the live
  shield of another player is refused, with the generations that shield still lasts; one
  that overlaps only its own player's shields is taken, and lands without a shield of
  its own (the later one's shield is refused, never merged: a merged box could swallow
  somebody else's cells). A placement that is not compact has no zone: it is refused
  only when one of its cells lies in another player's live shield.
- Two placements queued for the same boundary are taken in the order they came: a later
  one's cells inside a zone made earlier at that boundary by another player are not
  placed (refunded, and counted as occupied in ``landed``), and it gets no shield if its
  zone overlaps one.
- Other players' decisions (keep-alives and let-dies) on cells inside a live shield are
  refused: the zone's owner alone decides there.
- At most ``MAX_SHIELDS`` shields live at once: a placement asked for while that many
  live is refused; one queued before that lands at a boundary that fills them lands
  without a shield.

``Shields`` is not locked itself: the ``PlayerRegistry``'s lock guards it (placements are
checked in the lobby thread, shields made and applied in the main thread).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.grid import NEUTRAL_CODE, Codes
from shared.kernel import step_tile
from shared.placement import Cells
from shared.protocol import MAX_SHIELDS

MARGIN = 2  # cells around a placement's bounding box that its shield covers too
MIN_BOX = 64  # cells a placement's bounding box may hold and still be compact, at least
SPREAD = 16   # ... and per live cell: a compact box holds max(MIN_BOX, SPREAD * cells)

Index = npt.NDArray[np.int64]
Zone = tuple[int, int, int, int]  # y, x, h, w on the torus


@dataclass(frozen=True)
class Shield:
    """A live shield: its zone on the torus (rows ``y .. y + h - 1`` and columns
    ``x .. x + w - 1``, wrapping), the last generation it computes (``until``), and the
    player whose placement it shields."""

    y: int
    x: int
    h: int
    w: int
    until: int
    player: int

    @property
    def zone(self) -> Zone:
        return self.y, self.x, self.h, self.w

    def live_after(self, generation: int) -> bool:
        """Whether it still computes a generation after ``generation``."""
        return self.until > generation

    def wire(self) -> list[int]:
        """As frames carry it: ``[y, x, h, w, until, player]``."""
        return [self.y, self.x, self.h, self.w, self.until, self.player]


def span(coords: npt.ArrayLike, size: int) -> tuple[int, int]:
    """The shortest arc of the circle ``0 .. size - 1`` that covers ``coords``, as
    ``(start, length)``: it starts after the largest gap between them (the first such
    gap when several are as large, so the answer is one)."""
    array = np.asarray(coords, dtype=np.int64)
    if array.size <= SMALL_SPAN:  # a placement's few cells: Python's set beats NumPy's
        small = sorted({v % size for v in array.ravel().tolist()})
        if not small:
            raise ValueError("no coordinates")
        # The gap after each value to the next, round the circle after the last (a
        # single value: the whole circle is its gap); the first largest wins.
        gap_list = [b - a for a, b in itertools.pairwise(small)]
        gap_list.append(small[0] + size - small[-1])
        at = gap_list.index(max(gap_list))
        return small[(at + 1) % len(small)], size - gap_list[at] + 1
    values = np.unique(array % size)
    gaps = np.empty_like(values)
    np.subtract(values[1:], values[:-1], out=gaps[:-1])
    gaps[-1] = values[0] + size - values[-1]
    i = int(np.argmax(gaps))
    return int(values[(i + 1) % values.size]), size - int(gaps[i]) + 1


SMALL_SPAN = 512  # coordinates up to which ``span`` works on Python's ints


def _grow(start: int, length: int, margin: int, size: int) -> tuple[int, int]:
    """An arc grown by ``margin`` on both ends; the whole circle once it reaches round."""
    if length + 2 * margin >= size:
        return 0, size
    return (start - margin) % size, length + 2 * margin


def zone_of(cells: Cells, height: int, width: int, margin: int = MARGIN) -> Zone:
    """The zone a placement of ``cells`` shields: their bounding box on the torus,
    grown by ``margin`` (an axis it would wrap all around is the whole axis)."""
    y, h = _grow(*span(cells[:, 0], height), margin, height)
    x, w = _grow(*span(cells[:, 1], width), margin, width)
    return y, x, h, w


def compact(cells: Cells, height: int, width: int) -> bool:
    """Whether a placement of ``cells`` is compact enough to be shielded: its bounding
    box on the torus (before the margin) holds at most ``max(MIN_BOX, SPREAD * cells)``
    cells."""
    _, h = span(cells[:, 0], height)
    _, w = span(cells[:, 1], width)
    return h * w <= max(MIN_BOX, SPREAD * len(cells))


def others_inside(codes: Codes, zone: Zone, code: int) -> bool:
    """Whether ``zone`` of the world ``codes`` holds a live cell of another player than
    the one whose cell code is ``code`` (neutral cells do not count)."""
    rows, cols = rows_cols(zone, *codes.shape)
    sub = codes[np.ix_(rows, cols)]
    return bool(np.any((sub > NEUTRAL_CODE) & (sub != code)))


ZoneTable = npt.NDArray[np.int64]  # one row a shield: y, x, h, w, until, player
CELLS_AT_ONCE = 4096  # cells tested against every shield at once (a block's temporaries)


def zone_table(shields: Sequence[Shield]) -> ZoneTable:
    """The shields as rows of one array, to test many cells or zones against all of
    them at once (a thousand players place a hundred patterns a generation against up
    to ``MAX_SHIELDS`` shields: one NumPy pass each, not one per shield)."""
    return np.array([s.wire() for s in shields], dtype=np.int64).reshape(-1, 6)


def foreign_mask(shields: Sequence[Shield] | ZoneTable, player: int | Index, ys: Index,
                 xs: Index, generation: int, height: int,
                 width: int) -> npt.NDArray[np.bool_] | None:
    """Which of the cells ``(ys[i], xs[i])`` lie in one of ``shields`` of another player
    than ``player`` (one for all the cells, or each cell's own: ``player[i]``, so that
    a generation's thousand players' decisions are one pass) that still computes a
    generation after ``generation``; None when none does."""
    table = shields if isinstance(shields, np.ndarray) else zone_table(shields)
    each = not isinstance(player, int | np.integer)
    keep = table[:, 4] > generation
    if not each:
        keep &= table[:, 5] != player
    table = table[keep]
    if not len(table):
        return None
    ys, xs = np.asarray(ys, dtype=np.int64), np.asarray(xs, dtype=np.int64)
    owners = np.asarray(player, dtype=np.int64) if each else None
    if len(ys) * len(table) > BY_ROWS_FROM and int(table[:, 2].sum()) < len(ys) * len(table):
        return _foreign_by_rows(table, owners, ys, xs, height, width)
    mask = np.zeros(len(ys), dtype=np.bool_)
    for at in range(0, len(ys), CELLS_AT_ONCE):
        y, x = ys[at:at + CELLS_AT_ONCE, None], xs[at:at + CELLS_AT_ONCE, None]
        hit = ((y - table[:, 0]) % height < table[:, 2]) & \
            ((x - table[:, 1]) % width < table[:, 3])
        if owners is not None:
            hit &= owners[at:at + CELLS_AT_ONCE, None] != table[:, 5]
        mask[at:at + CELLS_AT_ONCE] = hit.any(axis=1)
    return mask


BY_ROWS_FROM = 1 << 16  # cells x shields from which ``foreign_mask`` goes row by row


def runs_in_zones(zones: npt.NDArray[np.int64], cells: Index, height: int,
                  width: int) -> tuple[Index, Index]:
    """Which of ``cells`` (flat indices into the world) lie in which of ``zones`` (rows
    ``y, x, h, w, ...``): the positions in ``cells`` and the zone of each, a pair for
    every (cell, zone) that holds it. Each row of each zone is one or two runs of the
    cells in the world's order (its columns, wrapped), found by binary search."""
    order = np.argsort(cells, kind="stable")
    ranked = cells[order]
    heights = zones[:, 2]
    zone = np.repeat(np.arange(len(zones)), heights)  # one entry a zone row
    first = np.cumsum(heights) - heights
    base = ((zones[zone, 0] + np.arange(len(zone)) - first[zone]) % height) * width
    x0, w = zones[zone, 1], zones[zone, 3]
    found: list[Index] = []
    owner: list[Index] = []
    for start, end in ((base + x0, base + np.minimum(x0 + w, width)),  # up to the edge
                       (base, base + np.maximum(x0 + w - width, 0))):  # wrapped past it
        lo = np.searchsorted(ranked, start, side="left")
        lengths = np.searchsorted(ranked, end, side="left") - lo
        total = int(lengths.sum())
        if total:
            found.append(order[np.repeat(lo - (np.cumsum(lengths) - lengths), lengths)
                               + np.arange(total)])
            owner.append(np.repeat(zone, lengths))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(found), np.concatenate(owner)


def _foreign_by_rows(table: ZoneTable, owners: Index | None, ys: Index, xs: Index,
                     height: int, width: int) -> npt.NDArray[np.bool_]:
    """``foreign_mask``'s answer (``table``: its shields, already those that count)
    found row by row instead of cell by shield: the cells sorted by their place in
    the world, each row of each zone is one or two runs of that order (its columns,
    wrapped), found by binary search. A thousand players' decisions (3 000 cells)
    against 200 shields is 4 000 zone rows to look up, not 600 000 pairs to test."""
    cells, shield = runs_in_zones(table, (ys % height) * width + xs % width, height, width)
    if owners is not None:
        cells = cells[owners[cells] != table[shield, 5]]
    mask = np.zeros(len(ys), dtype=np.bool_)
    mask[cells] = True
    return mask


def holding(table: ZoneTable, ys: Index, xs: Index, height: int,
            width: int) -> npt.NDArray[np.bool_]:
    """Which rows of ``table`` hold one of the cells ``(ys[i], xs[i])`` at least."""
    held = np.zeros(len(table), dtype=np.bool_)
    ys, xs = np.asarray(ys, dtype=np.int64), np.asarray(xs, dtype=np.int64)
    for at in range(0, len(ys), CELLS_AT_ONCE):
        y, x = ys[at:at + CELLS_AT_ONCE, None], xs[at:at + CELLS_AT_ONCE, None]
        held |= (((y - table[:, 0]) % height < table[:, 2])
                 & ((x - table[:, 1]) % width < table[:, 3])).any(axis=0)
    return held


def overlapping(zone: Zone, table: ZoneTable, height: int,
                width: int) -> npt.NDArray[np.bool_]:
    """Which rows of ``table`` share a cell of the torus with ``zone`` (``overlap`` for
    every shield at once)."""
    one: npt.NDArray[np.bool_] = overlaps(np.array([zone], dtype=np.int64), table,
                                          height, width)[0]
    return one


def overlaps(zones: ZoneTable, table: ZoneTable, height: int,
             width: int) -> npt.NDArray[np.bool_]:
    """``overlapping`` for many zones at once: ``[i, j]`` whether row ``i`` of ``zones``
    shares a cell of the torus with row ``j`` of ``table``."""
    def arcs(a: ZoneTable, la: ZoneTable, b: ZoneTable, lb: ZoneTable,
             size: int) -> npt.NDArray[np.bool_]:
        a, la = a[:, None], la[:, None]
        result: npt.NDArray[np.bool_] = ((b - a) % size < la) | ((a - b) % size < lb)
        return result

    return arcs(zones[:, 0], zones[:, 2], table[:, 0], table[:, 2], height) & \
        arcs(zones[:, 1], zones[:, 3], table[:, 1], table[:, 3], width)


def _arcs_overlap(a: int, la: int, b: int, lb: int, size: int) -> bool:
    return (b - a) % size < la or (a - b) % size < lb


def overlap(one: Zone, other: Zone, height: int, width: int) -> bool:
    """Whether two zones share a cell of the torus."""
    return (_arcs_overlap(one[0], one[2], other[0], other[2], height)
            and _arcs_overlap(one[1], one[3], other[1], other[3], width))


def inside(zone: Zone, ys: Index, xs: Index, height: int, width: int) -> npt.NDArray[np.bool_]:
    """Which of the cells ``(ys[i], xs[i])`` are in ``zone``."""
    y, x, h, w = zone
    result: npt.NDArray[np.bool_] = ((ys - y) % height < h) & ((xs - x) % width < w)
    return result


def rows_cols(zone: Zone, height: int, width: int) -> tuple[Index, Index]:
    """The world rows and columns of a zone, in order (wrapped)."""
    y, x, h, w = zone
    return ((y + np.arange(h, dtype=np.int64)) % height,
            (x + np.arange(w, dtype=np.int64)) % width)


def padded_zone(codes: Codes, zone: Zone) -> Codes:
    """The zone's cells with a one-cell halo of dead cells around it: what the zone
    sees when it is alone. An axis the zone covers whole wraps instead (the torus)."""
    height, width = codes.shape
    y, x, h, w = zone
    if y + h <= height and x + w <= width and h < height and w < width:
        out = np.zeros((h + 2, w + 2), dtype=codes.dtype)  # no wrap: one slice
        out[1:-1, 1:-1] = codes[y:y + h, x:x + w]
        return out
    rows, cols = rows_cols(zone, height, width)
    sub = codes[np.ix_(rows, cols)]
    padded: Codes = np.pad(sub, ((1, 1), (0, 0)),
                           mode="wrap" if zone[2] == height else "constant")
    padded = np.pad(padded, ((0, 0), (1, 1)), mode="wrap" if zone[3] == width else "constant")
    return np.ascontiguousarray(padded)


def evolve_zone(codes: Codes, zone: Zone, table: npt.NDArray[np.uint8]) -> Codes:
    """The zone's next generation from ``codes`` (the frozen world), every cell outside
    it dead: the kernel's own step, owners and all, on the padded zone."""
    return step_tile(padded_zone(codes, zone), table)


SHELF = 1024  # the width of the canvas many zones are stepped on at once


def _packed(codes: Codes, zones: Sequence[Zone]) -> tuple[Codes, list[tuple[int, int]]]:
    """Every zone padded as ``padded_zone`` pads it, laid side by side on one canvas
    (shelves of ``SHELF`` columns), and where each one's top-left went. A padded zone
    carries its own halo, so a cell of one zone never sees a cell of another: one step
    of the canvas is every zone's step as if alone, for the cost of one kernel call
    instead of one per zone (a thousand players keep ``MAX_SHIELDS`` shields live)."""
    blocks = [padded_zone(codes, zone) for zone in zones]
    width = max([SHELF, *(b.shape[1] for b in blocks)])
    places: list[tuple[int, int]] = []
    y = x = shelf = 0
    for b in blocks:
        h, w = b.shape
        if x + w > width:
            y, x, shelf = y + shelf, 0, 0
        places.append((y, x))
        x, shelf = x + w, max(shelf, h)
    canvas = np.zeros((y + shelf + 2, width + 2), dtype=codes.dtype)  # and a dead rim
    for b, (by, bx) in zip(blocks, places, strict=True):
        canvas[by + 1:by + 1 + b.shape[0], bx + 1:bx + 1 + b.shape[1]] = b
    return canvas, places


def evolve_zones(codes: Codes, zones: Sequence[Zone],
                 table: npt.NDArray[np.uint8]) -> list[Codes]:
    """``evolve_zone`` of every zone, in one kernel call."""
    if not zones:
        return []
    canvas, places = _packed(codes, zones)
    nxt = step_tile(canvas, table)
    return [nxt[y + 1:y + 1 + h, x + 1:x + 1 + w]
            for (_, _, h, w), (y, x) in zip(zones, places, strict=True)]


def zones_neighbours(codes: Codes, zones: Sequence[Zone]) -> list[Codes]:
    """``zone_neighbours`` of every zone, in one pass."""
    if not zones:
        return []
    canvas, places = _packed(codes, zones)
    counts = live_neighbours((canvas != 0).view(np.uint8))
    return [counts[y + 1:y + 1 + h, x + 1:x + 1 + w]
            for (_, _, h, w), (y, x) in zip(zones, places, strict=True)]


def live_neighbours(alive: Codes) -> Codes:
    """Live neighbours of the inner cells of a padded 0/1 array."""
    rows = alive[:-2] + alive[1:-1] + alive[2:]
    total = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]
    result: Codes = total - alive[1:-1, 1:-1]
    return result


def zone_neighbours(codes: Codes, zone: Zone) -> Codes:
    """Live neighbours of every cell of the zone, counting only the zone's cells."""
    return live_neighbours((padded_zone(codes, zone) != 0).view(np.uint8))


class Shields:
    """The live shields of one world, and the rules above (guarded by the registry's
    lock). ``length`` 0: no shields at all."""

    def __init__(self, height: int, width: int, length: int = 0,
                 limit: int = MAX_SHIELDS) -> None:
        self.height = height
        self.width = width
        self.length = length
        self.limit = limit
        self.live: list[Shield] = []
        self.ended: list[Shield] = []  # those that ended less than ``length`` ago
        self._tables: dict[str, tuple[list[Shield], ZoneTable]] = {}

    def _table_of(self, which: str, shields: list[Shield]) -> ZoneTable:
        """``shields`` (the ``live`` or the ``ended`` list) as a ``zone_table``, made
        again only when it changes (the lists are replaced, never changed in place,
        except by ``add``'s append)."""
        held = self._tables.get(which)
        if held is None or held[0] is not shields or len(held[1]) > len(shields):
            held = self._tables[which] = (shields, zone_table(shields))
        elif len(held[1]) < len(shields):  # appended to (a placement's new shield)
            more = zone_table(shields[len(held[1]):])
            held = self._tables[which] = (shields, np.concatenate([held[1], more]))
        return held[1]

    @property
    def table(self) -> ZoneTable:
        """The live shields as a ``zone_table``."""
        return self._table_of("live", self.live)

    @property
    def on(self) -> bool:
        return self.length > 0

    def zone(self, cells: Cells) -> Zone | None:
        """The zone a placement of ``cells`` would shield; None when shields are off or
        the placement is not compact (it lands unshielded)."""
        if not self.on:
            return None
        # Each axis's arc once: the compactness and the zone both stand on it.
        rows = span(cells[:, 0], self.height)
        cols = span(cells[:, 1], self.width)
        if rows[1] * cols[1] > max(MIN_BOX, SPREAD * len(cells)):
            return None  # not compact (``compact``)
        y, h = _grow(*rows, MARGIN, self.height)
        x, w = _grow(*cols, MARGIN, self.width)
        return y, x, h, w

    def refusal(self, player: int, zone: Zone | None, landing: int,
                cells: Cells | None = None) -> str | None:
        """Why a placement by ``player`` shielding ``zone`` and landing in ``landing``
        must be refused, or None. A placement without a zone (not compact) is refused
        only when one of its ``cells`` lies in another player's live shield."""
        if not self.on:
            return None
        table = self.table
        others = (table[:, 5] != player) & (table[:, 4] > landing)
        if zone is not None:
            hits = others & overlapping(zone, table, self.height, self.width)
            what = "would touch"
        elif cells is not None:
            hits = others & holding(table, cells[:, 0], cells[:, 1], self.height, self.width)
            what = "has cells in"
        else:
            hits = np.zeros(len(table), dtype=np.bool_)
        first = np.flatnonzero(hits)
        if first.size:
            shield = self.live[int(first[0])]
            left = shield.until - landing
            return (f"the placement {what} player {shield.player}'s shield "
                    f"({shield.h}x{shield.w} at {shield.y},{shield.x}, a fresh "
                    f"placement and {MARGIN} cells around it), which lasts {left} more "
                    f"generation{'s' if left != 1 else ''} (until generation "
                    f"{shield.until}): place it elsewhere, or wait")
        if zone is not None and len(self.live) >= self.limit:
            return (f"the world holds {self.limit} shields of fresh placements already: "
                    "try again in a few generations")
        return None

    def foreign(self, player: int, ys: Index, xs: Index, generation: int,
                zone: Zone | None = None) -> npt.NDArray[np.bool_] | None:
        """Which of the cells ``(ys[i], xs[i])`` lie in a live shield of another player
        that still computes a generation after ``generation``; None when none does.
        ``zone``: one that holds every one of the cells (a placement's), so that only
        the few shields that touch it are tested cell by cell, not every shield."""
        table = self.table
        if zone is not None and len(table):
            table = table[overlapping(zone, table, self.height, self.width)]
        return foreign_mask(table, player, ys, xs, generation, self.height, self.width)

    def add(self, player: int, zone: Zone, landed: int,
            world: Codes | None = None, code: int = 0) -> Shield | None:
        """The shield of a placement by ``player`` (cell code ``code``) that landed in
        generation ``landed`` in ``world`` (the generation being made, its cells in),
        or None: when its zone overlaps a live shield (the later one is refused), or
        one of the player's own that ended less than ``length`` generations ago (no
        chaining), or holds another player's live cells, or there are enough."""
        if not self.on or len(self.live) >= self.limit:
            return None
        for table in (self.table, self._table_of("ended", self.ended)):
            if not len(table):
                continue
            near = table[overlapping(zone, table, self.height, self.width)]
            until = near[:, 4]
            if np.any((until > landed)
                      | ((near[:, 5] == player) & (landed - until < self.length))):
                return None
        if world is not None and others_inside(world, zone, code):
            return None
        shield = Shield(*zone, until=landed + self.length, player=player)
        self.live.append(shield)
        return shield

    def landing(self, zones: Sequence[Zone | None], landed: int) -> Landing:
        """The placements of one boundary, landing in order in generation ``landed``
        with these ``zones`` (None: a placement without one): ``Landing.foreign`` and
        ``Landing.add`` say for each what ``foreign`` and ``add`` would, at the same
        point of the order."""
        return Landing(self, zones, landed)

    def prune(self, generation: int) -> None:
        """Forget the shields that computed their last generation by ``generation`` (as
        live shields: they are remembered as ended for ``length`` generations more)."""
        done = [s for s in self.live if not s.live_after(generation)]
        self.live = [s for s in self.live if s.live_after(generation)]
        self.ended = [s for s in (*self.ended, *done)
                      if generation - s.until < self.length]

    def drop(self, player: int | None = None) -> None:
        """Forget ``player``'s shields (its cells turned neutral), or every shield (a
        round's fresh start), the ended ones too."""
        self.live = [s for s in self.live if player is not None and s.player != player]
        self.ended = [s for s in self.ended if player is not None and s.player != player]


LANDING_AT_ONCE = 512  # zones of a boundary tested in one pass; more: one by one


class Landing:
    """One boundary's placements, landing in order (``Shields.landing``).

    ``Shields.foreign`` and ``Shields.add`` test one zone against the tables of the
    live and the ended shields: a dozen NumPy calls on a few hundred rows each, three
    times a placement, which a hundred and fifty placements a generation make 14 ms
    of the main thread (measured with a thousand bots), the GIL held all along. Here
    every zone is tested against both tables, and against the other zones of the
    boundary, in one pass each when the landing begins; a placement then needs them
    only where its zone touches something, and the shields added since (earlier
    placements of the same boundary) are those of the zones it overlaps. A boundary
    of more than ``LANDING_AT_ONCE`` zones lands one by one, as before: the pairs of
    its zones would take memory and time as their square."""

    def __init__(self, shields: Shields, zones: Sequence[Zone | None], landed: int) -> None:
        self.shields = shields
        self.zones = list(zones)
        self.landed = landed
        self.added: dict[int, Shield] = {}  # by placement: the shields added so far
        live = self.live_table = shields.table
        at = [i for i, zone in enumerate(self.zones) if zone is not None]
        if len(at) > LANDING_AT_ONCE:
            at = []  # so many: one by one (the pairs of zones grow as their square)
        self._row = {i: k for k, i in enumerate(at)}  # a placement's row in the arrays
        height, width = shields.height, shields.width
        zone_rows = np.array([self.zones[i] for i in at], dtype=np.int64).reshape(-1, 4)
        # Every zone against both tables as they were (the live shields first): what
        # ``foreign`` looks at (the live ones it overlaps) and what ``add`` refuses (an
        # overlap with a shield still live in ``landed``, or with one of the same
        # player's that computed its last generation less than ``length`` before).
        both = np.concatenate([live, shields._table_of("ended", shields.ended)])
        self._near = overlaps(zone_rows, both, height, width)
        self._near_live = self._near[:, :len(live)]
        self._still = both[:, 4] > landed
        self._recent = landed - both[:, 4] < shields.length
        self._owners = both[:, 5]
        pairs = overlaps(zone_rows, zone_rows, height, width)
        # the earlier placements of the boundary whose zones each one's overlaps
        self._earlier: list[list[int]] = [[at[j] for j in np.flatnonzero(pairs[k, :k])]
                                          for k in range(len(at))]

    def foreign(self, i: int, player: int, ys: Index,
                xs: Index) -> npt.NDArray[np.bool_] | None:
        """``Shields.foreign`` for placement ``i`` (by ``player``, these cells), now."""
        shields = self.shields
        k = self._row.get(i)
        if k is None:  # no zone (every shield is tested, cell by cell), or one by one
            return shields.foreign(player, ys, xs, self.landed, self.zones[i])
        rows = []
        near = self._near_live[k]
        if near.any():
            rows.append(self.live_table[near])
        new = [self.added[j] for j in self._earlier[k] if j in self.added]
        if new:
            rows.append(zone_table(new))
        if not rows:
            return None
        return foreign_mask(np.concatenate(rows), player, ys, xs, self.landed,
                            shields.height, shields.width)

    def add(self, i: int, player: int, world: Codes | None = None,
            code: int = 0) -> Shield | None:
        """``Shields.add`` for placement ``i`` (by ``player``, cell code ``code``), with
        its cells in ``world``, now."""
        shields = self.shields
        zone = self.zones[i]
        if zone is None:
            return None
        k = self._row.get(i)
        if k is None:  # one by one
            return shields.add(player, zone, self.landed, world, code)
        if not shields.on or len(shields.live) >= shields.limit:
            return None
        near = self._near[k]
        if near.any() and np.any(near & (self._still
                                         | ((self._owners == player) & self._recent))):
            return None
        if any(j in self.added for j in self._earlier[k]):
            return None  # an earlier one's shield, live: the later one is refused
        if world is not None and others_inside(world, zone, code):
            return None
        shield = Shield(*zone, until=self.landed + shields.length, player=player)
        shields.live.append(shield)
        self.added[i] = shield
        return shield
