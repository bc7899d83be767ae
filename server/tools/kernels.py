"""Kernel-only figures: today's NumPy kernel, the bit-parallel one, and Golly's QuickLife.

What a worker does with a neutral batch, stage by stage, on one torus soup (a
``Grid.padded`` world: a tile with its halo, as one band of the whole world), in this
process with nothing else running in it:

    numpy          ``shared.kernel.step_tile`` on the padded codes (a byte a cell)
    numpy-wire     the worker's old packed path: ``unpack_bits``, ``step_tile``, ``pack_bits``
    bits           ``shared.bitlife.step_words`` on the padded plane (64 cells a word)
    bits-wire      the worker's packed path now: ``step_wire`` (words in, words out)
    from-wire      its first stage alone: the wire's packbits stream to word rows
    to-wire        its last stage alone: the inside of the stepped plane to the stream
    golly          ``bgolly -a QuickLife`` on the same torus (``B3/S23:T<h>,<w>``), when it
                   is installed: the difference of a long and a short run per generation
                   (its start-up and reading the file cancel out)

Every figure is the median of ``repeats`` timed calls (after one untimed call); the
bit kernel's answer is checked against NumPy's, and Golly's population after the short
run against lifenet's.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared import bitlife
from shared.errors import SimulationError
from shared.grid import Codes, Grid, pack_bits, unpack_bits
from shared.kernel import rule_table, step_grid, step_tile
from shared.malloc import keep_freed_memory
from shared.rle import write_rle
from shared.rules import CONWAY, Rule

Shape = tuple[int, int]
STAGES = ("numpy", "numpy-wire", "bits", "bits-wire", "from-wire", "to-wire", "golly")
KERNEL_NOTES = {
    "numpy": "shared.kernel.step_tile, a byte a cell",
    "numpy-wire": "unpack_bits, step_tile, pack_bits: the worker's packed path before",
    "bits": "shared.bitlife.step_words, 64 cells a word",
    "bits-wire": "shared.bitlife.step_wire: the worker's packed path now",
    "from-wire": "the wire's packbits stream to word rows",
    "to-wire": "the stepped inside back to the stream",
    "golly": "bgolly -a QuickLife on the same torus (long run minus short run)",
}
GOLLY_SHORT, GOLLY_LONG = 10, 110  # generations of Golly's two runs


@dataclass
class KernelFigures:
    """Milliseconds a generation of each stage (``STAGES``) for one soup, with samples;
    ``notes`` says why a stage is missing (Golly not installed)."""

    shape: Shape
    ms: dict[str, float] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def soup(shape: Shape, fill: float = 0.35, seed: int = 1) -> Grid:
    """A random neutral torus: each cell alive with probability ``fill``."""
    rng = np.random.default_rng(seed)
    return Grid.from_codes(rng.random(shape) < fill)


def timed(call: Callable[[], object], repeats: int) -> list[float]:
    """Milliseconds of ``repeats`` calls, after one untimed call."""
    call()
    out = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        out.append((time.perf_counter() - began) * 1000)
    return out


def measure_kernels(shape: Shape, repeats: int = 15, fill: float = 0.35,
                    rule: Rule = CONWAY, golly: bool = True) -> KernelFigures:
    """Every stage of ``STAGES`` on a ``shape`` soup (Golly only for Conway's rule)."""
    keep_freed_memory()  # as a worker does: temporaries are not page-faulted in anew
    grid = soup(shape, fill)
    padded = grid.padded()
    h, w = shape
    table = rule_table(rule)
    wire = bytes(pack_bits(padded))
    plane = bitlife.from_wire(wire, h + 2, w + 2)
    stepped = bitlife.step_words(plane, w + 2, rule)
    expected = step_tile(padded, table)
    if not np.array_equal(unpack_bits(bitlife.step_wire(wire, h, w, rule), (h, w)),
                          expected):
        raise SimulationError("the bit kernel differs from the NumPy kernel")

    def numpy_wire() -> Codes:
        return pack_bits(step_tile(unpack_bits(wire, (h + 2, w + 2)), table))

    calls: dict[str, Callable[[], object]] = {
        "numpy": lambda: step_tile(padded, table),
        "numpy-wire": numpy_wire,
        "bits": lambda: bitlife.step_words(plane, w + 2, rule),
        "bits-wire": lambda: bitlife.step_wire(wire, h, w, rule),
        "from-wire": lambda: bitlife.from_wire(wire, h + 2, w + 2),
        "to-wire": lambda: bitlife.to_wire(stepped, w, start=1),
    }
    figures = KernelFigures(shape)
    for name, call in calls.items():
        figures.samples[name] = timed(call, repeats)
        figures.ms[name] = statistics.median(figures.samples[name])
    if not golly:
        figures.notes["golly"] = "not asked for"
    elif rule != CONWAY:
        figures.notes["golly"] = "measured for B3/S23 only"
    elif shutil.which("bgolly") is None:
        figures.notes["golly"] = "bgolly is not installed (Debian: apt-get install golly)"
    else:
        samples = golly_ms(grid, max(3, repeats // 5))
        figures.samples["golly"] = samples
        figures.ms["golly"] = statistics.median(samples)
    return figures


def golly_ms(grid: Grid, repeats: int = 3) -> list[float]:
    """Golly's QuickLife, ms a generation on ``grid``'s torus: for each repeat, a run
    of ``GOLLY_LONG`` generations minus one of ``GOLLY_SHORT``, over the difference."""
    bgolly = shutil.which("bgolly")
    if bgolly is None:
        raise FileNotFoundError("bgolly is not installed")
    h, w = grid.height, grid.width
    with tempfile.TemporaryDirectory(prefix="lifenet-golly-") as tmp:
        path = Path(tmp) / "soup.rle"
        lines = write_rle(grid.codes).splitlines()
        lines = [line + f", rule = B3/S23:T{w},{h}" if line.startswith("x =") else line
                 for line in lines]
        path.write_text("\n".join(lines) + "\n")

        def run(generations: int) -> tuple[float, str]:
            began = time.perf_counter()
            done = subprocess.run([bgolly, "-a", "QuickLife", "-i", "1", "-m",
                                   str(generations), str(path)], capture_output=True,
                                  text=True, check=True, timeout=600)
            return time.perf_counter() - began, done.stdout

        _, out = run(GOLLY_SHORT)
        _check_golly(grid, out)
        samples = []
        for _ in range(repeats):
            short, _ = run(GOLLY_SHORT)
            long, _ = run(GOLLY_LONG)
            samples.append((long - short) * 1000 / (GOLLY_LONG - GOLLY_SHORT))
        return samples


def _check_golly(grid: Grid, out: str) -> None:
    """Golly's population after ``GOLLY_SHORT`` generations must be lifenet's: the same
    torus and the same rule."""
    found = re.findall(r"^\s*(\d+): ([\d,]+)", out, re.MULTILINE)
    if not found:
        raise SimulationError(f"bgolly printed no population: {out[-200:]!r}")
    golly = int(found[-1][1].replace(",", ""))
    for _ in range(GOLLY_SHORT):
        grid = step_grid(grid, CONWAY)
    if golly != grid.population:
        raise SimulationError(f"bgolly's population {golly} after {GOLLY_SHORT} "
                              f"generations is not lifenet's {grid.population}")


def table(figures: list[KernelFigures]) -> str:
    """The figures as a text table: a row a stage, a column a soup."""
    head = f"{'kernel ms/gen':<14}" + "".join(f"{f'{h}x{w}':>14}" for h, w
                                             in (f.shape for f in figures))
    rows = [head]
    for stage in STAGES:
        cells = []
        for f in figures:
            cells.append(f"{f.ms[stage]:>14.3f}" if stage in f.ms else f"{'-':>14}")
        rows.append(f"{stage:<14}" + "".join(cells))
    for f in figures:
        base = f.ms["numpy"]
        rows.append(f"{f.shape[0]}x{f.shape[1]}: bits {base / f.ms['bits']:.2f}x numpy, "
                    f"bits-wire {f.ms['numpy-wire'] / f.ms['bits-wire']:.2f}x numpy-wire"
                    + (f", bits-wire {f.ms['golly'] / f.ms['bits-wire']:.2f}x golly"
                       if "golly" in f.ms else f" (golly: {f.notes.get('golly', '')})"))
    return "\n".join(rows)
