"""The book's approaches (serial, thread per cell, Queue pipeline, pool, asyncio) equal
the reference, owners included, and each overlaps as much I/O as it promises."""

from __future__ import annotations

import time

import numpy as np
import pytest

from server.tools import book
from shared.errors import SimulationError
from shared.grid import Grid
from shared.life import simulate
from shared.rules import parse_rule


def random_grid(height: int, width: int, seed: int) -> Grid:
    rng = np.random.default_rng(seed)
    return Grid.from_codes(rng.choice([0, 1, 2, 3, 4], size=(height, width),
                                      p=[.5, .2, .1, .1, .1]))


@pytest.mark.parametrize("name", sorted(book.APPROACHES))
@pytest.mark.parametrize("rule", ["B3/S23", "B36/S23", "B2/S"])
def test_equals_reference(name: str, rule: str) -> None:
    parsed = parse_rule(rule)
    approach = book.APPROACHES[name](parsed, 0.0)
    try:
        for seed, (h, w) in enumerate([(1, 1), (2, 3), (5, 9), (7, 6)]):
            grid = expected = random_grid(h, w, seed)
            for _ in range(3):
                expected = simulate(expected, parsed)
                grid = approach.step(grid)
                assert grid == expected, f"{name} {rule} {h}x{w}"
    finally:
        approach.close()


@pytest.mark.parametrize(("name", "kwargs", "rounds"), [
    ("serial", {}, 45), ("queue", {"threads": 5}, 9), ("threads", {}, 1), ("pool", {}, 1),
    ("asyncio", {}, 1)])
def test_waits_overlap_as_promised(name: str, kwargs: dict[str, int], rounds: int) -> None:
    """45 cells with 5 ms of I/O each: serial takes 45 waits, a 5-thread queue 9, the
    others about one; none takes less than it must."""
    latency = 0.005
    approach = book.APPROACHES[name](parse_rule("B3/S23"), latency, **kwargs)
    grid = random_grid(5, 9, 1)
    try:
        began = time.perf_counter()
        assert approach.step(grid) == simulate(grid)
        elapsed = time.perf_counter() - began
    finally:
        approach.close()
    assert elapsed >= rounds * latency
    if rounds == 1:
        assert elapsed < 20 * latency


def test_a_failing_cell_is_a_simulation_error() -> None:
    def broken() -> None:
        raise OSError("the socket went away")

    for name in ("threads", "queue", "pool", "serial"):
        approach = book.APPROACHES[name](parse_rule("B3/S23"), 0.0)
        approach.io = broken  # type: ignore[attr-defined]
        try:
            with pytest.raises((SimulationError, OSError)):
                approach.step(random_grid(2, 2, 0))
        finally:
            approach.close()
