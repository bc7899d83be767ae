"""Run Length Encoded patterns (the format of Golly and the LifeWiki).

Reading accepts what Golly and the LifeWiki write: ``#N`` (name), ``#O`` (author),
``#C``/``#c`` (comments) and ``#CXRLE Pos=X,Y Gen=N`` lines, the ``x = .., y = .., rule
= ..`` header, run counts (before ``$`` too), bodies spread over many lines, trailing
dead cells and the closing ``!`` (anything after it is ignored). The rule may be written
``B3/S23``, ``S23/B3`` or the older ``23/3``, in either case, with a bounded-grid suffix:
``:T64,64`` (a torus of 64x64, lifenet's own topology) is kept as the pattern's
``torus``; the other topologies of Golly (``:P`` plane, ``:K`` Klein bottle, ``:C``
cross-surface, ``:S`` sphere, a twisted or infinite torus) are refused. Two-state bodies
use ``b`` (empty) and ``o`` (alive); multistate bodies use ``.`` (empty), ``A``..``X``
and ``pA``..``yO`` (states 1..255).

States above 255 (lifenet's owner codes go up to 65 535) are beyond Golly's format,
which stops at 255. lifenet extends it: a state ``s`` in 256..65535 is written ``z``,
then the multistate name of its high byte ``s >> 8`` (``A``..``yO``), then that of its
low byte ``s & 255``, the low byte 0 written ``.``. Names delimit themselves (a ``p``..``y``
prefix takes exactly one of ``A``..``X``; ``.`` and ``A``..``X`` stand alone), so no
separator is needed: 256 is ``zA.``, 257 ``zAA``, 281 ``zApA``, 6400 ``zpA.`` and 65535
``zyOyO``. A run count comes before the ``z`` (``3zA.``). Golly refuses such a file
(``z`` is not one of its letters); lifenet writes it only for a world that has a code
above 255, so every other file is plain Golly RLE.

lifenet's cell codes map onto states directly: state 1 (``A``, or ``o``) is a neutral
live cell, state 2 (``B``) is player 1's, and so on. Writing uses two-state letters when
every live cell is neutral, so Golly opens the file as plain Life; otherwise
multistate letters (and ``z`` names for codes above 255), so each live cell keeps its
owner. Reading gives ``uint8`` codes, or ``uint16`` once the body has a state above 255.

Reading streams (``read_rle``): the header first, then the body in blocks of about
``BLOCK`` bytes, each decoded with NumPy, never the whole text at once. The limits follow
the world, not a byte count: the declared box must fit a world lifenet accepts
(``shared.grid.check_size``'s ``MAX_CELLS``), it is the only thing allocated, and a body
that writes a live cell outside it is refused at that cell. A malformed text is one
``PatternError`` naming the line and the column: ``glider.rle:3:5: unexpected character
'#'``; a state above 65 535 (``zyP.``) or a ``z`` not followed by two names is one too.
"""

from __future__ import annotations

import array
import bisect
import functools
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from shared.errors import PatternError, RuleError
from shared.grid import MAX_CELLS, MAX_CODE, NARROW_MAX_CODE, WIDE, Codes
from shared.rules import CONWAY, Rule, parse_rule

BLOCK = 1 << 17          # bytes of body decoded at once (about 130 bytes of temporaries each)
LINE_LIMIT = 1 << 16     # a header or comment line is read in pieces of this size
MAX_COMMENTS = 256       # comment lines kept (the others are read and dropped)
_HEADER = re.compile(r"^x\s*=\s*(\d+)\s*,\s*y\s*=\s*(\d+)\s*(?:,\s*rule\s*=\s*(\S+)\s*)?$",
                     re.IGNORECASE)
_XRLE_POS = re.compile(r"\bPos\s*=\s*(-?\d+)\s*,\s*(-?\d+)")
_XRLE_GEN = re.compile(r"\bGen\s*=\s*(-?\d+)")
_SB = re.compile(r"^S([0-8]*)/B([0-8]*)$", re.IGNORECASE)
_TORUS = re.compile(r"^T(\d+),(\d+)$", re.IGNORECASE)
_TOPOLOGIES = {"P": "a bounded plane", "T": "a torus", "K": "a Klein bottle",
               "C": "a cross-surface", "S": "a sphere"}
_LINE_WIDTH = 70
# How many digits a run count is written with: none up to 1, one from 2, two from 10...
_DIGIT_STEPS = np.array([2] + [10 ** k for k in range(1, 10)], dtype=np.int64)

