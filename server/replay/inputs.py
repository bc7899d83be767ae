"""What changed a generation beyond the rule: the inputs a replay log records.

A generation ``g + 1`` is the rule's step of ``g`` (the workers' part), then, in this
order, what ``server.generation.Engine.step`` writes over it:

    Zones     the live shields' zones, each evolved from ``g`` as if alone (``--protect``)
    Write     a player's valid decisions: cells kept alive (its code) or let die (0)
    Neutral   a player whose grace ended: every cell of its code turns neutral
    RoundEnd  a round ended at ``g + 1``: every live cell turns neutral
    Place     a placement landing: its cells that are empty take the player's code

``apply`` replays them on the rule's step, so a replay needs nothing but these and the
rule. Each is written to the log as a short msgpack list (``encode``/``decode``); cells
travel as little-endian ``int32`` arrays (a world is at most 2^31 cells a side).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from server.players.registry import Write
from server.players.shields import Zone, evolve_zones, rows_cols
from shared.grid import NEUTRAL_CODE, Codes, narrowest, player_code

__all__ = ["Input", "Neutral", "Place", "RoundEnd", "Write", "Zones", "apply", "decode",
           "encode"]

Index = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Zones:
    """The live shields' zones ``(y, x, h, w)`` of this step, evolved as if alone."""

    zones: tuple[Zone, ...]


@dataclass(frozen=True)
class Neutral:
    """Player ``player``'s grace ended: its cells turned neutral."""

    player: int


@dataclass(frozen=True)
class RoundEnd:
    """A round ended at this generation: every live cell turned neutral."""


@dataclass(frozen=True)
class Place:
    """A placement landed: those of cells ``(ys[i], xs[i])`` that were empty took ``code``."""

    ys: Index
    xs: Index
    code: int


Input = Zones | Write | Neutral | RoundEnd | Place


def apply(before: Codes, stepped: Codes, inputs: Sequence[Input],
          table: npt.NDArray[np.uint8]) -> Codes:
    """Generation ``g + 1`` from ``before`` (generation ``g``), ``stepped`` (the rule's
    step of it) and what changed it beyond the rule, in the engine's order; narrowest."""
    codes = stepped.astype(np.uint16)  # a copy, wide enough for any code
    for op in inputs:
        if isinstance(op, Zones):
            for zone, evolved in zip(op.zones, evolve_zones(before, op.zones, table),
                                     strict=True):
                rows, cols = rows_cols(zone, *codes.shape)
                codes[rows[:, None], cols[None, :]] = evolved
        elif isinstance(op, Write):
            codes[op.ys, op.xs] = op.code
        elif isinstance(op, Neutral):
            codes[codes == player_code(op.player)] = NEUTRAL_CODE
        elif isinstance(op, RoundEnd):
            np.minimum(codes, NEUTRAL_CODE, out=codes)
        else:
            empty = codes[op.ys, op.xs] == 0
            codes[op.ys[empty], op.xs[empty]] = op.code
    return narrowest(codes)


def _cells(ys: npt.ArrayLike, xs: npt.ArrayLike) -> list[bytes]:
    return [np.asarray(ys, dtype="<i4").tobytes(), np.asarray(xs, dtype="<i4").tobytes()]


def _index(data: Any) -> Index:
    if not isinstance(data, bytes) or len(data) % 4:
        raise ValueError("cells are not int32 arrays")
    return np.frombuffer(data, dtype="<i4").astype(np.int64)


def encode(op: Input) -> list[Any]:
    """``op`` as a msgpack-ready list: its kind's letter, then its fields."""
    if isinstance(op, Zones):
        return ["z", [list(map(int, zone)) for zone in op.zones]]
    if isinstance(op, Write):
        return ["w", *_cells(op.ys, op.xs), int(op.code)]
    if isinstance(op, Neutral):
        return ["n", int(op.player)]
    if isinstance(op, RoundEnd):
        return ["r"]
    return ["p", *_cells(op.ys, op.xs), int(op.code)]


def decode(item: Any, height: int, width: int) -> Input:
    """An input from its list; ``ValueError`` if it is not one (or names a cell outside
    a ``height`` x ``width`` world)."""
    if not isinstance(item, list) or not item or not isinstance(item[0], str):
        raise ValueError(f"not an input: {item!r:.60}")
    kind, args = item[0], item[1:]
    if kind == "z" and len(args) == 1 and isinstance(args[0], list):
        zones = []
        for zone in args[0]:
            if not (isinstance(zone, list) and len(zone) == 4
                    and all(type(v) is int for v in zone)
                    and 0 <= zone[0] < height and 0 <= zone[1] < width
                    and 1 <= zone[2] <= height and 1 <= zone[3] <= width):
                raise ValueError(f"not a zone of a {height}x{width} world: {zone!r:.60}")
            zones.append((zone[0], zone[1], zone[2], zone[3]))
        return Zones(tuple(zones))
    if kind in ("w", "p") and len(args) == 3 and type(args[2]) is int \
            and 0 <= args[2] < 1 << 16:
        ys, xs = _index(args[0]), _index(args[1])
        if len(ys) != len(xs) or np.any(ys < 0) or np.any(ys >= height) \
                or np.any(xs < 0) or np.any(xs >= width):
            raise ValueError("cells outside the world")
        return Write(ys, xs, args[2]) if kind == "w" else Place(ys, xs, args[2])
    if kind == "n" and len(args) == 1 and type(args[0]) is int and args[0] > 0:
        return Neutral(args[0])
    if kind == "r" and not args:
        return RoundEnd()
    raise ValueError(f"not an input: {item!r:.60}")
