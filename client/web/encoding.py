"""The binary WebSocket messages that carry the world to a browser tab.

One message a generation: a fixed 32-byte header, the generation's information (the
scoreboard, the counts, the shields: the frame's body as JSON, a few hundred bytes,
never a cell), then the cells, either a **key** (every cell of the tab's region) or a
**delta** (the cells of the region that changed since the generation the tab holds).
Little-endian throughout, each array aligned to its element size so that the page
reads it with a typed array in place:

| offset | type | field |
|---|---|---|
| 0 | u8 | kind: 1 key, 2 delta |
| 1 | u8 | width: bytes a cell code takes, 1 (``uint8``) or 2 (``uint16``: owners past 254) |
| 2 | u16 | 0 (reserved) |
| 4 | u32 | gen: the generation these cells are |
| 8 | u32 | base: the generation a delta applies on (a key: ``gen``) |
| 12 | u16, u16 | the world's height and width |
| 16 | u16 x 4 | the region: y, x, h, w (on the torus: rows ``y .. y + h - 1`` wrap) |
| 24 | u32 | count: a key's ``h * w`` cells, a delta's changed cells |
| 28 | u32 | info: bytes of JSON that follow |
| 32 | | the JSON, padded with spaces to a multiple of 4 bytes |
| | u32 x count | a delta only: flat indices into the world (``y * width + x``) |
| | width x count | the codes: a key's region row by row, a delta's new codes |

The width follows the codes the gateway holds (``FrameView``'s array), so a server that
sends wide owner codes reaches the page without a change here. ``decode`` reads a
message back (the tests and the load check use it).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

KEY = 1
DELTA = 2
HEADER = struct.Struct("<BBHIIHHHHHHII")
assert HEADER.size == 32

Region = tuple[int, int, int, int]  # (y, x, h, w) on the torus
Codes = npt.NDArray[np.unsignedinteger[Any]]


def info_bytes(info: dict[str, Any]) -> bytes:
    """A generation's information as the JSON a message carries, padded to 4 bytes."""
    text = json.dumps(info, separators=(",", ":"), default=str).encode()
    return text + b" " * (-len(text) % 4)


def _width(codes: Codes) -> int:
    return 2 if codes.dtype.itemsize > 1 else 1


def _as(codes: Codes, width: int) -> bytes:
    return np.ascontiguousarray(codes, dtype="<u2" if width == 2 else np.uint8).tobytes()


def whole(shape: tuple[int, int]) -> Region:
    return (0, 0, shape[0], shape[1])


def region_cells(world: Codes, region: Region) -> Codes:
    """The ``h`` x ``w`` cells of ``world`` at ``(y, x)``, wrapping on the torus."""
    height, width = world.shape
    y, x, h, w = region
    if (y, x, h, w) == (0, 0, height, width):
        return world
    rows = (y + np.arange(h)) % height
    cols = (x + np.arange(w)) % width
    cells: Codes = world[np.ix_(rows, cols)]
    return cells


def in_region(index: npt.NDArray[np.integer[Any]], shape: tuple[int, int],
              region: Region) -> npt.NDArray[np.bool_]:
    """Which flat world indices lie in ``region`` (on the torus)."""
    height, width = shape
    y, x, h, w = region
    rows, cols = np.divmod(index, width)
    inside: npt.NDArray[np.bool_] = (((rows - y) % height < h) & ((cols - x) % width < w))
    return inside


def encode_key(gen: int, world: Codes, region: Region, info: bytes) -> bytes:
    """A key: every cell of ``region``."""
    width = _width(world)
    cells = region_cells(world, region)
    header = HEADER.pack(KEY, width, 0, gen, gen, *world.shape, *region, cells.size,
                         len(info))
    return b"".join((header, info, _as(cells, width)))


def encode_delta(gen: int, base: int, shape: tuple[int, int], region: Region,
                 index: npt.NDArray[np.integer[Any]], codes: Codes, info: bytes) -> bytes:
    """A delta: the cells at the flat world ``index`` became ``codes`` (those of
    ``region`` only are the tab's; the caller filters them, ``in_region``)."""
    width = _width(codes)
    header = HEADER.pack(DELTA, width, 0, gen, base, *shape, *region, index.size,
                         len(info))
    return b"".join((header, info, np.ascontiguousarray(index, "<u4").tobytes(),
                     _as(codes, width)))


@dataclass
class Decoded:
    """A message read back: what the page reads from it."""

    kind: int
    gen: int
    base: int
    shape: tuple[int, int]
    region: Region
    info: dict[str, Any]
    cells: Codes                  # a key's region, (h, w); a delta's new codes
    index: npt.NDArray[np.uint32]  # a delta's flat indices (empty for a key)


def decode(data: bytes) -> Decoded:
    """Read a message (``ValueError`` if it is not one)."""
    if len(data) < HEADER.size:
        raise ValueError("shorter than the header")
    (kind, width, _, gen, base, height, wid, y, x, h, w, count,
     info_len) = HEADER.unpack_from(data)
    if kind not in (KEY, DELTA) or width not in (1, 2):
        raise ValueError(f"kind {kind}, width {width}")
    at = HEADER.size
    info = json.loads(data[at:at + info_len]) if info_len else {}
    at += info_len
    index = np.zeros(0, np.uint32)
    if kind == DELTA:
        index = np.frombuffer(data, "<u4", count, at).astype(np.uint32)
        at += 4 * count
    dtype = "<u2" if width == 2 else np.uint8
    cells: Codes = np.frombuffer(data, dtype, count, at).copy()
    if at + width * count != len(data):
        raise ValueError("the size does not match the header")
    if kind == KEY:
        cells = cells.reshape(h, w)
    return Decoded(kind, gen, base, (height, wid), (y, x, h, w), info, cells, index)


def apply(world: Codes | None, msg: Decoded) -> Codes | None:
    """What a tab holds after ``msg`` (its whole world; ``None`` until a key)."""
    if msg.kind == KEY:
        if world is None or world.shape != msg.shape or world.dtype != msg.cells.dtype:
            world = np.zeros(msg.shape, msg.cells.dtype)
        y, x, h, w = msg.region
        rows = (y + np.arange(h)) % msg.shape[0]
        cols = (x + np.arange(w)) % msg.shape[1]
        world[np.ix_(rows, cols)] = msg.cells
        return world
    if world is None:
        return None
    if world.dtype.itemsize < msg.cells.dtype.itemsize:
        world = world.astype(msg.cells.dtype)
    world.ravel()[msg.index] = msg.cells
    return world