# The body's characters, by class; and the state each letter stands for.
_WS, _DIGIT, _STATE, _PREFIX, _DOLLAR, _BANG, _BAD, _WIDE = range(8)
_CLASS = np.full(256, _BAD, dtype=np.uint8)
_CLASS[list(b" \t\r\n\v\f")] = _WS
_CLASS[list(b"0123456789")] = _DIGIT
_CLASS[list(b"bo.ABCDEFGHIJKLMNOPQRSTUVWX")] = _STATE
_CLASS[list(b"pqrstuvwxy")] = _PREFIX
_CLASS[ord("z")] = _WIDE  # lifenet's extension: a state above 255, two names follow
_CLASS[ord("$")] = _DOLLAR
_CLASS[ord("!")] = _BANG
_VALUE = np.zeros(256, dtype=np.int64)
_VALUE[ord("o")] = 1
_VALUE[ord("A"):ord("X") + 1] = np.arange(1, 25)
_LONG_RUN = 64           # runs at least this long are written as slices
_BATCH = 1 << 18         # cells of short runs written at once
_Fail = Callable[[int, str], PatternError]


@dataclass
class Pattern:
    """A rectangle of cell codes read from a pattern file, with what the file said of it.

    ``rule`` is the file's rule if it had one; ``torus`` the ``(height, width)`` of its
    ``:T`` bounded grid; ``origin`` the ``(y, x)`` of its top-left cell in the file's own
    coordinates (``#CXRLE Pos``, Life 1.06); ``generation`` its ``#CXRLE Gen``; ``name``
    its ``#N`` line (``!Name:`` in plaintext). ``comments`` are its comment lines, each
    with its ``#``."""

    codes: Codes
    rule: Rule | None = None
    comments: list[str] = field(default_factory=list)
    name: str | None = None
    torus: tuple[int, int] | None = None
    origin: tuple[int, int] | None = None
    generation: int | None = None

    @property
    def height(self) -> int:
        return int(self.codes.shape[0])

    @property
    def width(self) -> int:
        return int(self.codes.shape[1])

    @property
    def population(self) -> int:
        """How many of its cells are alive."""
        return int(np.count_nonzero(self.codes))

    def oriented(self, rotate: int = 0, flip: bool = False) -> npt.NDArray[np.bool_]:
        """The live cells as a placement puts them: mirrored left-right first (``flip``),
        then turned clockwise by ``rotate`` quarter turns. The one definition of a
        pattern's orientation: the server places by it, the clients preview by it."""
        shape = self.codes != 0
        if flip:
            shape = np.fliplr(shape)
        turned: npt.NDArray[np.bool_] = np.rot90(shape, -rotate)
        return turned


def where(source: str | None, line: int, column: int) -> str:
    """A place in a pattern text: ``glider.rle:3:5``, or ``line 3, column 5``."""
    if source:
        return f"{source}:{line}:{column}"
    return f"line {line}, column {column}"


def located(source: str | None, line: int, column: int, reason: str) -> PatternError:
    """The one-line error for a malformed pattern text, naming the line and column."""
    return PatternError(f"{where(source, line, column)}: {reason}")


def parse_rle_rule(text: str) -> tuple[Rule, tuple[int, int] | None]:
    """An RLE header's rule: ``B3/S23``, ``S23/B3``, ``23/3`` or ``Life``, any case, and
    the ``(height, width)`` of a ``:Tw,h`` torus suffix if it has one. Other bounded
    grids are refused (``PatternError``), as are rules ``shared.rules`` refuses."""
    rule_text, colon, topology = text.strip().partition(":")
    torus = _torus(topology) if colon else None
    cleaned = rule_text.strip()
    if cleaned.count("/") > 1:
        raise PatternError(f"rule {rule_text!r} has more than two parts: lifenet runs "
                           "two-state Life-like rules only")
    sb = _SB.match(cleaned)
    if sb:
        cleaned = f"B{sb.group(2)}/S{sb.group(1)}"
    elif cleaned.lower() == "life":
        return CONWAY, torus
    try:
        return parse_rule(cleaned), torus
    except RuleError as e:
        raise PatternError(str(e)) from e


def _torus(topology: str) -> tuple[int, int]:
    """The ``(height, width)`` of a ``Tw,h`` suffix; any other topology is refused."""
    kind = topology[:1].upper()
    match = _TORUS.match(topology.strip())
    if match is None:
        if kind == "T":
            why = ("a torus with shifted edges" if "+" in topology or "-" in topology
                   else "a torus is written ':Twidth,height'")
        else:
            why = _TOPOLOGIES.get(kind, "an unknown topology")
        raise PatternError(f"bounded grid ':{topology}' ({why}) is not supported: "
                           "lifenet's world is a torus, ':Twidth,height'")
    width, height = int(match.group(1)), int(match.group(2))
    if width == 0 or height == 0:
        raise PatternError(f"bounded grid ':{topology}' has an infinite side: lifenet's "
                           "torus is finite both ways")
    if max(len(match.group(1)), len(match.group(2))) > 9 or width * height > MAX_CELLS:
        raise PatternError(f"bounded grid ':{topology}' is larger than {MAX_CELLS} cells")
    return height, width


