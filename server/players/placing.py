"""What a ``PLACE`` asks for, checked: the pattern, turned, on the torus.

A placement names its pattern as RLE or as a list of ``[dy, dx]`` cells, a rotation
and a flip, and the cell of the world its top-left corner goes to. Everything is checked
before anything is allocated from it: the RLE's declared size and the cells' extent are
bounded by ``MAX_PATTERN_SIDE``, the live cells by ``MAX_PLACE_CELLS``. The cells it
covers (and so its cost) are ``shared.placement.footprint``'s, as the clients reckon.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from shared.errors import PatternError, ProtocolError
from shared.placement import Cells, shifted
from shared.protocol import MAX_PLACE_CELLS, ErrorCode
from shared.rle import Pattern, parse_rle

MAX_PATTERN_SIDE = 256
Index = npt.NDArray[np.intp]
Offsets = npt.NDArray[np.int16]
CACHED_RLE_CHARS = 4096  # the library's patterns, as players send them again and again


@functools.lru_cache(maxsize=256)
def _parsed(rle: str) -> Pattern:
    """A small pattern's parse, kept (bounded: 256 texts of 4 KiB at most): a thousand
    players place the same few library patterns a hundred times a generation. The
    pattern is shared: it is only read (``oriented`` makes new arrays)."""
    return parse_rle(rle, max_side=MAX_PATTERN_SIDE)


def requested_pattern(rle: str | None, cells: list[list[int]] | None) -> Pattern:
    """The pattern a placement names, by RLE or by cells; ``ProtocolError`` (a bad
    field) for anything else."""
    if (rle is None) == (cells is None):
        raise ProtocolError("a placement has either 'rle' or 'cells'", ErrorCode.BAD_FIELD)
    if rle is not None:
        try:  # the declared size is checked before anything is allocated for it
            if len(rle) <= CACHED_RLE_CHARS:
                return _parsed(rle)
            return parse_rle(rle, max_side=MAX_PATTERN_SIDE)
        except PatternError as e:
            raise ProtocolError(f"pattern: {e}", ErrorCode.BAD_FIELD) from e
    assert cells is not None
    if not cells:
        raise ProtocolError("the pattern has no live cell", ErrorCode.BAD_FIELD)
    offsets = np.array(cells, dtype=np.int64)
    codes = np.zeros((int(offsets[:, 0].max()) + 1, int(offsets[:, 1].max()) + 1),
                     dtype=np.uint8)
    codes[offsets[:, 0], offsets[:, 1]] = 1
    return Pattern(codes)


def placement_cells(rle: str | None, cells: list[list[int]] | None, y: int, x: int,
                    rotate: int, flip: bool, height: int, width: int) -> Cells:
    """The distinct world cells a placement covers: the pattern flipped, turned and put
    with its top-left corner on ``(y, x)``, wrapping on the ``height`` x ``width`` torus."""
    if rle is not None and cells is None and len(rle) <= CACHED_RLE_CHARS:
        return shifted(*_offsets(rle, rotate, flip), y, x, height, width)
    return shifted(*_live(requested_pattern(rle, cells).oriented(rotate, flip)), y, x,
                   height, width)


def _live(shape: npt.NDArray[np.bool_]) -> tuple[Index, Index]:
    """The live cells of an oriented pattern, checked: one at least, at most
    ``MAX_PLACE_CELLS``."""
    ys, xs = np.nonzero(shape)
    if len(ys) == 0:
        raise ProtocolError("the pattern has no live cell", ErrorCode.BAD_FIELD)
    if len(ys) > MAX_PLACE_CELLS:
        raise ProtocolError(f"the pattern has {len(ys)} live cells, more than "
                            f"{MAX_PLACE_CELLS}", ErrorCode.BAD_FIELD)
    return ys, xs


@functools.lru_cache(maxsize=1024)
def _offsets(rle: str, rotate: int, flip: bool) -> tuple[Offsets, Offsets]:
    """A small pattern's live cells turned so (kept, as ``_parsed``: the library's
    patterns come again and again, in each of their eight turns; read only): 1024
    kept, as ``int16`` (a side is 256 at most), 16 MiB at most (4096 cells each)."""
    ys, xs = _live(requested_pattern(rle, None).oriented(rotate, flip))
    return ys.astype(np.int16), xs.astype(np.int16)
