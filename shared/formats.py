"""Pattern files: RLE, plaintext (``.cells``) and Life 1.06, told apart by what they hold.

``read_pattern(path)`` opens a file, looks at its first lines to tell the format (a
``#Life 1.06`` header, ``!`` comment lines or rows of ``.`` and ``O``, an ``x = W, y = H``
header after ``#`` lines) and only then, when the content says nothing, at the file's
extension (``.rle``, ``.cells``, ``.lif``/``.life``). Every reader streams, line by line
or block by block, and refuses a malformed file in one line naming the file, the line and
the column::

    glider.cells:3:5: unexpected character '#'

- **Plaintext** (the LifeWiki's ``.cells``): ``!`` lines are comments (``!Name: X`` is
  the name, ``!Author: Y`` the author), then one row a line, ``.`` empty and ``O``
  alive (``o`` and ``*`` are taken too); rows of unequal length are padded with empty
  cells, trailing empty rows dropped.
- **Life 1.06**: a ``#Life 1.06`` line, then one ``x y`` pair a line (``#`` lines are
  comments, ``#N`` the name). Coordinates may be negative: the pattern is the bounding
  box of its cells, its top-left cell's coordinates kept as ``Pattern.origin``.
- **RLE**: ``shared.rle``.

A pattern read from any of them can be written as RLE (``pattern_rle``): placements
send RLE text on the wire.
"""

from __future__ import annotations

import array
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from shared.errors import PatternError
from shared.grid import MAX_CELLS
from shared.rle import (
    LINE_LIMIT,
    MAX_COMMENTS,
    Pattern,
    located,
    read_rle,
    read_rle_header,
    write_rle,
)
from shared.rules import Rule

FORMATS = {"rle": "RLE", "cells": "plaintext", "life106": "Life 1.06"}
SUFFIXES = {".rle": "rle", ".cells": "cells", ".lif": "life106", ".life": "life106"}
PEEK = 1 << 16  # bytes looked at to tell the format
_RLE_HEADER = re.compile(r"^x\s*=", re.IGNORECASE)
_LIVE = b"Oo*"
_CELLS_CHARACTERS = b"." + _LIVE
_INTEGER = re.compile(r"^[-+]?\d{1,18}$")
_TOKEN = re.compile(r"\S+")


def detect_format(head: bytes, name: str = "") -> str:
    """``rle``, ``cells`` or ``life106``: from the first lines of a file (``head``), else
    from the extension of its ``name``; ``PatternError`` when neither tells."""
    text = head.decode("utf-8", "replace").lstrip("\ufeff")
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#Life 1.06"):
            return "life106"
        if stripped.startswith("#Life 1.05"):
            raise PatternError(f"{name or 'pattern'}: Life 1.05 is not supported (RLE, "
                               "plaintext .cells and Life 1.06 are)")
        if stripped.startswith("!"):
            return "cells"
        if stripped.startswith("#"):
            continue
        if _RLE_HEADER.match(stripped):
            return "rle"
        if not stripped.encode().translate(None, _CELLS_CHARACTERS):
            return "cells"
        break
    kind = SUFFIXES.get(Path(name).suffix.lower())
    if kind is None:
        raise PatternError(f"{name or 'pattern'}: cannot tell its format: neither RLE "
                           "(an 'x = W, y = H' header), plaintext ('.' and 'O' rows) nor "
                           "Life 1.06 (a '#Life 1.06' header), nor a .rle, .cells or .lif "
                           "name")
    return kind


def read_pattern(path: Path, max_side: int | None = None) -> Pattern:
    """The pattern in a file of any supported format, read streaming; errors name the
    file (``PatternError``), ``max_side`` bounds its sides."""
    try:
        with open(path, "rb") as stream:
            kind = detect_format(stream.read(PEEK), path.name)
            stream.seek(0)
            return READERS[kind](stream, path.name, max_side)
    except OSError as e:
        raise PatternError(f"cannot read pattern {path}: {e.strerror or e}") from e


def parse_pattern(text: str, name: str = "", max_side: int | None = None) -> Pattern:
    """The pattern in a text of any supported format (``name``'s extension decides when
    the text does not, and names it in errors)."""
    data = text.encode("utf-8")
    kind = detect_format(data[:PEEK], name)
    return READERS[kind](io.BytesIO(data), name or None, max_side)


@dataclass(frozen=True)
class Extent:
    """A pattern file's size and what it says of its world, read cheaply (an RLE's
    header only)."""

    height: int
    width: int
    rule: Rule | None
    torus: tuple[int, int] | None
    comments: tuple[str, ...]


def pattern_extent(path: Path) -> Extent:
    """The size, rule, torus and comments of the pattern in ``path``: for RLE from its
    header alone; the other formats have no header, and are read whole."""
    try:
        with open(path, "rb") as stream:
            kind = detect_format(stream.read(PEEK), path.name)
            stream.seek(0)
            if kind == "rle":
                header = read_rle_header(stream, path.name)
                return Extent(header.height, header.width, header.rule, header.torus,
                              tuple(header.comments))
            pattern = READERS[kind](stream, path.name, None)
    except OSError as e:
        raise PatternError(f"cannot read pattern {path}: {e.strerror or e}") from e
    return Extent(pattern.height, pattern.width, pattern.rule, pattern.torus,
                  tuple(pattern.comments))


def pattern_rle(pattern: Pattern) -> str:
    """RLE text for a pattern read from any format, its name and comments kept."""
    comments = list(pattern.comments)
    if pattern.name and not any(c.startswith("#N") for c in comments):
        comments.insert(0, f"#N {pattern.name}")
    return write_rle(pattern.codes, pattern.rule, comments)


def _limit(max_side: int | None) -> int:
    return MAX_CELLS if max_side is None else min(max_side, MAX_CELLS)