def parse_rle(text: str, max_side: int | None = None, source: str | None = None) -> Pattern:
    """Parse RLE text into a ``Pattern``; ``PatternError`` says what is wrong and where.

    ``max_side`` refuses a pattern whose header declares a side longer than that before
    anything is allocated for it (a 20-byte header can declare a 8000x8000 box)."""
    return read_rle(io.BytesIO(text.encode("utf-8")), source, max_side)


@dataclass
class RleHeader:
    """What an RLE file says before its body: the declared box, the rule, the comments."""

    width: int
    height: int
    rule: Rule | None
    torus: tuple[int, int] | None
    comments: list[str]
    name: str | None
    origin: tuple[int, int] | None
    generation: int | None
    line: int  # the header's line number: the body starts on the next one


def read_rle(stream: BinaryIO, source: str | None = None,
             max_side: int | None = None) -> Pattern:
    """Read an RLE pattern from a binary stream, streaming: the header, then the body
    block by block into the declared box (the one allocation, one byte a cell; widened
    to two bytes a cell at the first state above 255). ``source`` names the stream in
    errors."""
    header = read_rle_header(stream, source, max_side)
    codes = np.zeros((header.height, header.width), dtype=np.uint8)
    body = _Body(codes, source, header.line + 1)
    body.read(stream)
    return Pattern(body.codes, header.rule, header.comments, header.name, header.torus,
                   header.origin, header.generation)


def read_rle_header(stream: BinaryIO, source: str | None = None,
                    max_side: int | None = None) -> RleHeader:
    """Read an RLE stream up to and including its ``x = W, y = H`` line, checking the
    declared box (``max_side``, and no more cells than a world lifenet holds)."""
    comments: list[str] = []
    name = origin = generation = None
    number = 0
    while True:
        raw = stream.readline(LINE_LIMIT)
        if not raw:
            raise PatternError(f"{source or 'RLE'}: no 'x = W, y = H' header")
        number += 1
        line = raw.decode("utf-8", "replace")
        if number == 1:
            line = line.lstrip("\ufeff")
        text = line.strip()
        if text.startswith("#"):
            if not raw.endswith(b"\n"):
                _skip_line(stream)
            if len(comments) < MAX_COMMENTS:
                comments.append(text[:LINE_LIMIT])
            if text[:2] == "#N" and name is None:
                name = text[2:].strip() or None
            elif text.startswith("#CXRLE"):
                origin, generation = _xrle(text, source, number, origin, generation)
            continue
        if not text:
            continue
        lead = len(line) - len(line.lstrip()) + 1
        header = _HEADER.match(text)
        if header is None:
            raise located(source, number, lead, "expected the header 'x = W, y = H[, rule "
                          f"= R]', found {text[:40]!r}")
        break
    if max(len(header.group(1)), len(header.group(2))) > 9:
        raise located(source, number, lead, "the header's side has more than 9 digits")
    width, height = int(header.group(1)), int(header.group(2))
    if max_side is not None and max(width, height) > max_side:
        raise located(source, number, lead, f"the pattern {width}x{height} is larger than "
                      f"{max_side}x{max_side}")
    if width * height > MAX_CELLS:
        raise located(source, number, lead, f"the pattern {width}x{height} is larger than "
                      f"{MAX_CELLS} cells, the largest world lifenet holds")
    rule = torus = None
    if header.group(3):
        try:
            rule, torus = parse_rle_rule(header.group(3))
        except PatternError as e:
            raise located(source, number, lead + header.start(3), str(e)) from e
    return RleHeader(width, height, rule, torus, comments, name, origin, generation, number)


def _skip_line(stream: BinaryIO) -> None:
    """Read on to the end of a line longer than ``LINE_LIMIT``."""
    while True:
        piece = stream.readline(LINE_LIMIT)
        if not piece or piece.endswith(b"\n"):
            return


