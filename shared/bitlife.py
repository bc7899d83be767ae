"""A bit-parallel Life kernel: 64 cells a ``uint64`` word, neighbours by an adder network.

For a world (or a tile) of neutral cells, liveness is all there is, so one bit a cell
holds the whole state. This module steps such a tile the way fast Life programs do:
every NumPy operation works on 64 cells at once, and the eight neighbours are summed
by a network of bitwise full and half adders instead of byte additions.

**Word layout.** A ``(h, width)`` plane is ``(h, words(width))`` native ``uint64``, one
row after another, each row starting on a new word (row-major, rows word-aligned). Cell
``x`` of a row is bit ``63 - x % 64`` of word ``x // 64``: the first cell is the most
significant bit. That is ``np.packbits``'s (big-endian) bit order read as big-endian
64-bit words, so a row of packbits bytes becomes its words by a byteswap (``>u8`` to
native), with no bit reversal. The bits of a row's last word past ``width`` are zero in
a plane made by ``from_cells`` or ``from_wire`` (``step_words``' answer has garbage
there, and in the halo columns: only its inside is ever read). On the wire a packed tile
is one flat ``np.packbits`` stream of ``h * width`` bits (rows not byte-aligned:
``shared.grid.pack_bits``); ``from_wire`` and ``to_wire`` move between that stream and
word-aligned rows by strided views or gathers of words, and shifts (no byte a cell).

**Halo, not wrap.** A step reads a tile with its one-cell halo (``(h + 2, w + 2)``, as a
batch carries it; ``Grid.padded`` for a whole torus) and gives the ``(h, w)`` inside, so
the torus wrap is the halo's business, as in ``shared.kernel.step_tile``: the west and
east neighbours of a row are the row shifted by one bit, carrying across words, and the
halo columns' own (wrong) next states are dropped when the inside is cut out.

**The adder network.** Each row's horizontal 3-sum (west + centre + east, 0..3) is two
bit planes, computed once a row and shared by the three rows that read it; the three
rows' sums then go through full adders into the 3x3 total. Conway's B3/S23 has its own
path: it adds the eight neighbours only (the centre row contributes west + east) and
its next state is ``(neighbours | centre) == 3``, which needs three sum bits and three
operations. Every other rule (any B/S sets the server accepts: ``B0`` is refused by
``shared.rules``) takes the 3x3 total's four bits ``t3 t2 t1 t0`` (0..9, the centre
included) and ORs, for each total that gives life, that total's equality test; totals
are grouped by their high bits so that each group is one two-input function of
``t1 t0`` (at most two operations), and then split by the centre's state.

**Where it pays.** A step costs about 60 NumPy calls whatever the tile's size, so small
tiles are faster unpacked, with ``shared.kernel.step_tile``: ``pays`` says which (the
worker and the server's own computation ask it).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from shared.rules import CONWAY, Rule

Words = npt.NDArray[np.uint64]
WORD = 64
ALL = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
BLOCK_WORDS = 1 << 14  # rows stepped together: ~128 KiB a plane, so temporaries stay cached
MIN_ROWS_A_PHASE = 64  # from_wire reads rows by strided views from this many a view
# Below this many cells (a tile with its halo) NumPy's byte kernel, unpacking and
# packing included, is faster: the bit kernel's ~60 NumPy calls cost about 60 us
# whatever the size. Measured (docs/benchmarks.md): 0.5x at 190x190, 0.7x to 1.1x
# (B3/S23) and 0.55x (B36/S23) at 256x256, 0.7x to 1.2x at 512x512, 1.6x to 1.9x at
# 1024x1024: 2^19 (about 724x724) is on the safe side of the crossover.
MIN_CELLS = 1 << 19


def words(width: int) -> int:
    """How many words hold a row of ``width`` cells."""
    return (width + WORD - 1) // WORD


def _tail_mask(width: int) -> np.uint64:
    """The bits of a row's last word that are cells (the rest stay zero)."""
    used = width - (words(width) - 1) * WORD
    return ALL if used == WORD else np.uint64(((1 << used) - 1) << (WORD - used))


# -- cells and words ------------------------------------------------------------------


def from_cells(alive: npt.NDArray[Any]) -> Words:
    """A ``(h, w)`` array of 0/1 (or any codes: non-zero is alive) as words."""
    h, w = alive.shape
    rows = np.packbits(alive != 0, axis=1)  # (h, ceil(w / 8)) bytes, big-endian bits
    padded = np.zeros((h, words(w) * 8), dtype=np.uint8)
    padded[:, :rows.shape[1]] = rows
    return padded.view(">u8").astype(np.uint64)


