"""The pattern library: every shipped pattern verified by simulation, not just parsed;
the player's own directories; search.

Each shipped pattern is run on an empty torus big enough for what is checked, by the
reference ``shared.life.simulate`` where that takes a second or two, else by the kernel
(``shared.kernel.step_grid``, held equal to the reference on every shipped pattern below
and on random worlds in ``test_kernel.py``). Only facts known of each pattern are
asserted: still lifes stay, oscillators come back after their period and not before,
spaceships come back displaced by their speed, guns add their gliders every period,
methuselahs stabilise (or die) at their known generation, long-lived ones are still
active, and the infinite-growth patterns grow by a block-laying switch engine's step
every 288 generations.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from server.players.placing import MAX_PATTERN_SIDE
from shared.errors import PatternError
from shared.grid import Grid
from shared.kernel import step_grid
from shared.library import MAX_LIBRARY_SIDE, PATTERN_DIR, library, search
from shared.life import simulate
from shared.protocol import MAX_PLACE_CELLS, MAX_PLACE_RLE
from shared.rle import Pattern, parse_rle
from shared.rules import CONWAY

REFERENCE_BUDGET = 1_500_000  # cell-generations run by the reference simulate, at most

STILL_LIFES = ["block", "beehive", "loaf", "boat", "tub", "ship", "pond", "eater-1"]
OSCILLATORS = {"blinker": 2, "toad": 2, "beacon": 2, "clock": 2, "pulsar": 3, "cross": 3,
               "clock-2": 4, "figure-eight": 8, "koks-galaxy": 8, "tumbler": 14,
               "pentadecathlon": 15, "achims-p16": 16, "queen-bee-shuttle": 30}
# name: (period, cells moved in a period, diagonal)
SPACESHIPS = {"glider": (4, 1, True), "lwss": (4, 2, False), "mwss": (4, 2, False),
              "hwss": (4, 2, False), "copperhead": (10, 1, False), "loafer": (7, 1, False),
              "dart": (3, 1, False), "crab": (4, 1, True), "coe-ship": (16, 8, False)}
# name: (period, gliders a period, torus side, periods run)
GUNS = {"gosper-gun": (30, 1, 64, 3), "bi-gun": (46, 2, 64, 3), "simkin-gun": (120, 1, 128, 2)}
# name: (the generation its population last changes, its population then, torus side)
METHUSELAHS = {"diehard": (130, 0, 24), "b-heptomino": (148, 28, 96),
               "pi-heptomino": (173, 55, 64), "r-pentomino": (1103, 116, 768),
               "acorn": (5206, 633, 3072)}
LONG_CHECKS = {"acorn"}  # minutes on two cores: run with LIFENET_LONG_CHECKS=1
# Lifespans of thousands of generations: still active at generation 1000.
LONG_LIVED = {"rabbits": 17331, "bunnies": 17332, "lidka": 29055, "switch-engine": 3911,
              "acorn": 5206}
# name: the generation from which it grows by a constant every 288 (on a 512x512 torus)
GROWING = {"infinite-growth-10": 600, "infinite-growth-5x5": 700,
           "infinite-growth-1-row": 1500}


def shipped(name: str) -> Pattern:
    return library()[name][1]


def on_torus(pattern: Pattern, height: int, width: int) -> Grid:
    grid = Grid(height, width)
    top, left = (height - pattern.height) // 2, (width - pattern.width) // 2
    grid.codes[top:top + pattern.height, left:left + pattern.width] = pattern.codes
    return grid


def run(grid: Grid, generations: int, pattern: Pattern) -> Iterator[Grid]:
    """Every generation from 0 to ``generations``: by the reference ``simulate`` within
    ``REFERENCE_BUDGET``, else by the kernel."""
    rule = pattern.rule or CONWAY
    reference = grid.height * grid.width * generations <= REFERENCE_BUDGET
    yield grid
    for _ in range(generations):
        grid = simulate(grid, rule) if reference else step_grid(grid, rule)
        yield grid


def evolve(grid: Grid, generations: int, pattern: Pattern) -> list[Grid]:
    """Every generation kept (small worlds only)."""
    return list(run(grid, generations, pattern))


def populations(grid: Grid, generations: int, pattern: Pattern) -> list[int]:
    """The population of every generation, the worlds not kept."""
    return [g.population for g in run(grid, generations, pattern)]


def test_every_shipped_pattern_is_verified_by_one_check() -> None:
    checked = (set(STILL_LIFES) | set(OSCILLATORS) | set(SPACESHIPS) | set(GUNS)
               | set(METHUSELAHS) | set(LONG_LIVED) | set(GROWING))
    assert set(library()) == checked
    assert len(library()) >= 40


def test_every_shipped_pattern_has_a_name_a_source_and_can_be_placed() -> None:
    assert MAX_LIBRARY_SIDE == MAX_PATTERN_SIDE
    for name, (text, pattern) in library().items():
        assert pattern.name and pattern.name != name, name  # its #N (or !Name:) line
        assert any(c.startswith("#C https://conwaylife.com/wiki/") for c in pattern.comments)
        assert max(pattern.height, pattern.width) <= MAX_PATTERN_SIDE
        assert 0 < pattern.population <= MAX_PLACE_CELLS
        assert len(text) <= MAX_PLACE_RLE
        assert np.array_equal(parse_rle(text).codes, pattern.codes), name  # what is sent
    assert {p.suffix for p in PATTERN_DIR.iterdir()} == {".rle", ".cells", ".lif"}


def test_the_kernel_is_the_reference_on_every_shipped_pattern() -> None:
    for name, (_text, pattern) in library().items():
        grid = on_torus(pattern, pattern.height + 8, pattern.width + 8)
        rule = pattern.rule or CONWAY
        for _ in range(6):
            nxt = simulate(grid, rule)
            assert np.array_equal(step_grid(grid, rule).codes, nxt.codes), name
            grid = nxt


@pytest.mark.parametrize("name", STILL_LIFES)
def test_still_lifes_stay(name: str) -> None:
    pattern = shipped(name)
    grid = on_torus(pattern, pattern.height + 4, pattern.width + 4)
    assert simulate(grid) == grid


def test_eater_1_eats_a_glider_in_4_generations() -> None:
    eater = shipped("eater-1")  # a glider coming at it, as on the LifeWiki's page
    glider = parse_rle("x = 3, y = 3\n2bo$obo$b2o!")
    world = Grid(16, 16)
    world.codes[7:11, 8:12] = eater.codes
    alone = world.copy()
    world.codes[4:7, 4:7] = glider.codes
    generations = evolve(world, 12, eater)
    assert generations[3] != alone
    assert all(g == alone for g in generations[4:])


@pytest.mark.parametrize("name, period", OSCILLATORS.items())
def test_oscillators_come_back_after_their_period_and_not_before(name: str,
                                                                 period: int) -> None:
    pattern = shipped(name)
    grid = on_torus(pattern, pattern.height + 16, pattern.width + 16)
    generations = evolve(grid, period, pattern)
    assert generations[period] == grid
    assert all(generations[t] != grid for t in range(1, period))


@pytest.mark.parametrize("name, speed", SPACESHIPS.items())
def test_spaceships_come_back_displaced_by_their_speed(name: str,
                                                       speed: tuple[int, int, bool]) -> None:
    period, cells, diagonal = speed
    pattern = shipped(name)
    grid = on_torus(pattern, pattern.height + 2 * cells + 6, pattern.width + 2 * cells + 6)
    after = evolve(grid, period, pattern)[period]
    moves = ([(cells * dy, cells * dx) for dy in (-1, 1) for dx in (-1, 1)] if diagonal
             else [(0, cells), (0, -cells), (cells, 0), (-cells, 0)])
    assert any(np.array_equal(after.codes, np.roll(grid.codes, move, axis=(0, 1)))
               for move in moves), name
    assert after != grid


@pytest.mark.parametrize("name, gun", GUNS.items())
def test_guns_add_their_gliders_every_period(name: str, gun: tuple[int, int, int, int]) -> None:
    period, gliders, side, periods = gun
    pattern = shipped(name)
    counts = populations(on_torus(pattern, side, side), period * periods, pattern)
    assert counts[::period] == [pattern.population + 5 * gliders * k
                                for k in range(periods + 1)]


@pytest.mark.timeout(900)  # acorn's 5306 generations of a 3072x3072 torus, when asked
@pytest.mark.parametrize("name, known", METHUSELAHS.items())
def test_methuselahs_stabilise_at_their_known_generation(name: str,
                                                         known: tuple[int, int, int]) -> None:
    if name in LONG_CHECKS and not os.environ.get("LIFENET_LONG_CHECKS"):
        pytest.skip("minutes on two cores: LIFENET_LONG_CHECKS=1 runs it")
    last, population, side = known
    pattern = shipped(name)
    counts = populations(on_torus(pattern, side, side), last + 100, pattern)
    assert counts[last] == population and counts[last - 1] != population
    assert len(set(counts[last:])) == 1  # and no change for a hundred generations


@pytest.mark.parametrize("name, lifespan", LONG_LIVED.items())
def test_long_lived_methuselahs_are_still_active_at_1000(name: str, lifespan: int) -> None:
    assert lifespan > 1000
    pattern = shipped(name)
    counts = populations(on_torus(pattern, 512, 512), 1000, pattern)
    assert len(set(counts[950:])) > 1


@pytest.mark.parametrize("name, steady", GROWING.items())
def test_infinite_growth_grows_by_a_constant_every_288_generations(name: str,
                                                                   steady: int) -> None:
    pattern = shipped(name)
    counts = populations(on_torus(pattern, 512, 512), steady + 3 * 288, pattern)
    steps = {counts[steady + 288 * k] - counts[steady + 288 * (k - 1)] for k in (1, 2, 3)}
    assert len(steps) == 1 and steps.pop() > 0


def test_formats_other_than_rle_are_sent_as_rle() -> None:
    text, pattern = library()["pentadecathlon"]  # shipped as plaintext
    assert text.startswith("#N Pentadecathlon\n") and "x = 10, y = 3" in text
    text, pattern = library()["tumbler"]  # shipped as Life 1.06
    assert parse_rle(text).codes.tolist() == pattern.codes.tolist()
    assert pattern.origin == (-2, -4)


def test_a_directory_of_ones_own_patterns(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "spark.cells").write_text("!Name: My spark\n.O.\nOOO\n")
    (mine / "dots.lif").write_text("#Life 1.06\n-1 -1\n1 1\n")
    (mine / "glider.rle").write_text("#N Another glider\nx = 3, y = 3, rule = S23/B3\n"
                                     "2bo$obo$b2o!\n")
    (mine / "notes.txt").write_text("not a pattern")
    patterns = library(extra_dirs=[mine])
    assert set(patterns) == set(library()) | {"spark", "dots", "mine/glider"}
    assert patterns["spark"][1].name == "My spark" and patterns["dots"][1].name == "dots"
    assert parse_rle(patterns["spark"][0]).codes.tolist() == [[0, 1, 0], [1, 1, 1]]
    assert patterns["mine/glider"][0].startswith("#N Another glider")
    assert patterns["dots"][1].codes.tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 1]]
    lives = [p.population for _t, p in patterns.values()]
    assert lives == sorted(lives)  # fewest live cells first
    assert library() is library() and "spark" not in library()


def test_a_bad_file_is_one_line_or_left_out(tmp_path: Path) -> None:
    (tmp_path / "good.rle").write_text("x = 1, y = 1\no!")
    (tmp_path / "bad.cells").write_text(".O.\n..O.#\n")
    (tmp_path / "huge.rle").write_text("x = 300, y = 1\n300o!")
    (tmp_path / "empty.rle").write_text("x = 3, y = 3\n!")
    with pytest.raises(PatternError, match=r"bad\.cells:2:5: unexpected character '#'"):
        library(extra_dirs=[tmp_path])
    problems: list[str] = []
    patterns = library(extra_dirs=[tmp_path, tmp_path / "missing"], problems=problems)
    assert "good" in patterns and not {"bad", "huge", "empty"} & set(patterns)
    assert problems[0] == "bad.cells:2:5: unexpected character '#'"
    assert "empty.rle: the pattern has no live cell" in problems[1]
    assert "huge.rle:1:1: the pattern 300x1 is larger than 256x256" in problems[2]
    assert "cannot read the pattern directory" in problems[3] and len(problems) == 4


def test_search_by_name_fragment() -> None:
    assert search("GLIDER GUN") == ["gosper-gun", "simkin-gun"]  # their #N names
    assert search("gosper gun") == ["gosper-gun"]
    assert search("gun") == ["gosper-gun", "simkin-gun", "bi-gun"]
    assert search("g")[:2] == ["glider", "gosper-gun"]  # starting with it first
    assert search("g").index("switch-engine") > search("g").index("gosper-gun")

    assert set(search("heptomino")) == {"b-heptomino", "pi-heptomino"}
    assert search("wss") == [n for n in library() if n in {"lwss", "mwss", "hwss"}]
    assert search("no such pattern") == []
    assert search("") == list(library())
    mine = {"x": ("x = 1, y = 1\no!", Pattern(np.ones((1, 1), np.uint8), name="Spark"))}
    assert search("spa", mine) == ["x"]