def _xrle(text: str, source: str | None, number: int, origin: tuple[int, int] | None,
          generation: int | None) -> tuple[tuple[int, int] | None, int | None]:
    """The ``Pos=X,Y`` (as ``(y, x)``) and ``Gen=N`` of a ``#CXRLE`` line."""
    pos, gen = _XRLE_POS.search(text), _XRLE_GEN.search(text)
    if "Pos" in text and pos is None:
        raise located(source, number, text.index("Pos") + 1,
                      "#CXRLE Pos is not two integers, Pos=X,Y")
    if pos is not None:
        x, y = int(pos.group(1)), int(pos.group(2))
        if max(abs(x), abs(y)) > 1 << 62:
            raise located(source, number, pos.start() + 1, "#CXRLE Pos is out of range")
        origin = (y, x)
    if gen is not None:
        generation = int(gen.group(1)) if len(gen.group(1)) < 40 else None
    return origin, generation


class _Body:
    """Decodes an RLE body into ``codes``, one block at a time, with NumPy.

    A run count or a ``pA``-style or ``zAB``-style state may be split between blocks (and
    lines): the characters after a block's last complete token are carried into the
    next, with their places in the file for the errors. ``#`` lines inside the body are
    skipped, as before. ``codes`` starts narrow and is replaced by a ``uint16`` copy at
    the first state above 255 (read ``self.codes`` afterwards)."""

    def __init__(self, codes: Codes, source: str | None, line: int) -> None:
        self.codes = codes
        self.flat = codes.reshape(-1)
        self.height, self.width = codes.shape
        self.source = source
        self.line, self.column = line, 1  # where the next byte read is
        self.y = self.x = 0
        self.carry = np.zeros(0, dtype=np.uint8)
        self.carry_at: list[tuple[int, int]] = []
        self.blank_line = True   # the line read so far is only whitespace
        self.in_comment = False  # inside a '#' line that goes on in the next block
        self.done = False

    def read(self, stream: BinaryIO) -> None:
        while not self.done:
            block = stream.read(BLOCK)
            if not block:
                break
            if not block.endswith(b"\n"):  # end at a line's end unless it is very long
                block += stream.readline(LINE_LIMIT)
            self.feed(block)
        if self.done:
            return
        if self.carry.size:
            counted = bool(np.all(_CLASS[self.carry] == _DIGIT))
            raise located(self.source, *self.carry_at[0],
                          "the body ends with a run count and no state" if counted
                          else "the body ends inside a state's name")
        raise located(self.source, self.line, self.column,
                      "the body ends without its closing '!'")

    def feed(self, block: bytes) -> None:
        data = np.frombuffer(block, dtype=np.uint8).copy()
        newlines = np.flatnonzero(data == 10)
        start = (self.line, self.column)
        self._skip_comments(data, newlines)
        if newlines.size:
            self.line += int(newlines.size)
            self.column = len(data) - int(newlines[-1])
        else:
            self.column += len(data)
        rest = data[int(newlines[-1]) + 1:] if newlines.size else data
        self.blank_line = bool(np.all(_CLASS[rest] == _WS)) and (
            bool(newlines.size) or self.blank_line)
        carried = self.carry.size
        text = np.concatenate([self.carry, data]) if carried else data
        self._decode(text, carried, start, newlines)

    def _skip_comments(self, data: Codes, newlines: npt.NDArray[np.intp]) -> None:
        """Blank out the ``#`` lines of this block (and the rest of one begun before)."""
        if self.in_comment:
            end = int(newlines[0]) if newlines.size else len(data)
            data[:end] = 32
            self.in_comment = not newlines.size
        for at in np.flatnonzero(data == ord("#")).tolist():
            if data[at] != ord("#"):
                continue  # inside a comment line already blanked
            i = int(np.searchsorted(newlines, at))
            begin = int(newlines[i - 1]) + 1 if i else 0
            if not np.all(_CLASS[data[begin:at]] == _WS) or (not i and not self.blank_line):
                break  # not at a line's start: an unexpected character, said below
            end = int(newlines[i]) if i < newlines.size else len(data)
            data[at:end] = 32
            if i >= newlines.size:
                self.in_comment = True

    def _decode(self, text: Codes, carried: int, start: tuple[int, int],
                newlines: npt.NDArray[np.intp]) -> None:
        def fail(offset: int, reason: str) -> PatternError:
            return located(self.source, *self._place(int(offset), start, carried, newlines),
                           reason)

        classes = _CLASS[text]
        bangs = np.flatnonzero(classes == _BANG)
        end = int(bangs[0]) + 1 if bangs.size else len(text)
        classes = classes[:end]
        bad = np.flatnonzero(classes == _BAD)
        if bad.size:
            raise fail(bad[0], f"unexpected character {chr(text[bad[0]])!r}")
        keep = np.flatnonzero(classes != _WS)
        kind = classes[keep]
        letters = text[keep]
        prefix = np.flatnonzero(kind == _PREFIX)
        if prefix.size:
            nxt = prefix + 1
            inside = nxt < len(kind)
            ok = np.zeros(len(prefix), dtype=np.bool_)
            follow = nxt[inside]
            ok[inside] = ((kind[follow] == _STATE) & (letters[follow] >= ord("A"))
                          & (letters[follow] <= ord("X")))
            wrong = np.flatnonzero(inside & ~ok)
            if wrong.size:
                at = prefix[wrong[0]]
                raise fail(keep[at], f"state prefix {chr(letters[at])!r} is not followed "
                                     "by A..X")
        inner, wide_of = _wide_names(kind, letters, keep, fail)
        term = np.flatnonzero(((kind == _STATE) & ~inner) | (kind == _DOLLAR)
                              | (kind == _BANG))
        last = int(term[-1]) if term.size else -1
        tail = keep[last + 1:]  # a count (and a prefix) whose state is in the next block
        if np.count_nonzero(kind[last + 1:] == _DIGIT) > 9:
            raise fail(tail[0], "run count " + bytes(text[tail[:10]]).decode() +
                       "... is too long")
        new_carry_at = [self._place(int(o), start, carried, newlines) for o in tail]
        if term.size:
            self._tokens(keep, kind, letters, term, wide_of[term], fail)
        self.carry = text[tail].copy()
        self.carry_at = new_carry_at
        if bangs.size:
            self.done = True

    def _place(self, offset: int, start: tuple[int, int], carried: int,
               newlines: npt.NDArray[np.intp]) -> tuple[int, int]:
        if offset < carried:
            return self.carry_at[offset]
        at = offset - carried
        i = int(np.searchsorted(newlines, at))
        return start[0] + i, (at - int(newlines[i - 1]) if i else start[1] + at)

    def _tokens(self, keep: npt.NDArray[np.intp], kind: Codes, letters: Codes,
                term: npt.NDArray[np.intp], wide_at: npt.NDArray[np.intp],
                fail: _Fail) -> None:
        """Decode the complete tokens (a count, then a state, ``$`` or ``!``) and write
        their live runs. ``term`` is where each token ends (among the non-blank
        characters); ``wide_at`` where its ``z`` is, for a state above 255 (else -1)."""
        first = np.empty_like(term)
        first[0] = 0
        first[1:] = term[:-1] + 1
        prefixed = np.zeros(len(term), dtype=np.bool_)
        has_room = term > first
        prefixed[has_room] = kind[term[has_room] - 1] == _PREFIX
        wide = wide_at >= 0
        digits_end = np.where(wide, wide_at, term - prefixed)
        ndigits = digits_end - first
        long_counts = np.flatnonzero(ndigits > 9)
        if long_counts.size:
            at = first[long_counts[0]]
            raise fail(keep[at], "run count " + bytes(letters[at:at + 10]).decode() +
                       "... is too long")
        values = letters.astype(np.int64) - ord("0")
        count = np.zeros(len(term), dtype=np.int64)
        for d in range(int(ndigits.max(initial=0))):
            has = np.flatnonzero(ndigits > d)
            count[has] += values[digits_end[has] - 1 - d] * 10 ** d
        runs = np.where(ndigits > 0, count, 1)
        tkind = kind[term]
        bang = np.flatnonzero((tkind == _BANG) & (ndigits > 0))
        if bang.size:
            k = bang[0]
            raise fail(keep[first[k]], f"run count {count[k]} before '!' has no state")
        is_state = tkind == _STATE
        is_dollar = tkind == _DOLLAR
        states = _name_values(letters, term, prefixed)
        if prefixed.any() or wide.any():
            states = self._wide_states(keep, kind, letters, term, wide_at, prefixed,
                                       states, fail)
        # Where each token starts: rows advance at '$', columns by the runs since.
        down = np.where(is_dollar, runs, 0)
        rows = self.y + np.cumsum(down) - down
        along = np.where(is_state, runs, 0)
        done = np.cumsum(along)
        before = done - along
        index = np.arange(len(term))
        last_row_end = np.maximum.accumulate(np.where(is_dollar, index, -1))
        columns = np.where(last_row_end >= 0, before - done[np.maximum(last_row_end, 0)],
                           before + self.x)
        live = np.flatnonzero(is_state & (states != 0) & (runs > 0))
        if live.size:
            ys, xs, ns = rows[live], columns[live], runs[live]
            outside = np.flatnonzero((ys >= self.height) | (xs + ns > self.width))
            if outside.size:
                k = outside[0]
                raise fail(keep[digits_end[live[k]]], f"the body runs outside the declared "
                           f"{self.width}x{self.height} box (row {ys[k]}, column "
                           f"{xs[k] + ns[k] - 1})")
            self._fill(ys * self.width + xs, ns, states[live])
        # Clamped: a row or column past the box stays past it, and never overflows.
        self.y = min(int(rows[-1] + down[-1]), self.height + 1)
        self.x = min(int(columns[-1] + along[-1]), self.width + 1)

    def _wide_states(self, keep: npt.NDArray[np.intp], kind: Codes, letters: Codes,
                     term: npt.NDArray[np.intp], wide_at: npt.NDArray[np.intp],
                     prefixed: npt.NDArray[np.bool_], states: npt.NDArray[np.int64],
                     fail: _Fail) -> npt.NDArray[np.int64]:
        """The states of the tokens once their ``z`` high bytes are counted, checked:
        a name beyond 255 (``yP``..``yX``) and a ``z`` state beyond 65 535 are refused,
        the first in the text first. Widens the codes at the first state above 255."""
        is_wide = wide_at >= 0
        # A name beyond 255 (``yP``..``yX``): a state, or a z state's low byte.
        named = (states > NARROW_MAX_CODE) & prefixed
        low_values = states.copy()
        wide = np.flatnonzero(is_wide)
        if wide.size:
            zs = wide_at[wide]
            high_prefixed = kind[zs + 1] == _PREFIX
            high = _name_values(letters, zs + 1 + high_prefixed, high_prefixed)
            states[wide] += high << 8
        over = is_wide & ~named & (states > MAX_CODE)  # its high byte is beyond 255
        bad = np.flatnonzero(named | over)
        if bad.size:
            k = int(bad[0])
            if named[k] and not is_wide[k]:
                raise fail(keep[term[k] - 1], f"state {states[k]} is beyond 255")
            if named[k]:
                raise fail(keep[term[k] - 1], "the low byte of a 'z' state, "
                                              f"{low_values[k]}, is beyond 255")
            raise fail(keep[wide_at[k]], f"state {states[k]} is beyond {MAX_CODE}")
        if wide.size and self.codes.dtype != WIDE:
            self.codes = self.codes.astype(WIDE)
            self.flat = self.codes.reshape(-1)
        return states

    def _fill(self, starts: npt.NDArray[np.int64], runs: npt.NDArray[np.int64],
              states: npt.NDArray[np.int64]) -> None:
        """Write non-overlapping runs of states into the flat codes: long runs as
        slices, short ones by index in batches of about ``_BATCH`` cells."""
        flat = self.flat
        long_runs = runs >= _LONG_RUN
        if long_runs.any():
            for start, n, state in zip(starts[long_runs].tolist(), runs[long_runs].tolist(),
                                       states[long_runs].tolist(), strict=True):
                flat[start:start + n] = state
            short = ~long_runs
            starts, runs, states = starts[short], runs[short], states[short]
        if not starts.size:
            return
        if int(runs.max()) == 1:
            flat[starts] = states
            return
        ends = np.cumsum(runs)
        i = 0
        while i < len(starts):
            base = int(ends[i - 1]) if i else 0
            j = max(i + 1, int(np.searchsorted(ends, base + _BATCH, side="right")))
            n = runs[i:j]
            offsets = ends[i:j] - n - base
            cells = np.arange(int(ends[j - 1]) - base, dtype=np.int64) + np.repeat(
                starts[i:j] - offsets, n)
            flat[cells] = np.repeat(states[i:j], n)
            i = j