def to_cells(plane: Words, width: int) -> npt.NDArray[np.uint8]:
    """The ``(h, width)`` 0/1 cells (``uint8``) of a plane of words."""
    as_bytes = plane.astype(">u8").view(np.uint8).reshape(plane.shape[0], -1)
    cells: npt.NDArray[np.uint8] = np.unpackbits(as_bytes, axis=1, count=width)
    return cells


# -- the wire's flat packbits stream and words -----------------------------------------


def _stream(data: Any, bits: int) -> Words:
    """A flat packbits stream as native words, with one zero word after its end."""
    raw = np.frombuffer(data, dtype=np.uint8)
    need = (bits + 7) // 8
    if raw.size < need:
        raise ValueError(f"{raw.size} bytes hold fewer than {bits} bits")
    padded = np.zeros((words(bits) + 1) * 8, dtype=np.uint8)
    padded[:need] = raw[:need]
    return padded.view(">u8").astype(np.uint64)


def _shift_in(first: Words, second: Words, shift: Words) -> Words:
    """The 64 bits that start ``shift`` (0..63) bits into ``first`` and run on into
    ``second`` (MSB first); two shifts of ``second`` keep every count below 64."""
    out: Words = first << shift
    out |= (second >> np.uint64(1)) >> (np.uint64(63) - shift)
    return out


