"""Pattern files as people have them: plaintext .cells, Life 1.06, RLE, told apart by
content first; malformed ones refused in one line; a whole 4096x4096 world read back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from server.config import ServerConfig
from server.world import build_world, world_size, write_world
from shared.errors import ConfigError, PatternError
from shared.formats import (
    Extent,
    detect_format,
    parse_pattern,
    pattern_extent,
    pattern_rle,
    read_pattern,
)
from shared.grid import Grid
from shared.rle import parse_rle
from shared.rules import CONWAY, parse_rule
from tests.conftest import ROOT

GLIDER = [[0, 1, 0], [0, 0, 1], [1, 1, 1]]


def test_plaintext_with_comments_a_name_and_rows_of_unequal_length() -> None:
    text = ("!Name: Glider\n!Author: Richard K. Guy\n!\n!The smallest spaceship.\n"
            ".O\n..O\nOOO\n\n")
    pattern = parse_pattern(text, "glider.cells")
    assert pattern.codes.tolist() == GLIDER  # padded, the trailing empty row dropped
    assert pattern.name == "Glider" and pattern.rule is None
    assert pattern.comments == ["#N Glider", "#O Richard K. Guy", "#C",
                                "#C The smallest spaceship."]


def test_plaintext_empty_rows_inside_stay_and_crlf_and_o_and_star_are_taken() -> None:
    pattern = parse_pattern("O.\r\n\r\n.*\r\n.o\r\n", "x.cells")
    assert pattern.codes.tolist() == [[1, 0], [0, 0], [0, 1], [0, 1]]


@pytest.mark.parametrize("text, says", [
    ("!Name: Glider\n.O.\n..O.#\nOOO\n", "glider.cells:3:5: unexpected character '#'"),
    ("..O\n.O O\n", "glider.cells:2:3: unexpected character ' '"),
    ("O\nO\tO\n", "glider.cells:2:2: unexpected character '\\t'"),
])
def test_malformed_plaintext_names_the_line_and_column(text: str, says: str) -> None:
    with pytest.raises(PatternError) as refused:
        parse_pattern(text, "glider.cells")
    assert str(refused.value) == says


def test_life_106_with_negative_coordinates_is_its_bounding_box() -> None:
    text = "#Life 1.06\n#N Glider\n0 -1\n1 0\n-1 1\n 0 1\n1   1\n\n"
    pattern = parse_pattern(text, "glider.lif")
    assert pattern.codes.tolist() == GLIDER
    assert pattern.origin == (-1, -1) and pattern.name == "Glider"
    far = parse_pattern("#Life 1.06\n-1000005 -2000000\n-1000000 -1999999\n", "far.lif")
    assert far.codes.shape == (2, 6) and far.origin == (-2000000, -1000005)
    assert far.codes[0, 0] == far.codes[1, 5] == 1 and far.population == 2


@pytest.mark.parametrize("text, says", [
    ("0 0\n1 1\n", "g.lif:1:1: expected the header '#Life 1.06'"),
    ("#Life 1.06\n0 0\n1 x\n", "g.lif:3:3: unexpected character 'x'"),
    ("#Life 1.06\n0 0\n1 2 3\n", "g.lif:3:5: expected two integers 'x y', found more"),
    ("#Life 1.06\n 7\n", "g.lif:2:3: expected two integers 'x y'"),
    ("#Life 1.06\n0 1-2\n", "g.lif:2:4: unexpected character '-'"),
    ("#Life 1.06\n0 0\n0 70000000\n", "g.lif:3:1: the pattern spreads over 1x70000001"),
])
def test_malformed_life_106_names_the_line_and_column(text: str, says: str) -> None:
    with pytest.raises(PatternError) as refused:
        parse_pattern(text, "g.lif")
    assert str(refused.value).startswith(says), str(refused.value)


@pytest.mark.parametrize("head, name, kind", [
    (b"#Life 1.06\n0 0\n", "x.rle", "life106"),       # the content says, not the name
    (b"!Name: x\n.O\n", "x.rle", "cells"),
    (b".O.\n..O\n", "x.txt", "cells"),
    (b"#N Glider\n#C x = 3\nx = 3, y = 3\nbo$2bo$3o!", "x.cells", "rle"),
    (b"\xef\xbb\xbfx = 1, y = 1\no!", "x", "rle"),
    (b"#C only comments\n", "x.lif", "life106"),      # nothing said: the extension
    (b"bo$2bo$3o!", "x.RLE", "rle"),
    (b"", "x.cells", "cells"),
])
def test_the_format_is_told_by_content_then_by_extension(head: bytes, name: str,
                                                         kind: str) -> None:
    assert detect_format(head, name) == kind


def test_an_unknown_format_and_life_105_are_refused() -> None:
    with pytest.raises(PatternError, match=r"notes\.txt: cannot tell its format"):
        detect_format(b"hello\n", "notes.txt")
    with pytest.raises(PatternError, match=r"Life 1\.05 is not supported"):
        detect_format(b"#Life 1.05\n#P 0 0\n*\n", "old.lif")


def test_read_pattern_streams_each_format_and_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.cells").write_text(".O\n..O\nOOO\n")
    (tmp_path / "b.lif").write_text("#Life 1.06\n0 -1\n1 0\n-1 1\n0 1\n1 1\n")
    (tmp_path / "c.rle").write_text("x = 3, y = 3, rule = S23/B3\nbo$2bo$3o!\n")
    for name in ("a.cells", "b.lif", "c.rle"):
        assert read_pattern(tmp_path / name).codes.tolist() == GLIDER
    (tmp_path / "bad.cells").write_text("!x\n.O.\n..O.#\n")
    with pytest.raises(PatternError, match=r"^bad.cells:3:5: unexpected character '#'$"):
        read_pattern(tmp_path / "bad.cells")
    with pytest.raises(PatternError, match=r"cannot read pattern .*none\.rle"):
        read_pattern(tmp_path / "none.rle")


def test_other_formats_become_rle_text_that_reads_the_same() -> None:
    pattern = parse_pattern("!Name: Glider\n.O\n..O\nOOO\n", "g.cells")
    text = pattern_rle(pattern)
    assert text.startswith("#N Glider\n")
    again = parse_rle(text)
    assert again.codes.tolist() == GLIDER and again.name == "Glider"


def test_extent_reads_an_rle_header_alone(tmp_path: Path) -> None:
    path = tmp_path / "big.rle"
    path.write_text("#C lifenet world, generation 3\nx = 5000, y = 4000, rule = B36/S23:T5000,"
                    "4000\nthis body is never read")
    assert pattern_extent(path) == Extent(4000, 5000, parse_rule("B36/S23"), (4000, 5000),
                                          ("#C lifenet world, generation 3",))
    (tmp_path / "g.cells").write_text(".O\n..O\nOOO\n")
    assert pattern_extent(tmp_path / "g.cells") == Extent(3, 3, None, None, ())


@pytest.mark.parametrize("height, width, torus, comments, size", [
    (3, 3, None, (), (80, 80)),                       # 3 + 2 * 32 -> 80, a multiple of 16
    (9, 36, None, (), (80, 112)),                     # the Gosper gun
    (1, 1, None, (), (80, 80)),
    (200, 100, None, (), (272, 176)),
    (3, 3, (64, 30), (), (64, 30)),                   # the file's torus
    (100, 60, None, ("#C lifenet world, generation 7",), (100, 60)),  # lifenet's own world
    (8192, 8192, None, (), (8192, 8192)),             # no room for a margin: its own box
])
def test_the_world_a_pattern_gets_without_size(height: int, width: int,
                                               torus: tuple[int, int] | None,
                                               comments: tuple[str, ...],
                                               size: tuple[int, int]) -> None:
    assert world_size(Extent(height, width, None, torus, comments)) == size


def test_no_world_fits_a_torus_larger_than_lifenet_holds() -> None:
    with pytest.raises(ConfigError, match="no world fits the pattern"):
        world_size(Extent(1, 1, None, (70000000, 1), ()))


def test_the_pattern_is_placed_where_a_golly_torus_put_it(tmp_path: Path) -> None:
    path = tmp_path / "t.rle"  # Golly: a 10x8 torus's top-left cell is (-5, -4)
    path.write_text("#CXRLE Pos=-5,-4\nx = 3, y = 3, rule = B3/S23:T10,8\nbo$2bo$3o!\n")
    grid, rule = build_world(ServerConfig(size=(8, 10), pattern=path))
    assert grid.codes[:3, :3].tolist() == GLIDER and grid.population == 5 and rule == CONWAY
    path.write_text("#CXRLE Pos=3,2\nx = 3, y = 3, rule = B3/S23:T10,8\nbo$2bo$3o!\n")
    grid, _ = build_world(ServerConfig(size=(8, 10), pattern=path))
    ys, xs = np.nonzero(grid.codes)  # at row 2 + 4, column 3 + 5, wrapping
    assert sorted(zip(ys.tolist(), xs.tolist(), strict=True)) == [
        (0, 0), (0, 8), (0, 9), (6, 9), (7, 0)]


_READ_ALONE = """
import json, sys, time
from pathlib import Path
from shared.formats import read_pattern
def peak_kib():  # VmHWM: ru_maxrss would start at the parent's, inherited over fork
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
before = peak_kib()
started = time.perf_counter()
pattern = read_pattern(Path(sys.argv[1]))
seconds = time.perf_counter() - started
grown = peak_kib() - before
print(json.dumps({"seconds": seconds, "grown_kib": grown, "population": pattern.population}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_a_whole_4096_world_is_read_back_streaming(tmp_path: Path) -> None:
    """lifenet's own --out of a 4096x4096 soup (write_world, the writer --out uses) reads
    back equal, in bounded time and memory: the text is never held whole. Measured here
    with tracemalloc, and in a process of its own (its maximum resident size)."""
    rng = np.random.default_rng(13)
    grid = Grid.from_codes((rng.random((4096, 4096)) < 0.25).astype(np.uint8))
    path = tmp_path / "soup.rle"
    write_world(path, grid, CONWAY, 0)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        started = time.perf_counter()
        pattern = read_pattern(path)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    alone = json.loads(subprocess.run([sys.executable, "-c", _READ_ALONE, str(path)],
                                      capture_output=True, text=True, check=True,
                                      cwd=ROOT).stdout)
    print(f"\nread {size / 2**20:.1f} MiB of RLE (4096x4096, 25% alive) in {seconds:.2f} s "
          f"(traced, peak {peak / 2**20:.1f} MiB); alone in a process: "
          f"{alone['seconds']:.2f} s, maximum resident size grew by "
          f"{alone['grown_kib'] / 1024:.1f} MiB (the world itself is 16 MiB)")
    assert np.array_equal(pattern.codes, grid.codes)
    assert pattern.comments == ["#C lifenet world, generation 0"] and pattern.rule == CONWAY
    assert alone["population"] == grid.population
    assert size > 8 << 20  # more than twice the 4 MiB that was once the limit
    assert peak < 4 * grid.codes.nbytes  # the world and a block's temporaries, not the text
    assert alone["grown_kib"] * 1024 < 4 * grid.codes.nbytes
    assert seconds < 30