def _name_values(letters: Codes, ends: npt.NDArray[np.intp],
                 prefixed: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """The states the names ending at ``ends`` stand for (``prefixed``: a ``p``..``y``
    before the letter): ``b``/``.`` 0, ``o``/``A`` 1 ... ``X`` 24, ``pA`` 25 ... ``yO``
    255 (and on to ``yX``, 264, refused by the caller)."""
    values: npt.NDArray[np.int64] = _VALUE[letters[ends]]
    pre = np.flatnonzero(prefixed)
    if pre.size:
        values[pre] = (25 + 24 * (letters[ends[pre] - 1].astype(np.int64) - ord("p"))
                       + letters[ends[pre]].astype(np.int64) - ord("A"))
    return values


def _wide_names(kind: Codes, letters: Codes, keep: npt.NDArray[np.intp],
                fail: _Fail) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.intp]]:
    """The ``z`` states among the non-blank characters ``kind``/``letters``: a ``z``,
    a high byte's name (``A``..``X`` or ``pA``..``yO``), a low byte's name (the same, or
    ``.``). Returns the letters that end a high byte's name (they do not end a token),
    and for each character the place of the ``z`` whose state it ends (-1 for all
    others). A ``z`` cut by the block's end ends no token (its letters are carried); one
    followed by anything but two names is refused, at the ``z``."""
    n = len(kind)
    inner = np.zeros(n, dtype=np.bool_)
    wide_of = np.full(n, -1, dtype=np.intp)
    zs = np.flatnonzero(kind == _WIDE)
    if not zs.size:
        return inner, wide_of
    upper = (letters >= ord("A")) & (letters <= ord("X"))
    high = zs + 1
    high_ok = np.ones(len(zs), dtype=np.bool_)
    high_in = high < n
    at = high[high_in]
    high_ok[high_in] = (kind[at] == _PREFIX) | ((kind[at] == _STATE) & upper[at])
    high_end = high.copy()
    high_end[high_in] += kind[at] == _PREFIX
    low = high_end + 1
    low_ok = np.ones(len(zs), dtype=np.bool_)
    low_in = low < n
    at = low[low_in]
    low_ok[low_in] = (kind[at] == _PREFIX) | (
        (kind[at] == _STATE) & (upper[at] | (letters[at] == ord("."))))
    wrong = np.flatnonzero(~(high_ok & low_ok))
    if wrong.size:
        k = int(wrong[0])
        found = high[k] if not high_ok[k] else low[k]
        raise fail(keep[zs[k]], "a 'z' state needs two state names after it (A..yO, "
                                f"then '.' or A..yO), not {chr(letters[found])!r}")
    low_end = low.copy()
    low_end[low_in] += kind[low[low_in]] == _PREFIX
    inner[high_end[high_end < n]] = True
    whole = low_end < n
    wide_of[low_end[whole]] = zs[whole]
    return inner, wide_of


