"""Run Length Encoded patterns (the format of Golly and the LifeWiki).

Reading accepts ``#`` comment lines, the ``x = .., y = .., rule = ..`` header, run
counts, bodies spread over many lines and the closing ``!``. Two-state bodies use ``b``
(empty) and ``o`` (alive); multistate bodies use ``.`` (empty), ``A``..``X`` and
``pA``..``yX`` (states 1..255).

lifenet's cell codes map onto states directly: state 1 (``A``, or ``o``) is a neutral
live cell, state 2 (``B``) is player 1's, and so on. Writing uses two-state letters when
every live cell is neutral, so Golly opens the file as plain Life; otherwise
multistate letters, so each live cell keeps its owner.
"""

from __future__ import annotations

import array
import bisect
import re
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from shared.errors import PatternError, RuleError
from shared.grid import MAX_CELLS, Codes
from shared.rules import Rule, parse_rule

MAX_RLE_BYTES = 4 << 20
_HEADER = re.compile(r"^\s*x\s*=\s*(\d+)\s*,\s*y\s*=\s*(\d+)\s*(?:,\s*rule\s*=\s*(\S+)\s*)?$",
                     re.IGNORECASE)
_LINE_WIDTH = 70
# How many digits a run count is written with: none up to 1, one from 2, two from 10...
_DIGIT_STEPS = np.array([2] + [10 ** k for k in range(1, 10)], dtype=np.int64)


@dataclass
class Pattern:
    """A rectangle of cell codes read from RLE, with its header's rule if it had one."""

    codes: Codes
    rule: Rule | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.codes.shape[0])

    @property
    def width(self) -> int:
        return int(self.codes.shape[1])

    def oriented(self, rotate: int = 0, flip: bool = False) -> npt.NDArray[np.bool_]:
        """The live cells as a placement puts them: mirrored left-right first (``flip``),
        then turned clockwise by ``rotate`` quarter turns. The one definition of a
        pattern's orientation: the server places by it, the clients preview by it."""
        shape = self.codes != 0
        if flip:
            shape = np.fliplr(shape)
        turned: npt.NDArray[np.bool_] = np.rot90(shape, -rotate)
        return turned


def _state_letters(state: int) -> str:
    if state == 0:
        return "."
    if state <= 24:
        return chr(ord("A") + state - 1)
    prefix, rest = divmod(state - 25, 24)
    return chr(ord("p") + prefix) + chr(ord("A") + rest)


def parse_rle(text: str, max_side: int | None = None) -> Pattern:
    """Parse RLE text into a ``Pattern``; ``PatternError`` says what is wrong and where.

    ``max_side`` refuses a pattern whose header declares a side longer than that before
    anything is allocated for it (a 20-byte header can declare a 8000x8000 box)."""
    if len(text) > MAX_RLE_BYTES:
        raise PatternError(f"RLE text is larger than {MAX_RLE_BYTES} bytes")
    comments: list[str] = []
    header: re.Match[str] | None = None
    body_lines: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if header is None:
            if not stripped:
                continue
            if stripped.startswith("#"):
                comments.append(stripped)
                continue
            header = _HEADER.match(stripped)
            if header is None:
                raise PatternError(f"RLE line {number}: expected the header "
                                   f"'x = W, y = H[, rule = R]', found {stripped[:40]!r}")
            continue
        if stripped.startswith("#"):
            continue
        body_lines.append(stripped)
    if header is None:
        raise PatternError("RLE has no 'x = W, y = H' header")
    if max(len(header.group(1)), len(header.group(2))) > 9:
        raise PatternError("RLE header side has more than 9 digits")
    width, height = int(header.group(1)), int(header.group(2))
    if max_side is not None and max(width, height) > max_side:
        raise PatternError(f"RLE pattern {width}x{height} is larger than "
                           f"{max_side}x{max_side}")
    if width * height > MAX_CELLS:
        raise PatternError(f"RLE pattern {width}x{height} is larger than {MAX_CELLS} cells")
    rule = None
    if header.group(3):
        try:
            rule = parse_rule(header.group(3).split(":")[0])
        except RuleError as e:
            raise PatternError(f"RLE header rule: {e}") from e
    codes = np.zeros((height, width), dtype=np.uint8)
    _decode_body("".join(body_lines), codes)
    return Pattern(codes, rule, comments)


