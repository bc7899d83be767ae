"""The world: ``Grid`` (Effective Python item 56) and ``LockingGrid`` (item 57).

The book's ``Grid`` keeps one state per cell (``ALIVE`` or ``EMPTY``) and wraps every
coordinate modulo its height and width, which makes the world a torus. lifenet keeps
that interface and adds an owner per live cell. Both are stored in one NumPy array of
*cell codes*, the same numbers that travel on the wire:

    code 0        an empty cell
    code 1        a live neutral cell (owner 0, seeded by the server)
    code 1 + p    a live cell owned by player p (1 <= p <= MAX_PLAYER)

So ``code > 0`` means alive and ``code - 1`` is the owner. The array is *narrow*
(``uint8``, one byte a cell) while every code fits in a byte, which is the common case
and keeps tiles, frames and copies small; it *widens* to ``uint16`` the moment a code
above 255 (a player id above 254) is written, so up to 65 534 players own cells at
once. On the wire a message that carries codes says whether they are ``wide``
(little-endian ``uint16``) or not; ``codes_payload`` and ``codes_from`` are the two
ends of that. Hold a ``Grid``, not its ``codes``: widening replaces the array.
"""

from __future__ import annotations

from collections.abc import Iterator
from threading import Lock
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.errors import ConfigError

ALIVE = "*"
EMPTY = "-"
NEUTRAL = 0
MAX_PLAYER = 65534
MAX_CODE = MAX_PLAYER + 1
NARROW_MAX_CODE = 255  # the highest code a narrow (uint8) world holds
MAX_CELLS = 1 << 26  # 64 M cells: 8192 x 8192; bigger worlds do not fit the frame limits

Codes = npt.NDArray[Any]  # uint8 (narrow) or uint16 (wide) cell codes
NARROW = np.dtype(np.uint8)
WIDE = np.dtype(np.uint16)
WIRE_WIDE = np.dtype("<u2")  # wide codes on the wire: little-endian whatever the machine


def is_wide(codes: Codes) -> bool:
    """Whether ``codes`` is a wide (two bytes a cell) array."""
    return bool(codes.dtype.itemsize == 2)


def dtype_for(top: int) -> np.dtype[Any]:
    """The narrowest code dtype that holds ``top`` (the highest code)."""
    if not 0 <= top <= MAX_CODE:
        raise ValueError(f"cell code {top} is not in 0..{MAX_CODE}")
    return NARROW if top <= NARROW_MAX_CODE else WIDE


def narrowest(codes: Codes) -> Codes:
    """``codes`` as uint8 when every code fits a byte, else as they are (not copied when
    already narrow)."""
    if is_wide(codes) and int(codes.max(initial=0)) <= NARROW_MAX_CODE:
        return codes.astype(NARROW)
    return codes


def codes_payload(codes: Codes) -> tuple[bool, memoryview]:
    """``(wide, bytes)``: how a message carries ``codes`` (as they are: a wide array is
    sent wide even if its codes would fit a byte; ``narrowest`` first to save that)."""
    if is_wide(codes):
        return True, as_payload(codes.astype(WIRE_WIDE, copy=False))
    return False, as_payload(codes)


def codes_from(data: Any, wide: bool, shape: tuple[int, ...] | None = None) -> Codes:
    """The codes in a message's payload (read-only, not copied on a little-endian
    machine), reshaped to ``shape`` when given."""
    arr = np.frombuffer(data, dtype=WIRE_WIDE if wide else NARROW)
    if wide and arr.dtype != WIDE:
        arr = arr.astype(WIDE)
    return arr.reshape(shape) if shape is not None else arr


def as_payload(array: npt.NDArray[Any]) -> memoryview:
    """The bytes of an array as a flat memoryview, for a zero-copy ZeroMQ frame."""
    if array.size == 0:  # memoryview cannot cast a view with a zero in its shape
        return memoryview(b"")
    return np.ascontiguousarray(array).data.cast("B")