def _state_letters(state: int) -> str:
    """A state's multistate name: ``.``, ``A``..``X``, ``pA``..``yO``, and above 255
    lifenet's ``z``, the high byte's name, the low byte's name (0 written ``.``)."""
    if state > NARROW_MAX_CODE:
        high, low = divmod(state, 256)
        return "z" + _state_letters(high) + _state_letters(low)
    if state == 0:
        return "."
    if state <= 24:
        return chr(ord("A") + state - 1)
    prefix, rest = divmod(state - 25, 24)
    return chr(ord("p") + prefix) + chr(ord("A") + rest)


_NAME_WIDTH = 5  # the longest name: zpApA


@functools.lru_cache(maxsize=4)
def _letter_table(two_state: bool, wide: bool) -> tuple[Codes, Codes]:
    """Each state's name, padded with zeros to ``_NAME_WIDTH`` letters, and its length;
    then two more rows, ``$`` and ``!``. For ``wide`` codes there are 65 536 states, the
    ``z`` names built from the 256 names of bytes at once (a few milliseconds, cached)."""
    names = np.zeros((256, _NAME_WIDTH), dtype=np.uint8)
    widths = np.zeros(256, dtype=np.int32)
    for state in range(256):
        text = ("o" if state else "b") if two_state else _state_letters(state)
        names[state, :len(text)] = list(text.encode())
        widths[state] = len(text)
    if wide:
        states = np.arange(MAX_CODE + 1)
        high, low = states >> 8, states & 0xFF
        rows = np.arange(len(states))
        table = np.zeros((len(states), _NAME_WIDTH), dtype=np.uint8)
        table[:, 0] = ord("z")
        table[:, 1:3] = names[high, :2]
        low_at = 1 + widths[high]  # the low byte's name follows the high byte's
        table[rows, low_at] = names[low, 0]
        table[rows, low_at + 1] = names[low, 1]
        table_widths = 1 + widths[high] + widths[low]
        table[:256], table_widths[:256] = names, widths
        names, widths = table, table_widths
    ends = np.zeros((2, _NAME_WIDTH), dtype=np.uint8)
    ends[:, 0] = [ord("$"), ord("!")]
    table = np.concatenate([names, ends])
    table_widths = np.concatenate([widths, np.ones(2, dtype=np.int32)])
    table.flags.writeable = table_widths.flags.writeable = False
    return table, table_widths


