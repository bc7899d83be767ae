"""The first generation of a world, and a world written out as RLE."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from server.config import ServerConfig
from shared.errors import ConfigError, PatternError
from shared.files import write_atomically
from shared.grid import Grid
from shared.rle import parse_rle, write_rle
from shared.rules import CONWAY, Rule


def build_world(config: ServerConfig) -> tuple[Grid, Rule]:
    """The first generation: a random soup and/or a pattern, and the rule to run."""
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
        grid.codes[:] = rng.random((height, width)) < fill
    if config.pattern is not None:
        try:
            text = config.pattern.read_text()
        except OSError as e:
            raise PatternError(f"cannot read pattern {config.pattern}: {e.strerror}") from e
        pattern = parse_rle(text)
        if pattern.height > height or pattern.width > width:
            raise PatternError(f"pattern {config.pattern.name} is {pattern.height}x"
                               f"{pattern.width}, larger than the world {height}x{width}")
        if config.at is None:
            top, left = (height - pattern.height) // 2, (width - pattern.width) // 2
        else:
            top, left = config.at
            if not (0 <= top < height and 0 <= left < width):
                raise ConfigError(f"--at {top},{left} is outside the world {height}x{width}")
        ys = (np.arange(pattern.height) + top) % height
        xs = (np.arange(pattern.width) + left) % width
        grid.codes[np.ix_(ys, xs)] = pattern.codes
        if rule is None:
            rule = pattern.rule
    return grid, rule or CONWAY


def write_world(path: Path, grid: Grid, rule: Rule, generation: int) -> None:
    """Write the whole world as RLE through a temporary file, so no half file is left."""
    text = write_rle(grid.codes, rule, [f"lifenet world, generation {generation}"])
    try:
        write_atomically(path, text)
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from e