def _too_large(height: int, width: int, max_side: int | None) -> str | None:
    """Why a pattern of this size is refused, or None."""
    if max_side is not None and max(height, width) > max_side:
        return f"the pattern is larger than {max_side}x{max_side}"
    if height * width > MAX_CELLS:
        return (f"the pattern spreads over {width}x{height}, more than {MAX_CELLS} cells, "
                "the largest world lifenet holds")
    return None


def read_cells(stream: BinaryIO, source: str | None = None,
               max_side: int | None = None) -> Pattern:
    """Read a plaintext (``.cells``) pattern, line by line."""
    rows: list[bytes] = []
    comments: list[str] = []
    name = None
    width = 0
    longest = _limit(max_side)
    number = 0
    while True:
        raw = stream.readline(longest + 3)
        if not raw:
            break
        number += 1
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if raw.startswith(b"!"):
            if not raw.endswith(b"\n"):
                _skip(stream)
            text = raw[1:].decode("utf-8", "replace").strip()
            if text.lower().startswith("name:") and name is None:
                name = text[5:].strip() or None
                line = f"#N {name}" if name else "#N"
            elif text.lower().startswith("author:"):
                line = f"#O {text[7:].strip()}"
            else:
                line = f"#C {text}" if text else "#C"
            if len(comments) < MAX_COMMENTS:
                comments.append(line[:LINE_LIMIT])
            continue
        row = raw.rstrip()
        if len(row) > longest:
            raise located(source, number, longest + 1, _too_large(1, len(row), max_side)
                          or f"a row is longer than {longest} cells")
        stray = row.translate(None, _CELLS_CHARACTERS)
        if stray:
            column = next(i for i, byte in enumerate(row) if byte not in _CELLS_CHARACTERS)
            raise located(source, number, column + 1,
                          f"unexpected character {chr(row[column])!r}")
        rows.append(row)
        width = max(width, len(row))
        why = _too_large(len(rows), width, max_side)
        if why:
            raise located(source, number, 1, why)
    while rows and not rows[-1]:
        rows.pop()
    codes = np.zeros((len(rows), width), dtype=np.uint8)
    for y, row in enumerate(rows):
        if row:
            codes[y, :len(row)] = np.frombuffer(row, dtype=np.uint8) != ord(".")
    return Pattern(codes, None, comments, name)


def read_life106(stream: BinaryIO, source: str | None = None,
                 max_side: int | None = None) -> Pattern:
    """Read a Life 1.06 pattern, line by line; its cells' bounding box is the pattern,
    the box's top-left cell's ``(y, x)`` its ``origin``."""
    comments: list[str] = []
    name = None
    xs, ys = array.array("i"), array.array("i")
    x0 = y0 = 0
    left = right = top = bottom = 0
    number = 0
    while True:
        raw = stream.readline(LINE_LIMIT)
        if not raw:
            break
        number += 1
        if not raw.endswith(b"\n") and len(raw) == LINE_LIMIT:
            raise located(source, number, LINE_LIMIT, "the line is too long")
        line = raw.decode("utf-8", "replace")
        if number == 1:
            line = line.lstrip("\ufeff")
            if not line.strip().startswith("#Life 1.06"):
                raise located(source, 1, 1, "expected the header '#Life 1.06'")
            continue
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            if text[:2] == "#N" and name is None:
                name = text[2:].strip() or None
            if len(comments) < MAX_COMMENTS:
                comments.append(text)
            continue
        x, y = _pair(line, source, number)
        if not xs:
            x0, y0 = x, y
            left = right = x
            top = bottom = y
        elif not (left <= x <= right and top <= y <= bottom):
            left, right = min(left, x), max(right, x)
            top, bottom = min(top, y), max(bottom, y)
            why = _too_large(bottom - top + 1, right - left + 1, max_side)
            if why:
                raise located(source, number, 1, why)
        if len(xs) >= MAX_CELLS:
            raise located(source, number, 1, f"more than {MAX_CELLS} cells, the most a "
                          "world lifenet holds")
        xs.append(x - x0)
        ys.append(y - y0)
    if not xs:
        return Pattern(np.zeros((0, 0), dtype=np.uint8), None, comments, name)
    codes = np.zeros((bottom - top + 1, right - left + 1), dtype=np.uint8)
    codes[np.frombuffer(ys, dtype=np.int32) + (y0 - top),
          np.frombuffer(xs, dtype=np.int32) + (x0 - left)] = 1
    return Pattern(codes, None, comments, name, origin=(top, left))


def _pair(line: str, source: str | None, number: int) -> tuple[int, int]:
    """The ``x y`` of a Life 1.06 line, or the error at its first wrong character."""
    tokens = list(_TOKEN.finditer(line))
    if len(tokens) == 2 and all(_INTEGER.match(t.group()) for t in tokens):
        return int(tokens[0].group()), int(tokens[1].group())
    for token in tokens[:2]:
        value = token.group()
        if _INTEGER.match(value):
            continue
        for offset, ch in enumerate(value):
            if not (ch.isdigit() or (offset == 0 and ch in "+-")):
                raise located(source, number, token.start() + offset + 1,
                              f"unexpected character {ch!r}")
        raise located(source, number, token.start() + 1,
                      f"{value!r} is not a coordinate lifenet can hold")
    if len(tokens) > 2:
        raise located(source, number, tokens[2].start() + 1,
                      "expected two integers 'x y', found more")
    raise located(source, number, len(line.rstrip()) + 1, "expected two integers 'x y'")


def _skip(stream: BinaryIO) -> None:
    while True:
        piece = stream.readline(LINE_LIMIT)
        if not piece or piece.endswith(b"\n"):
            return


READERS = {"rle": read_rle, "cells": read_cells, "life106": read_life106}