def write_rle(codes: Codes, rule: Rule | None = None, comments: list[str] | None = None) -> str:
    """RLE text for a rectangle of cell codes (two-state when every live cell is neutral;
    ``z`` names for codes above 255, see the module's docstring).

    Built with NumPy, token by token but never in a Python loop over cells or runs (a
    4096x4096 soup has about 6 M runs): runs and row ends become tokens (a count, then a
    name of one to five letters), lines are filled greedily up to 70 characters without
    splitting a token, and the characters are written into one byte array.
    """
    height, width = codes.shape
    top = int(codes.max(initial=0))
    if top > MAX_CODE:
        raise ValueError(f"cell code {top} is beyond {MAX_CODE}")
    header = f"x = {width}, y = {height}"
    if rule is not None:
        header += f", rule = {rule}"
    lines = [f"#C {c}" if not c.startswith("#") else c for c in comments or []]
    lines.append(header)
    return "\n".join(lines) + "\n" + _body(codes, top <= 1, top > NARROW_MAX_CODE) + "\n"


def _body(codes: Codes, two_state: bool, wide: bool) -> str:
    """The RLE body, ``!`` included, wrapped at ``_LINE_WIDTH``.

    Positions and counts are ``int32`` (a world has at most ``MAX_CELLS`` cells, and
    its text fewer than 2**31 characters), to keep the peak memory of a large world down.
    Each token is a count and a row of ``_letter_table``: a state, ``$`` or ``!``.
    """
    width = codes.shape[1]
    i32 = np.int32
    table, name_widths = _letter_table(two_state, wide)
    dollar, bang = len(table) - 2, len(table) - 1
    symbol_type = np.int32 if wide else np.uint16
    counts = np.zeros(0, dtype=i32)
    symbols = np.zeros(0, dtype=symbol_type)
    if codes.size:
        # Runs: a run starts where the code changes or a row begins.
        flat = np.ascontiguousarray(codes, dtype=np.uint16 if wide else np.uint8).reshape(-1)
        change = np.ones(flat.size, dtype=np.bool_)
        np.not_equal(flat[1:], flat[:-1], out=change[1:])
        change[::width] = True
        starts = np.flatnonzero(change).astype(i32)
        del change
        ends = np.append(starts[1:], i32(flat.size))
        states = flat[starts]
        keep = (states != 0) | (ends % width != 0)  # a row's trailing empties: dropped
        starts, ends, states = starts[keep], ends[keep], states[keep]
        rows = starts // width
        gaps = np.diff(rows, prepend=i32(0))  # rows ended before each run: a "$" token
        has_gap = gaps > 0
        n = len(starts) + int(np.count_nonzero(has_gap))
        run_at = np.arange(len(starts), dtype=i32) + np.cumsum(has_gap, dtype=i32)
        gap_at = run_at[has_gap] - 1
        counts = np.zeros(n, dtype=i32)
        symbols = np.zeros(n, dtype=symbol_type)
        counts[run_at], symbols[run_at] = ends - starts, states
        counts[gap_at], symbols[gap_at] = gaps[has_gap], dollar
        del starts, ends, states, keep, rows, gaps, has_gap, run_at, gap_at
    counts = np.append(counts, i32(0))
    symbols = np.append(symbols, symbol_type(bang))
    name_lengths = name_widths[symbols]
    # A count is written only when it is more than 1.
    digits = np.searchsorted(_DIGIT_STEPS, counts, side="right").astype(i32)
    lengths = digits + name_lengths
    ends = np.cumsum(lengths, dtype=i32)
    begins = ends - lengths
    # Greedy lines: a loop over lines (about 70 characters each), not over tokens; a
    # compact array, not a list of 6 M Python ints, for bisect to read.
    end_list = array.array("i", ends.tobytes())
    line_starts = [0]
    while True:
        first_token = line_starts[-1]
        line_end = end_list[first_token] - int(lengths[first_token]) + _LINE_WIDTH
        nxt = bisect.bisect_right(end_list, line_end, lo=first_token,
                                  hi=min(first_token + _LINE_WIDTH + 1, len(end_list)))
        if nxt >= len(end_list):
            break
        line_starts.append(nxt)
    new_line = np.zeros(len(ends), dtype=i32)
    new_line[line_starts[1:]] = 1
    at = begins + np.cumsum(new_line, dtype=i32)  # each token's offset, newlines counted
    out = np.empty(int(ends[-1]) + len(line_starts) - 1, dtype=np.uint8)
    out[at[new_line == 1] - 1] = ord("\n")
    for d in range(int(digits.max(initial=0))):  # the d-th digit from the right
        has = np.flatnonzero(digits > d)
        out[at[has] + digits[has] - 1 - d] = ord("0") + (counts[has] // 10 ** d) % 10
    name_at = at + digits
    del at, digits, counts
    out[name_at] = np.ascontiguousarray(table[:, 0])[symbols]
    for k in range(1, int(name_lengths.max())):  # the k-th letter of the longer names
        has = np.flatnonzero(name_lengths > k)
        out[name_at[has] + k] = np.ascontiguousarray(table[:, k])[symbols[has]]
    return out.tobytes().decode("ascii")
