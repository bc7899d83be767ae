"""The first generation of a world, and a world written out as RLE.

A ``--pattern`` file is read in any format ``shared.formats`` reads (RLE, plaintext,
Life 1.06), streaming. Without ``--size`` the world fits the pattern (``world_size``):
the file's ``:T`` torus, a world lifenet wrote at its own size, else the pattern with
room around it. Without ``--rule`` the file's rule runs; a file whose rule differs from
an explicit ``--rule`` is said in one warning, and ``--rule`` wins.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from server.config import ServerConfig
from shared.errors import ConfigError, PatternError
from shared.files import write_atomically
from shared.formats import Extent, pattern_extent, read_pattern
from shared.grid import MAX_CELLS, Grid, check_size
from shared.rle import Pattern, write_rle
from shared.rules import CONWAY, Rule

log = logging.getLogger(__name__)

DEFAULT_SIZE = (64, 64)
MARGIN = 32     # cells of room on every side of a pattern the world is sized for
MIN_SIDE = 64   # ... and the smallest side such a world has
OWN_WORLD = "lifenet world, generation"  # what write_world says in a comment line
SOUP_BLOCK = 1 << 18  # cells of a random soup drawn at once


def world_size(extent: Extent) -> tuple[int, int]:
    """The ``(height, width)`` of the world a pattern gets when ``--size`` is not given:
    the file's ``:T`` torus; a whole world lifenet wrote (``write_world``'s comment) at
    its own size, so that it goes on as it was; else the pattern with ``MARGIN`` cells on
    every side, rounded up to a multiple of 16, at least ``MIN_SIDE`` (only the pattern's
    own box when that would be more cells than a world holds)."""
    if extent.torus is not None:
        size = extent.torus
    elif is_own_world(extent.comments):
        size = (extent.height, extent.width)
    else:
        size = (_roomy(extent.height), _roomy(extent.width))
        if size[0] * size[1] > MAX_CELLS:
            size = (max(1, extent.height), max(1, extent.width))
    try:
        check_size(*size)
    except ConfigError as e:
        raise ConfigError(f"no world fits the pattern: {e}") from e
    return size


def pattern_world_size(path: Path) -> tuple[int, int]:
    """``world_size`` of the pattern file at ``path`` (an RLE's header is enough)."""
    return world_size(pattern_extent(path))


def is_own_world(comments: tuple[str, ...] | list[str]) -> bool:
    """Whether a pattern's comments say it is a whole world ``write_world`` wrote."""
    return any(OWN_WORLD in c for c in comments)


def _roomy(side: int) -> int:
    return max(MIN_SIDE, -(-(side + 2 * MARGIN) // 16) * 16)


def build_world(config: ServerConfig, warn: bool = True) -> tuple[Grid, Rule]:
    """The first generation: a random soup and/or a pattern, and the rule to run.

    A pattern file's rule that differs from ``config.rule`` (an explicit ``--rule``) is
    said in one warning unless ``warn`` is false (a check before the real start)."""
    height, width = config.size
    grid = Grid(height, width)
    rule = config.rule
    fill = config.fill
    if fill is None:
        fill = 0.0 if config.pattern else 0.25
    if not 0.0 <= fill <= 1.0:
        raise ConfigError(f"--fill {fill} is not between 0 and 1")
    if fill > 0:
        rng = np.random.default_rng(config.seed)
        # Row by row blocks of the one stream (the same soup as one call), so that the
        # doubles never take 8 bytes a cell of the whole world at once.
        flat = grid.codes.reshape(-1)
        for start in range(0, flat.size, SOUP_BLOCK):
            end = min(flat.size, start + SOUP_BLOCK)
            flat[start:end] = rng.random(end - start) < fill
    if config.pattern is not None:
        pattern = read_pattern(config.pattern)
        _place(grid, pattern, config)
        if pattern.rule is not None:
            if rule is None:
                rule = pattern.rule
            elif rule != pattern.rule and warn:
                log.warning("%s says rule %s; --rule %s wins", config.pattern.name,
                            pattern.rule, rule)
    return grid, rule or CONWAY


def _place(grid: Grid, pattern: Pattern, config: ServerConfig) -> None:
    """Put ``pattern`` into ``grid``: its top-left corner at ``--at``; else where its file
    put it on a torus of this size (Golly's ``#CXRLE Pos`` on a ``:T`` grid, whose
    top-left cell is ``(-(h // 2), -(w // 2))``); else centred. It wraps on the torus.
    A pattern with codes above 255 (cells of players above 254) makes the grid wide."""
    assert config.pattern is not None
    height, width = grid.height, grid.width
    if pattern.height > height or pattern.width > width:
        raise PatternError(f"pattern {config.pattern.name} is {pattern.height}x"
                           f"{pattern.width}, larger than the world {height}x{width}")
    if config.at is not None:
        top, left = config.at
        if not (0 <= top < height and 0 <= left < width):
            raise ConfigError(f"--at {top},{left} is outside the world {height}x{width}")
    elif pattern.torus == (height, width) and pattern.origin is not None:
        top = (pattern.origin[0] + height // 2) % height
        left = (pattern.origin[1] + width // 2) % width
    else:
        top, left = (height - pattern.height) // 2, (width - pattern.width) // 2
    grid.fit(int(pattern.codes.max(initial=0)))  # a pattern with codes above 255 widens it
    if top + pattern.height <= height and left + pattern.width <= width:
        grid.codes[top:top + pattern.height, left:left + pattern.width] = pattern.codes
        return
    ys = (np.arange(pattern.height) + top) % height
    xs = (np.arange(pattern.width) + left) % width
    grid.codes[np.ix_(ys, xs)] = pattern.codes


def write_world(path: Path, grid: Grid, rule: Rule, generation: int) -> None:
    """Write the whole world as RLE through a temporary file, so no half file is left.
    A wide world's codes above 255 are written as ``z`` names (``shared.rle``), which
    ``--pattern`` reads back."""
    text = write_rle(grid.codes, rule, [f"{OWN_WORLD} {generation}"])
    try:
        write_atomically(path, text)
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from e