def pack_bits(codes: Codes) -> Codes:
    """A world of neutral cells only (codes 0 and 1), eight cells to a byte."""
    packed: Codes = np.packbits(codes.reshape(-1).astype(NARROW, copy=False))
    return packed


def unpack_bits(data: Any, shape: tuple[int, int]) -> Codes:
    """The codes of ``pack_bits``, from any buffer, as a fresh ``shape`` array."""
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=shape[0] * shape[1])
    unpacked: Codes = bits.reshape(shape)
    return unpacked


def pack_words(codes: Codes) -> npt.NDArray[np.uint64]:
    """A neutral world's codes (0 and 1) as ``shared.bitlife`` words: rows word-aligned,
    the first cell of a word its top bit, the bits past the width zero."""
    h, w = codes.shape
    rows = np.packbits(codes, axis=1)
    nw = (w + 63) // 64
    if rows.shape[1] != nw * 8:
        rows = np.concatenate([rows, np.zeros((h, nw * 8 - rows.shape[1]), np.uint8)], axis=1)
    words: npt.NDArray[np.uint64] = np.ascontiguousarray(rows).view(">u8").astype(np.uint64)
    return words


def unpack_words(words: npt.NDArray[np.uint64], width: int) -> Codes:
    """The codes (0 and 1, ``uint8``) of ``pack_words``' words, as a fresh array."""
    as_bytes = words.astype(">u8").view(np.uint8).reshape(words.shape[0],
                                                           words.shape[1] * 8)
    codes: Codes = np.unpackbits(as_bytes, axis=1, count=width)
    return codes


def player_code(owner: int) -> int:
    """The cell code of a live cell owned by ``owner`` (a player id, or 0 for neutral):
    the one place that knows a code is the owner plus one."""
    return owner + 1


NEUTRAL_CODE = player_code(NEUTRAL)  # the code of a live neutral cell
FIRST_PLAYER_CODE = player_code(1)   # the lowest code a player's cell has


def owner_of(code: int) -> int:
    """The owner of a cell code: a player id, or 0 (``NEUTRAL``) for neutral and empty."""
    return code - 1 if code else NEUTRAL


def code_of(state: str, owner: int = NEUTRAL) -> int:
    """The cell code for a state and an owner."""
    if state == EMPTY:
        return 0
    if state != ALIVE:
        raise ValueError(f"a cell state is ALIVE or EMPTY, not {state!r}")
    if not 0 <= owner <= MAX_PLAYER:
        raise ValueError(f"owner {owner} is not in 0..{MAX_PLAYER}")
    return player_code(owner)