def _decode_body(body: str, codes: Codes) -> None:
    height, width = codes.shape
    y = x = 0
    count = ""
    i = 0
    ended = False
    while i < len(body):
        ch = body[i]
        i += 1
        if ch.isspace():
            continue
        if ch.isdigit():
            count += ch
            if len(count) > 9:
                raise PatternError(f"RLE run count {count}... is too long")
            continue
        if ch == "!":
            if count:
                raise PatternError(f"RLE run count {count} before '!' has no state")
            ended = True
            break
        run = int(count) if count else 1
        count = ""
        if ch == "$":
            y += run
            x = 0
            continue
        if ch in "b.":
            state = 0
        elif ch == "o":
            state = 1
        elif "A" <= ch <= "X":
            state = ord(ch) - ord("A") + 1
        elif "p" <= ch <= "y":
            if i >= len(body) or not "A" <= body[i] <= "X":
                raise PatternError(f"RLE state prefix {ch!r} is not followed by A..X")
            state = 25 + (ord(ch) - ord("p")) * 24 + ord(body[i]) - ord("A")
            i += 1
            if state > 255:
                raise PatternError(f"RLE state {state} is beyond 255")
        else:
            raise PatternError(f"RLE body has an unexpected character {ch!r}")
        if y >= height or x + run > width:
            raise PatternError(f"RLE body runs outside the {width}x{height} box "
                               f"(row {y}, column {x + run - 1})")
        if state:
            codes[y, x:x + run] = state
        x += run
    if count:
        raise PatternError("RLE body ends with a run count and no state")
    if not ended:
        raise PatternError("RLE body does not end with '!'")


def write_rle(codes: Codes, rule: Rule | None = None, comments: list[str] | None = None) -> str:
    """RLE text for a rectangle of cell codes (two-state when every live cell is neutral).

    Built with NumPy, token by token but never in a Python loop over cells or runs (a
    4096x4096 soup has about 6 M runs): runs and row ends become tokens (a count, then a
    letter or two), lines are filled greedily up to 70 characters without splitting a
    token, and the characters are written into one byte array.
    """
    height, width = codes.shape
    two_state = int(codes.max(initial=0)) <= 1
    header = f"x = {width}, y = {height}"
    if rule is not None:
        header += f", rule = {rule}"
    lines = [f"#C {c}" if not c.startswith("#") else c for c in comments or []]
    lines.append(header)
    return "\n".join(lines) + "\n" + _body(codes, two_state) + "\n"


def _letter_table(two_state: bool) -> tuple[Codes, Codes]:
    """Each state's first letter, and its second (0 where it has one letter)."""
    first = np.zeros(256, dtype=np.uint8)
    second = np.zeros(256, dtype=np.uint8)
    for state in range(256):
        text = ("o" if state else "b") if two_state else _state_letters(state)
        first[state] = ord(text[0])
        if len(text) > 1:
            second[state] = ord(text[1])
    return first, second


def _body(codes: Codes, two_state: bool) -> str:
    """The RLE body, ``!`` included, wrapped at ``_LINE_WIDTH``.

    Positions and counts are ``int32`` (a world has at most ``MAX_CELLS`` cells, and
    its text fewer than 2**31 characters), to keep the peak memory of a large world down.
    """
    width = codes.shape[1]
    i32 = np.int32
    counts = np.zeros(0, dtype=i32)
    first = np.zeros(0, dtype=np.uint8)
    second = np.zeros(0, dtype=np.uint8)
    if codes.size:
        # Runs: a run starts where the code changes or a row begins.
        flat = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1)
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
        letters, seconds = _letter_table(two_state)
        counts = np.zeros(n, dtype=i32)
        first = np.zeros(n, dtype=np.uint8)
        second = np.zeros(n, dtype=np.uint8)
        counts[run_at], first[run_at], second[run_at] = ends - starts, letters[states], \
            seconds[states]
        counts[gap_at], first[gap_at] = gaps[has_gap], ord("$")
        del starts, ends, states, keep, rows, gaps, has_gap, run_at, gap_at
    counts = np.append(counts, i32(0))
    first = np.append(first, np.uint8(ord("!")))
    second = np.append(second, np.uint8(0))
    # A count is written only when it is more than 1.
    digits = np.searchsorted(_DIGIT_STEPS, counts, side="right").astype(i32)
    lengths = digits + 1 + (second != 0)
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
    out[at + digits] = first
    two = second != 0
    out[at[two] + digits[two] + 1] = second[two]
    return out.tobytes().decode("ascii")