@lru_cache(maxsize=16)
def _rows_plan(h: int, width: int) -> tuple[npt.NDArray[np.intp], Words]:
    """Where each word of each row starts in a flat stream: stream word and bit."""
    starts = (np.arange(h, dtype=np.intp) * width)[:, None] \
        + np.arange(words(width), dtype=np.intp)[None, :] * WORD
    return _frozen(starts // WORD), _frozen((starts % WORD).astype(np.uint64))


def from_wire(data: Any, h: int, width: int) -> Words:
    """The ``(h, width)`` plane whose cells ``np.packbits`` packed into one flat stream
    (``shared.grid.pack_bits``), as word-aligned rows: two shifts a word.

    Row ``r`` starts ``r * width`` bits into the stream, at a bit offset that repeats
    every ``period`` rows; rows of one offset are an evenly strided view of the stream.
    A tall plane is read a view at a time (64 at most), a short one by a gather of
    every row's words (fewer NumPy calls, but the index costs cache misses when large).
    """
    stream = _stream(data, h * width)
    period = WORD // math.gcd(width, WORD)
    if h < MIN_ROWS_A_PHASE * period:
        at, shifts = _rows_plan(h, width)
        plane = _shift_in(stream[at], stream[at + 1], shifts)
    else:
        plane = np.empty((h, words(width)), dtype=np.uint64)
        stride = period * width // WORD  # stream words from a row to the next of its phase
        for phase in range(period):
            first, shift = divmod(phase * width, WORD)
            count = (h - phase + period - 1) // period
            rows = as_strided(stream[first:], shape=(count, plane.shape[1] + 1),
                              strides=(stride * stream.itemsize, stream.itemsize),
                              writeable=False)
            into = plane[phase::period]
            if shift == 0:
                into[:] = rows[:, :-1]
            else:
                np.left_shift(rows[:, :-1], np.uint64(shift), out=into)
                into |= rows[:, 1:] >> np.uint64(WORD - shift)
    plane[:, -1] &= _tail_mask(width)  # the next row's first cells are not this row's
    return plane


@lru_cache(maxsize=16)
def _stream_plan(h: int, width: int, start: int, row_words: int) -> tuple[
        npt.NDArray[np.intp], npt.NDArray[np.intp], Words, Words,
        npt.NDArray[np.intp], npt.NDArray[np.intp], Words]:
    """How to gather the flat stream of ``h`` rows of ``width`` cells read from column
    ``start`` of rows ``row_words`` words long. For every stream word: the plane words
    its first cells are in (the second one clipped to the plane: cells past the row
    are masked off), the bit it starts at, the mask of the cells it takes from that
    row. For the few words that run on into the next row (about one a row): which they
    are, where that row's cells start, and how many of this row's cells come first."""
    first = np.arange(words(h * width), dtype=np.intp) * WORD
    row, column = first // width, first % width
    source = start + column
    at = row * row_words + source // WORD
    then = np.minimum(at + 1, h * row_words - 1)
    left = np.minimum(width - column, WORD)
    keep = np.where(left == WORD, ALL, ~(ALL >> left.astype(np.uint64) % np.uint64(64)))
    # Words that end in the next row (not after the last row: the stream ends there).
    span = np.flatnonzero((left < WORD) & (row + 1 < h))
    nxt = (row[span] + 1) * row_words + start // WORD
    return (_frozen(at), _frozen(then), _frozen((source % WORD).astype(np.uint64)),
            _frozen(keep), _frozen(span), _frozen(nxt), _frozen(left[span].astype(np.uint64)))


def _frozen(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``array`` made read-only: the plans are cached and shared by every thread."""
    array.flags.writeable = False
    return array


def to_wire(plane: Words, width: int, start: int = 0, h: int | None = None) -> bytes:
    """The flat packbits stream of columns ``start..start + width - 1`` of a plane's
    first ``h`` rows (all of them by default): the bytes ``pack_bits`` makes of those
    cells. ``start`` 1 cuts the inside out of a stepped tile with its halo."""
    rows = plane.shape[0] if h is None else h
    plane = np.ascontiguousarray(plane[:rows])
    row_words = plane.shape[1]
    if width % 8 == 0:  # rows are whole bytes of the stream: shift, cut, join
        shifted = _columns_from(plane, start)
        as_bytes = shifted.astype(">u8").view(np.uint8).reshape(rows, -1)
        return as_bytes[:, :width // 8].tobytes()
    if width < WORD:  # a stream word spans more than two rows: go through the cells
        cells = to_cells(plane, start + width)[:, start:]
        return bytes(np.packbits(cells.reshape(-1)))
    flat = plane.reshape(-1)
    at, then, shift, keep, span, nxt, left = _stream_plan(rows, width, start, row_words)
    out = _shift_in(flat[at], flat[then], shift)
    out &= keep
    if span.size:
        following = _shift_in(flat[nxt], flat[np.minimum(nxt + 1, flat.size - 1)],
                              np.full(1, np.uint64(start % WORD)))
        out[span] |= following >> left
    data = out.astype(">u8").tobytes()
    return data[:(rows * width + 7) // 8]


def _columns_from(plane: Words, start: int) -> Words:
    """The plane's rows from column ``start`` on (shifted towards the first cell)."""
    plane = plane[:, start // WORD:]
    shift = start % WORD
    if shift == 0:
        return plane
    out: Words = plane << np.uint64(shift)
    out[:, :-1] |= plane[:, 1:] >> np.uint64(WORD - shift)
    return out


# -- the step -------------------------------------------------------------------------


def step_words(padded: Words, width: int, rule: Rule = CONWAY, *,
               wrap: bool = False) -> Words:
    """Next liveness of every column of rows ``1..H-2`` of a ``(H, words(width))``
    plane with a halo: ``(H - 2, words(width))`` words, of which columns ``1..width-2``
    are the tile's inside (the halo columns' bits are not).

    ``wrap``: the plane's rows are whole rows of a torus (no halo columns; rows above
    and below still): column 0's west neighbour is column ``width - 1`` and the other
    way round, every column is inside, and the bits past ``width`` in each row's last
    word are zero in the answer (they must be zero in ``padded`` too). This is a band
    of the server's packed world (``band_payload``).

    Computed in blocks of rows of about ``BLOCK_WORDS`` words, so that the adders'
    temporaries stay in the CPU's caches.
    """
    if padded.ndim != 2 or padded.shape[0] < 3 or padded.shape[1] != words(width):
        raise ValueError(f"a padded plane of width {width} is (H >= 3, {words(width)}) "
                         f"words, not {padded.shape}")
    h = padded.shape[0] - 2
    out = np.empty((h, padded.shape[1]), dtype=np.uint64)
    rows = max(1, BLOCK_WORDS // padded.shape[1])
    conway = rule == CONWAY
    wrapped = width if wrap else 0
    for y in range(0, h, rows):
        end = min(h, y + rows)
        block = padded[y:end + 2]
        if conway:
            _step_conway(block, out[y:end], wrapped)
        else:
            _step_rule(block, rule, out[y:end], wrapped)
    if wrap:
        out[:, -1] &= _tail_mask(width)
    return out


def _neighbours(plane: Words, wrapped: int = 0) -> tuple[Words, Words]:
    """Each cell's west and east neighbour, as planes: the rows shifted by one bit,
    carrying across words (cells past a row's ends read as empty; with ``wrapped``, a
    torus of that width, column 0 and the last column are each other's neighbours)."""
    west = plane >> np.uint64(1)
    west[:, 1:] |= plane[:, :-1] << np.uint64(63)
    east = plane << np.uint64(1)
    east[:, :-1] |= plane[:, 1:] >> np.uint64(63)
    if wrapped:
        last = np.uint64(WORD - 1 - (wrapped - 1) % WORD)  # the last column's bit
        west[:, 0] |= ((plane[:, -1] >> last) & np.uint64(1)) << np.uint64(63)
        east[:, -1] |= (plane[:, 0] >> np.uint64(63)) << last
    return west, east


def _step_conway(block: Words, out: Words, wrapped: int = 0) -> None:
    """B3/S23: the eight neighbours' count ``n`` (bits n2 n1 n0; 8 reads as 0 with
    n1 clear) and next = ``n0 | centre`` and ``n1`` and not ``n2``: (n | c) == 3.

    28 NumPy operations a block, many in place (fewer temporaries: 10 to 15 % faster
    than the same network written as expressions)."""
    west, east = _neighbours(block, wrapped)
    side0 = west ^ east              # west + east: bit 0 ...
    west &= east
    side1 = west                     # ... and bit 1 (the centre row's contribution)
    h1 = side0 & block               # west + centre + east: bit 1 ...
    h1 |= side1
    h0 = np.bitwise_xor(side0, block, out=east)  # ... and bit 0 (rows above and below)
    up0, up1, dn0, dn1 = h0[:-2], h1[:-2], h0[2:], h1[2:]
    mid0, mid1, centre = side0[1:-1], side1[1:-1], block[1:-1]
    # Weight 1: a full adder of three bits, n0 and a carry of weight 2.
    x = up0 ^ dn0
    carry = up0 & dn0
    n0 = x ^ mid0
    x &= mid0
    carry |= x
    # Weight 2: a full adder of three bits (p, and q of weight 4), then the carry.
    y = up1 ^ dn1
    q = up1 & dn1
    p = y ^ mid1
    y &= mid1
    q |= y
    np.bitwise_xor(p, carry, out=out)  # n1
    p &= carry
    q ^= p                             # n2 (weight 8 is not needed: see above)
    n0 |= centre
    out &= n0
    out &= np.invert(q, out=q)


def _total(block: Words, wrapped: int = 0) -> tuple[Words, Words, Words, Words, Words]:
    """The 3x3 totals (0..9, the centre included) as bits t0..t3, and the centres."""
    west, east = _neighbours(block, wrapped)
    side0 = west ^ east
    h0 = side0 ^ block
    h1 = (west & east) | (side0 & block)
    up0, up1, mid0, mid1, dn0, dn1 = h0[:-2], h1[:-2], h0[1:-1], h1[1:-1], h0[2:], h1[2:]
    x = up0 ^ dn0
    t0 = x ^ mid0
    carry = (up0 & dn0) | (x & mid0)
    y = up1 ^ dn1
    p = y ^ mid1
    q = (up1 & dn1) | (y & mid1)
    t1 = p ^ carry
    r = p & carry
    return t0, t1, q ^ r, q & r, block[1:-1]


def _pair_function(t0: Words, t1: Words, lows: frozenset[int]) -> Words | None:
    """The OR of ``(t1, t0) == l`` for every ``l`` in ``lows`` (a subset of 0..3), in
    at most two operations; None for the empty set (no cell)."""
    n = len(lows)
    if n == 0:
        return None
    if n == 4:
        return np.full(t0.shape, ALL, dtype=np.uint64)
    if n == 2:
        if lows == {1, 3}:
            return t0
        if lows == {0, 2}:
            return ~t0
        if lows == {2, 3}:
            return t1
        if lows == {0, 1}:
            return ~t1
        return t0 ^ t1 if lows == {1, 2} else ~(t0 ^ t1)
    if n == 1:
        (low,) = lows
        a = t0 if low & 1 else ~t0
        return a & t1 if low & 2 else a & ~t1
    (missing,) = frozenset(range(4)) - lows  # three of four: not the missing one
    if missing == 0:
        return t0 | t1
    if missing == 3:
        return ~(t0 & t1)
    return t0 | ~t1 if missing == 2 else ~t0 | t1


def _totals_giving_life(totals: frozenset[int], t: tuple[Words, Words, Words, Words]
                        ) -> Words | None:
    """Whether each cell's 3x3 total is in ``totals`` (a subset of 0..9), or None for
    the empty set. Totals 8 and 9 are the only ones with t3 set (and t1 clear), 4..7 the
    only ones with t2 set."""
    t0, t1, t2, t3 = t
    hits: Words | None = None
    for high, of_group in ((0, None), (1, t2), (2, t3)):
        lows = frozenset(k & 3 for k in totals if k >> 2 == high)
        if high == 2:  # 8 and 9: t1 is clear, so low 0 is "not t0" and 1 is "t0"
            lows = lows | {k | 2 for k in lows}
        f = _pair_function(t0, t1, lows)
        if f is None:
            continue
        # Not in place: ``f`` may be ``t0`` or ``t1`` themselves.
        f = f & (~(t2 | t3) if of_group is None else of_group)
        if hits is None:
            hits = f
        else:
            hits |= f
    return hits


def _step_rule(block: Words, rule: Rule, out: Words, wrapped: int = 0) -> None:
    """Any Life-like rule: from the 3x3 total (an empty cell's total is its neighbour
    count, a live cell's is one more), the totals that give life to both kinds of cell,
    to live cells only, and to empty cells only."""
    t0, t1, t2, t3, centre = _total(block, wrapped)
    empty = frozenset(rule.birth)
    live = frozenset(n + 1 for n in rule.survive)
    t = (t0, t1, t2, t3)
    both = _totals_giving_life(empty & live, t)
    live_only = _totals_giving_life(live - empty, t)
    empty_only = _totals_giving_life(empty - live, t)
    out[:] = 0
    if both is not None:
        out |= both
    if live_only is not None:
        out |= live_only & centre
    if empty_only is not None:
        out |= empty_only & ~centre


def pays(h: int, w: int) -> bool:
    """Whether the bit kernel is the faster one for a tile of ``h`` x ``w`` cells (and
    its halo): ``MIN_CELLS`` or more."""
    return (h + 2) * (w + 2) >= MIN_CELLS


def step_wire(data: Any, h: int, w: int, rule: Rule = CONWAY) -> bytes:
    """The packed next generation of the ``(h, w)`` inside of a packed ``(h + 2, w + 2)``
    tile (the ``packed`` payload of a batch and of its result): words in, words out,
    never a byte a cell."""
    plane = from_wire(data, h + 2, w + 2)
    return to_wire(step_words(plane, w + 2, rule), w, start=1)


def step_cells(padded: npt.NDArray[Any], rule: Rule = CONWAY) -> npt.NDArray[np.uint8]:
    """``step_wire`` for an unpacked neutral tile with its halo: the inside's next
    generation as 0/1 ``uint8`` (what ``shared.kernel.step_tile`` gives for it)."""
    w = padded.shape[1] - 2
    stepped = step_words(from_cells(padded), w + 2, rule)
    return to_cells(stepped, w + 2)[:, 1:-1]


# -- a packed world and its bands (the server keeps a neutral world this way) ----------

WIRE_WORD = np.dtype("<u8")  # a band's words on the wire: little-endian, whatever the machine


def rows_of(world: Words, y: int, h: int, view: bool = False) -> Words:
    """Rows ``y - 1 .. y + h`` of a packed torus (``(H, words(W))``), wrapping: a band
    with its halo rows, as a fresh C-contiguous ``(h + 2, words(W))`` plane (``view``:
    a view of ``world`` where the rows do not wrap, not copied)."""
    height = world.shape[0]
    if y >= 1 and y + h + 1 <= height:
        inside: Words = world[y - 1:y + h + 1]
        return inside if view else np.array(inside)
    wrapped: Words = world[np.arange(y - 1, y + h + 1) % height]
    return wrapped


def band_payload(band: Words) -> Words:
    """A band as the wire carries it (``rows`` batches and results): little-endian
    words, row after row (no copy on a little-endian machine)."""
    return np.ascontiguousarray(band).astype(WIRE_WORD, copy=False)


def band_from_wire(data: Any, rows: int, width: int) -> Words:
    """The ``(rows, words(width))`` plane of a ``rows`` payload, native words, with the
    bits past ``width`` cleared (a fresh array: a peer's stray bits never count)."""
    raw = np.frombuffer(data, dtype=WIRE_WORD)
    if raw.size != rows * words(width):
        raise ValueError(f"{raw.size} words are not {rows} rows of {words(width)}")
    plane = raw.astype(np.uint64).reshape(rows, words(width))
    plane[:, -1] &= _tail_mask(width)
    return plane


def step_band(data: Any, h: int, width: int, rule: Rule = CONWAY) -> Words:
    """The next generation of a ``rows`` batch: ``h`` whole rows of a torus of width
    ``width`` with the rows above and below (``h + 2`` rows of words), as ``h`` rows of
    words: the torus wraps the columns, so there are no halo columns at all."""
    return step_words(band_from_wire(data, h + 2, width), width, rule, wrap=True)


def population(plane: Words) -> int:
    """Live cells of a plane whose bits past its width are zero: a popcount."""
    return int(np.bitwise_count(plane).sum(dtype=np.int64))