def check_size(height: int, width: int) -> None:
    """Refuse world sizes lifenet cannot hold."""
    if height < 1 or width < 1:
        raise ConfigError(f"world size {height}x{width}: both sides must be at least 1")
    if height * width > MAX_CELLS:
        raise ConfigError(f"world size {height}x{width} has more than {MAX_CELLS} cells")


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``HxW`` (for example ``64x64``) into ``(height, width)``."""
    parts = text.lower().strip().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"size {text!r} is not HxW, for example 64x64")
    height, width = int(parts[0]), int(parts[1])
    check_size(height, width)
    return height, width


class Grid:
    """A toroidal world of cells with owners; ``get``/``set`` wrap as in the book.

    A neutral world may be held *packed* instead (``bits``: one bit a cell, 64 to a
    ``uint64`` word, rows word-aligned, as ``shared.bitlife`` lays them out): then its
    ``codes`` are made from the bits the first time something reads them, read-only
    (a packed grid is a generation: it does not change), and the bits stay. Assigning
    ``codes`` drops the bits (the codes are the world then)."""

    def __init__(self, height: int, width: int, codes: Codes | None = None, *,
                 wide: bool = False, bits: npt.NDArray[np.uint64] | None = None) -> None:
        check_size(height, width)
        self.height = height
        self.width = width
        self.bits: npt.NDArray[np.uint64] | None = None
        self._unpacking = Lock()
        self._codes: Codes | None
        if bits is not None and codes is None:
            if bits.shape != (height, (width + 63) // 64) or bits.dtype != np.uint64:
                raise ValueError(f"bits must be uint64 of shape "
                                 f"{(height, (width + 63) // 64)}, not {bits.dtype} "
                                 f"{bits.shape}")
            self.bits = bits
            self._codes = None
        elif codes is None:
            self._codes = np.zeros((height, width), dtype=WIDE if wide else NARROW)
        else:
            if codes.shape != (height, width) or codes.dtype not in (NARROW, WIDE):
                raise ValueError(f"codes must be uint8 or uint16 of shape "
                                 f"{(height, width)}, not {codes.dtype} {codes.shape}")
            self._codes = codes

    @property
    def codes(self) -> Codes:
        """The cell codes (made from the bits, once, when the world is packed)."""
        codes = self._codes
        return codes if codes is not None else self._unpack()

    @codes.setter
    def codes(self, codes: Codes) -> None:
        self._codes = codes
        self.bits = None

    @property
    def packed(self) -> bool:
        """Whether the world is held as bits (a neutral world: every code 0 or 1)."""
        return self.bits is not None

    def _unpack(self) -> Codes:
        """The codes of a packed grid, made once (any thread), read-only."""
        with self._unpacking:
            if self._codes is None:
                assert self.bits is not None
                codes = unpack_words(self.bits, self.width)
                codes.flags.writeable = False
                self._codes = codes
            return self._codes

    @classmethod
    def from_codes(cls, codes: npt.ArrayLike) -> Grid:
        """A grid over (a copy of) a 2-D array of cell codes, narrow where they fit."""
        arr = np.array(codes, copy=True)
        if arr.ndim != 2:
            raise ValueError("cell codes must be a 2-D array")
        if arr.dtype == np.bool_:
            arr = arr.view(NARROW)
        top = int(arr.max(initial=0))
        if int(arr.min(initial=0)) < 0:
            raise ValueError("cell codes are not negative")
        return cls(arr.shape[0], arr.shape[1], arr.astype(dtype_for(top), copy=False))

    @property
    def wide(self) -> bool:
        """Whether the codes take two bytes a cell (some player id is above 254)."""
        return is_wide(self.codes)

    def fit(self, top: int) -> None:
        """Widen the codes so that they hold ``top`` (a code about to be written)."""
        if top > NARROW_MAX_CODE and not self.wide:
            if top > MAX_CODE:
                raise ValueError(f"cell code {top} is not in 0..{MAX_CODE}")
            self.codes = self.codes.astype(WIDE)

    def get(self, y: int, x: int) -> str:
        """The state (``ALIVE`` or ``EMPTY``) at ``(y, x)``, wrapping around the torus."""
        return ALIVE if self.codes[y % self.height, x % self.width] else EMPTY

    def owner(self, y: int, x: int) -> int:
        """The owner of the live cell at ``(y, x)``; 0 for neutral and for empty cells."""
        return owner_of(int(self.codes[y % self.height, x % self.width]))

    def set(self, y: int, x: int, state: str, owner: int = NEUTRAL) -> None:
        """Set ``(y, x)`` to ``state`` owned by ``owner``, wrapping around the torus."""
        code = code_of(state, owner)
        self.fit(code)
        self.codes[y % self.height, x % self.width] = code

    @property
    def population(self) -> int:
        """How many cells are alive (a popcount of the bits of a packed world)."""
        if self.bits is not None:
            return int(np.bitwise_count(self.bits).sum(dtype=np.int64))
        return int(np.count_nonzero(self.codes))

    def copy(self) -> Grid:
        return Grid(self.height, self.width, self.codes.copy())

    def frozen(self) -> Grid:
        """A read-only view of this grid (the generation being stepped); a packed grid
        is itself (it never changes)."""
        if self.bits is not None:
            return self
        view = self.codes.view()
        view.flags.writeable = False
        return Grid(self.height, self.width, view)

    def padded(self, halo: int = 1) -> Codes:
        """The codes with a ``halo``-cell border copied from the opposite edges."""
        if halo != 1:
            return np.pad(self.codes, halo, mode="wrap")
        # Six slice copies; np.pad's ~100 Python-level steps cost 10x more when the
        # dispatcher and broker threads are contending for the GIL.
        codes = self.codes
        out = np.empty((self.height + 2, self.width + 2), dtype=codes.dtype)
        out[1:-1, 1:-1] = codes
        out[0, 1:-1] = codes[-1]
        out[-1, 1:-1] = codes[0]
        out[:, 0] = out[:, -2]
        out[:, -1] = out[:, 1]
        return out

    def tile(self, y: int, x: int, h: int, w: int) -> Codes:
        """The ``h`` x ``w`` cells at ``(y, x)`` with a one-cell halo from around them
        on the torus, as a fresh C-contiguous ``(h + 2, w + 2)`` array: what a batch
        carries. Cut from the codes directly (``padded()[y:y + h + 2, x:x + w + 2]``
        without padding the whole world first: one copy of a 4096x4096 world fewer)."""
        height, width = self.height, self.width
        if not (0 <= y < height and 0 <= x < width and 1 <= h <= height
                and 1 <= w <= width):
            raise ValueError(f"tile {h}x{w} at ({y}, {x}) is not in {height}x{width}")
        if y >= 1 and y + h + 1 <= height:
            rows = self.codes[y - 1:y + h + 1]
        else:
            rows = self.codes[np.arange(y - 1, y + h + 1) % height]
        out = np.empty((h + 2, w + 2), dtype=self.codes.dtype)
        if x >= 1 and x + w + 1 <= width:
            out[:] = rows[:, x - 1:x + w + 1]
        else:
            out[:, 1:-1] = rows[:, np.arange(x, x + w) % width] if x + w > width \
                else rows[:, x:x + w]
            out[:, 0] = rows[:, (x - 1) % width]
            out[:, -1] = rows[:, (x + w) % width]
        return out

    def live_cells(self) -> Iterator[tuple[int, int, int]]:
        """Every live cell as ``(y, x, owner)``, row by row."""
        ys, xs = np.nonzero(self.codes)
        for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
            yield y, x, owner_of(int(self.codes[y, x]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Grid):
            return NotImplemented
        return bool(self.codes.shape == other.codes.shape
                    and np.array_equal(self.codes, other.codes))

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        """The book's picture: one row per line, ``*`` alive and ``-`` empty."""
        return "\n".join("".join(ALIVE if c else EMPTY for c in row)
                         for row in self.codes.tolist())


