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

import re
from dataclasses import dataclass, field

import numpy as np

from shared.errors import PatternError, RuleError
from shared.grid import MAX_CELLS, Codes
from shared.rules import Rule, parse_rule

MAX_RLE_BYTES = 4 << 20
_HEADER = re.compile(r"^\s*x\s*=\s*(\d+)\s*,\s*y\s*=\s*(\d+)\s*(?:,\s*rule\s*=\s*(\S+)\s*)?$",
                     re.IGNORECASE)
_LINE_WIDTH = 70


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


def _state_letters(state: int) -> str:
    if state == 0:
        return "."
    if state <= 24:
        return chr(ord("A") + state - 1)
    prefix, rest = divmod(state - 25, 24)
    return chr(ord("p") + prefix) + chr(ord("A") + rest)


def parse_rle(text: str) -> Pattern:
    """Parse RLE text into a ``Pattern``; ``PatternError`` says what is wrong and where."""
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
    width, height = int(header.group(1)), int(header.group(2))
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
    """RLE text for a rectangle of cell codes (two-state when every live cell is neutral)."""
    height, width = codes.shape
    two_state = int(codes.max(initial=0)) <= 1
    header = f"x = {width}, y = {height}"
    if rule is not None:
        header += f", rule = {rule}"
    lines = [f"#C {c}" if not c.startswith("#") else c for c in comments or []]
    lines.append(header)

    letters = ["o" if state else "b" for state in range(256)] if two_state \
        else [_state_letters(state) for state in range(256)]
    tokens: list[str] = []
    if codes.size:
        # Runs, found by NumPy: a run starts where the code changes or a row begins.
        flat = np.ascontiguousarray(codes).reshape(-1)
        change = np.ones(flat.size, dtype=np.bool_)
        change[1:] = flat[1:] != flat[:-1]
        change[::width] = True
        starts = np.flatnonzero(change)
        ends = np.append(starts[1:], flat.size)
        states = flat[starts]
        keep = (states != 0) | (ends % width != 0)  # a row's trailing empties: dropped
        starts, ends, states = starts[keep], ends[keep], states[keep]
        row = 0
        for start, length, state in zip((starts // width).tolist(),
                                        (ends - starts).tolist(), states.tolist(),
                                        strict=True):
            if start != row:
                gap = start - row
                tokens.append(f"{gap}$" if gap > 1 else "$")
                row = start
            tokens.append(f"{length}{letters[state]}" if length > 1 else letters[state])
    tokens.append("!")
    line = ""
    for token in tokens:
        if len(line) + len(token) > _LINE_WIDTH:
            lines.append(line)
            line = ""
        line += token
    lines.append(line)
    return "\n".join(lines) + "\n"
