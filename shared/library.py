"""The pattern library: the patterns shipped with lifenet (``shared/patterns/``) and the
player's own.

The clients offer these to place (the terminal client's ``[`` ``]``) and the bots pick
from them. ("Palette" in lifenet means the colours of ``shared.colours`` only.)

``library()`` is every shipped pattern; ``library(extra_dirs=[DIR, ...])`` adds every
pattern file of those directories, in any format ``shared.formats`` reads (RLE,
plaintext ``.cells``, Life 1.06). Each entry is ``name -> (RLE text, Pattern)``: a
placement sends RLE text on the wire, so a pattern read from another format is written
as RLE for it. A name is the file's stem (``glider`` for ``glider.rle``), prefixed by its
directory's name when a pattern already has it (``mine/glider``); ``Pattern.name`` is the
file's own name for it (its ``#N`` line, ``!Name:``) or else the stem: what a client
shows, and what ``search`` looks through too. Only patterns a server would take are
kept: at most ``MAX_LIBRARY_SIDE`` cells a side, ``MAX_PLACE_CELLS`` live cells and
``MAX_PLACE_RLE`` characters of RLE, and at least one live cell.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

from shared.errors import PatternError
from shared.formats import SUFFIXES, detect_format, pattern_rle, read_pattern
from shared.protocol import MAX_PLACE_CELLS, MAX_PLACE_RLE
from shared.rle import Pattern, write_rle

PATTERN_DIR = Path(__file__).resolve().parent / "patterns"
# The server's MAX_PATTERN_SIDE (server/players/placing.py; shared cannot import it, a
# test holds them equal): a larger pattern could not be placed.
MAX_LIBRARY_SIDE = 256

Entry = tuple[str, Pattern]


def library(extra_dirs: Iterable[str | Path] = (),
            problems: list[str] | None = None) -> dict[str, Entry]:
    """Every shipped pattern, and those of ``extra_dirs``: name -> (RLE text, parsed
    pattern), fewest live cells first.

    A file that cannot be read or placed raises ``PatternError`` (one line naming it, and
    the line and column of a malformed one), unless ``problems`` is a list: then it is
    left out and its line appended there, so that a client can show them and go on."""
    directories = [Path(d) for d in extra_dirs]
    if not directories:
        return _shipped()
    found = dict(_shipped())
    for directory in directories:
        _read_directory(directory, found, problems)
    return _by_size(found)


def search(fragment: str, patterns: Mapping[str, Entry] | None = None) -> list[str]:
    """The names of the patterns whose name or ``Pattern.name`` holds ``fragment``: those
    where one of them starts with it first, then the others, each in the library's order.
    Case-insensitive, and a space, ``-`` or ``_`` matches any of them (``gosper gun``
    finds ``gosper-gun``). ``patterns`` defaults to ``library()``."""
    needle = _folded(fragment)
    entries = library() if patterns is None else patterns
    found = []
    for name, (_text, pattern) in entries.items():
        names = (_folded(name), _folded(pattern.name or ""))
        if any(needle in n for n in names):
            found.append((not any(n.startswith(needle) for n in names), name))
    return [name for _later, name in sorted(found, key=lambda f: f[0])]


@cache
def _shipped() -> dict[str, Entry]:
    found: dict[str, Entry] = {}
    _read_directory(PATTERN_DIR, found, None)
    return _by_size(found)


def _by_size(found: dict[str, Entry]) -> dict[str, Entry]:
    return dict(sorted(found.items(), key=lambda kv: kv[1][1].population))


def _folded(text: str) -> str:
    return " ".join(text.casefold().replace("-", " ").replace("_", " ").split())


def _read_directory(directory: Path, found: dict[str, Entry],
                    problems: list[str] | None) -> None:
    """Add every pattern file of ``directory`` to ``found``."""
    try:
        paths = sorted(p for p in directory.iterdir()
                       if p.suffix.lower() in SUFFIXES and p.is_file())
    except OSError as e:
        _problem(f"cannot read the pattern directory {directory}: {e.strerror or e}",
                 problems)
        return
    for path in paths:
        try:
            text, pattern = _entry(path)
        except PatternError as e:
            _problem(str(e), problems)
            continue
        name = path.stem
        for candidate in (path.stem, f"{directory.name}/{path.stem}",
                          f"{directory.name}/{path.name}"):
            if candidate not in found:
                name = candidate
                break
        else:
            _problem(f"{path}: another pattern has its name", problems)
            continue
        found[name] = (text, pattern)


def _problem(line: str, problems: list[str] | None) -> None:
    if problems is None:
        raise PatternError(line)
    problems.append(line)


def _entry(path: Path) -> Entry:
    """A pattern file as a library entry, or ``PatternError`` if it cannot be placed."""
    pattern = read_pattern(path, max_side=MAX_LIBRARY_SIDE)
    if pattern.name is None:
        pattern.name = path.stem
    live = pattern.population
    if live == 0:
        raise PatternError(f"{path.name}: the pattern has no live cell")
    if live > MAX_PLACE_CELLS:
        raise PatternError(f"{path.name}: {live} live cells, more than a placement holds "
                           f"({MAX_PLACE_CELLS})")
    text = ""
    try:
        with open(path, "rb") as stream:
            if detect_format(stream.read(4096), path.name) == "rle":
                stream.seek(0)
                text = stream.read(MAX_PLACE_RLE + 1).decode("utf-8", "replace")
    except OSError as e:
        raise PatternError(f"cannot read pattern {path}: {e.strerror or e}") from e
    if not text or len(text) > MAX_PLACE_RLE:
        text = pattern_rle(pattern)
    if len(text) > MAX_PLACE_RLE:
        text = write_rle(pattern.codes, pattern.rule, [f"#N {pattern.name}"])
    if len(text) > MAX_PLACE_RLE:
        raise PatternError(f"{path.name}: its RLE is longer than a placement carries "
                           f"({MAX_PLACE_RLE} characters)")
    return text, pattern
