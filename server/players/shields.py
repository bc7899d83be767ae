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

Rules that keep every generation exact and deterministic:

- Zones of live shields never overlap. A ``PLACE`` whose zone would overlap the live
  shield of another player is refused, with the generations that shield still lasts; one
  that overlaps only its own player's shields is taken, and lands without a shield of
  its own (the later one's shield is refused, never merged: a merged box could swallow
  somebody else's cells).
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

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.grid import Codes
from shared.kernel import step_tile
from shared.placement import Cells
from shared.protocol import MAX_SHIELDS

MARGIN = 2  # cells around a placement's bounding box that its shield covers too

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
    values = np.unique(np.asarray(coords, dtype=np.int64) % size)
    if values.size == 0:
        raise ValueError("no coordinates")
    gaps = (np.roll(values, -1) - values) % size
    gaps[gaps == 0] = size  # a single value: the whole circle is its gap
    i = int(np.argmax(gaps))
    return int(values[(i + 1) % values.size]), size - int(gaps[i]) + 1


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


def zone_neighbours(codes: Codes, zone: Zone) -> Codes:
    """Live neighbours of every cell of the zone, counting only the zone's cells."""
    alive = (padded_zone(codes, zone) != 0).view(np.uint8)
    rows = alive[:-2] + alive[1:-1] + alive[2:]
    total = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]
    result: Codes = total - alive[1:-1, 1:-1]
    return result


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

    @property
    def on(self) -> bool:
        return self.length > 0

    def zone(self, cells: Cells) -> Zone:
        return zone_of(cells, self.height, self.width)

    def refusal(self, player: int, zone: Zone, landing: int) -> str | None:
        """Why a placement by ``player`` shielding ``zone`` and landing in ``landing``
        must be refused, or None."""
        if not self.on:
            return None
        for shield in self.live:
            if (shield.player != player and shield.live_after(landing)
                    and overlap(zone, shield.zone, self.height, self.width)):
                left = shield.until - landing
                return (f"the placement would touch player {shield.player}'s shield "
                        f"({shield.h}x{shield.w} at {shield.y},{shield.x}, a fresh "
                        f"placement and {MARGIN} cells around it), which lasts {left} more "
                        f"generation{'s' if left != 1 else ''} (until generation "
                        f"{shield.until}): place it elsewhere, or wait")
        if len(self.live) >= self.limit:
            return (f"the world holds {self.limit} shields of fresh placements already: "
                    "try again in a few generations")
        return None

    def foreign(self, player: int, ys: Index, xs: Index,
                generation: int) -> npt.NDArray[np.bool_] | None:
        """Which of the cells ``(ys[i], xs[i])`` lie in a shield of another player that
        still computes a generation after ``generation``; None when none does."""
        mask: npt.NDArray[np.bool_] | None = None
        for shield in self.live:
            if shield.player == player or not shield.live_after(generation):
                continue
            hit = inside(shield.zone, ys, xs, self.height, self.width)
            mask = hit if mask is None else mask | hit
        return mask

    def add(self, player: int, zone: Zone, landed: int) -> Shield | None:
        """The shield of a placement that landed in generation ``landed``, or None when
        its zone overlaps a live one (the later one is refused) or there are enough."""
        if not self.on or len(self.live) >= self.limit:
            return None
        if any(s.live_after(landed) and overlap(zone, s.zone, self.height, self.width)
               for s in self.live):
            return None
        shield = Shield(*zone, until=landed + self.length, player=player)
        self.live.append(shield)
        return shield

    def prune(self, generation: int) -> None:
        """Forget the shields that computed their last generation by ``generation``."""
        self.live = [s for s in self.live if s.live_after(generation)]

    def drop(self, player: int | None = None) -> None:
        """Forget ``player``'s shields (its cells turned neutral), or every shield."""
        self.live = [s for s in self.live if player is not None and s.player != player]
