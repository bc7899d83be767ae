"""Placing a pattern on the torus: the cells it covers, and what it costs.

The game's rule (the README's "Playing"): each placed cell costs one unit of energy. A
pattern lands with its top-left corner at ``(y, x)`` and wraps around the edges; one
larger than the world wraps onto itself, and each square it covers is placed, and paid
for, once. The server charges by ``footprint`` and the clients show and check the same
``cost``, so a player is never told one price and charged another.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Cells = npt.NDArray[np.int64]  # (n, 2) rows of (y, x)


def footprint(shape: npt.NDArray[np.bool_], y: int, x: int, height: int,
              width: int) -> Cells:
    """The distinct world cells that ``shape`` (an oriented pattern's live cells) covers
    with its top-left corner at ``(y, x)``, as sorted ``(y, x)`` rows."""
    ys, xs = np.nonzero(shape)
    return shifted(ys, xs, y, x, height, width)


def shifted(ys: npt.NDArray[np.integer[Any]], xs: npt.NDArray[np.integer[Any]], y: int,
            x: int, height: int, width: int) -> Cells:
    """``footprint`` of a shape given by its live cells' offsets ``(ys, xs)`` (any
    integer type: widened here before they grow)."""
    ys, xs = ys.astype(np.intp, copy=False), xs.astype(np.intp, copy=False)
    # One sort of flat indices (row-major: the (y, x) order) rather than a unique of
    # rows, which sorts a structured view: a few times faster, and a thousand players
    # place patterns a hundred times a generation.
    flat = np.unique(((ys + y) % height) * width + (xs + x) % width)
    found: Cells = np.empty((len(flat), 2), dtype=np.int64)
    np.divmod(flat, width, out=(found[:, 0], found[:, 1]))
    return found


def cost(shape: npt.NDArray[np.bool_], height: int, width: int) -> int:
    """What placing ``shape`` costs in a ``height`` x ``width`` world (the same
    wherever it is put: moving on a torus keeps distinct cells distinct)."""
    return len(footprint(shape, 0, 0, height, width))