def as_grid(world: Grid | Codes) -> Grid:
    """``world`` as a ``Grid``: a grid as it is, codes wrapped (not copied)."""
    if isinstance(world, Grid):
        return world
    return Grid(world.shape[0], world.shape[1], world)


class LockingGrid(Grid):
    """A ``Grid`` whose reads and writes take a ``Lock``, for many writer threads.

    This is the fan-in target of a generation (the book's item 57): dispatcher threads
    write answered tiles into it at the same time, and then the players' decisions and
    placements are written into it too, so every answer of a generation reaches the next
    one through this lock. ``paste_once`` makes the write of a batch happen at most once,
    whatever number of answers arrive for it (a re-sent batch may be answered twice).
    """

    def __init__(self, height: int, width: int, codes: Codes | None = None, *,
                 wide: bool = False, bits: npt.NDArray[np.uint64] | None = None) -> None:
        super().__init__(height, width, codes, wide=wide, bits=bits)
        self.lock = Lock()
        self._applied: set[int] = set()

    def _unpack(self) -> Codes:
        """A packed fan-in target turns into codes for good the first time they are
        read (its bits are dropped): what is written into it then is cells with owners
        (the players' decisions, placements), which bits cannot hold."""
        with self._unpacking:
            if self._codes is None:
                assert self.bits is not None
                self._codes = unpack_words(self.bits, self.width)
                self.bits = None
            return self._codes

    def get(self, y: int, x: int) -> str:
        with self.lock:
            return super().get(y, x)

    def owner(self, y: int, x: int) -> int:
        with self.lock:
            return super().owner(y, x)

    def set(self, y: int, x: int, state: str, owner: int = NEUTRAL) -> None:
        with self.lock:
            super().set(y, x, state, owner)

    def paste_once(self, key: int, y: int, x: int, tile: Codes) -> bool:
        """Write ``tile`` with its top-left at ``(y, x)`` unless ``key`` was applied.

        Returns whether it was written. The tile must fit without wrapping.
        """
        if self.bits is not None:
            return self._paste_rows(key, y, x, tile, once=True)
        h, w = tile.shape
        if y < 0 or x < 0 or y + h > self.height or x + w > self.width:
            raise ValueError(f"tile {h}x{w} at ({y}, {x}) does not fit "
                             f"{self.height}x{self.width}")
        with self.lock:
            if key in self._applied:
                return False
            self._fit_tile(tile)
            self.codes[y:y + h, x:x + w] = tile
            self._applied.add(key)
            return True

    def _paste_rows(self, key: int, y: int, x: int, rows: npt.NDArray[np.uint64],
                    once: bool) -> bool:
        """``paste_once`` (or ``overwrite``) into a packed target: ``rows`` are whole
        rows of words (``shared.bitlife``), written from row ``y``."""
        h = rows.shape[0]
        bits = self.bits
        assert bits is not None
        if x != 0 or rows.dtype != np.uint64 or rows.ndim != 2 \
                or rows.shape[1] != bits.shape[1] or y < 0 or y + h > self.height:
            raise ValueError(f"rows {rows.dtype} {rows.shape} at ({y}, {x}) are not whole "
                             f"rows of a packed {self.height}x{self.width} world")
        with self.lock:
            if once and key in self._applied:
                return False
            bits[y:y + h] = rows
            self._applied.add(key)
            return True

    def overwrite(self, key: int, y: int, x: int, tile: Codes) -> None:
        """Write ``tile`` over batch ``key``'s cells though it was applied: a wrong
        answer's cells, recomputed (``paste_once`` stays the rule for everything else)."""
        if self.bits is not None:
            self._paste_rows(key, y, x, tile, once=False)
            return
        h, w = tile.shape
        with self.lock:
            self._fit_tile(tile)
            self.codes[y:y + h, x:x + w] = tile
            self._applied.add(key)

    def _fit_tile(self, tile: Codes) -> None:
        if is_wide(tile) and not self.wide:
            self.fit(int(tile.max(initial=0)))

    def write(self, ys: npt.NDArray[np.int64], xs: npt.NDArray[np.int64],
              codes: npt.ArrayLike) -> None:
        """Set the cells ``(ys[i], xs[i])`` to ``codes`` (one code, or one per cell)."""
        with self.lock:
            self.fit(int(np.max(codes, initial=0)))
            self.codes[ys, xs] = codes

    def fill_empty(self, ys: npt.NDArray[np.int64], xs: npt.NDArray[np.int64],
                   code: int) -> int:
        """Set those of the cells ``(ys[i], xs[i])`` that are empty to ``code``; returns
        how many were (a placement lands only on empty cells)."""
        with self.lock:
            self.fit(code)
            empty = self.codes[ys, xs] == 0
            self.codes[ys[empty], xs[empty]] = code
            return int(np.count_nonzero(empty))

    def recolour(self, old: int, new: int) -> None:
        """Every cell of code ``old`` becomes ``new`` (a departed player's cells turn
        neutral)."""
        with self.lock:
            self.fit(new)
            self.codes[self.codes == old] = new

    def applied(self) -> int:
        """How many distinct batches have been written."""
        with self.lock:
            return len(self._applied)
