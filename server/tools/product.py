"""The product path: a whole server generation as ``lifenet up`` runs it, beside Golly.

``lifenet bench --server`` (issue 16, part 1). For each torus soup (fill 0.35, seed 1,
B3/S23) and in turns, so that both see the same machine:

    lifenet up     ``lifenet up --headless --workers N --bots 0 --tick 0 --generations G``
                   as a user runs it (a child process; the server, its broker and
                   dispatchers, N worker processes, CURVE on every endpoint, the frame
                   and view publishers), timed from start to exit for a short and a long
                   run: the difference over the difference of generations is the cost of
                   a generation (start-up, building the soup and the exit cancel out).
                   The long run's server logs where its generations went
                   (``Engine.stages``) and its loop's own time a generation after 10
                   warm-up generations (which the start-up's noise, a second or two
                   here, does not reach); its resident size is sampled while it runs.
    golly          ``bgolly -a QuickLife -i 1`` on the same soup on its own torus
                   (``rule = B3/S23:T<w>,<h>``), a short and a long run the same way; its
                   population after the short run must be lifenet's (``--out``).

Warm-up: the short run is the warm-up that the difference removes (a server's first
generations of a world pay for its page faults and its workers' first rates).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from server.config import ServerConfig
from server.world import build_world
from shared.errors import SimulationError
from shared.formats import read_pattern
from shared.grid import Grid
from shared.rle import write_rle

Shape = tuple[int, int]
LOOP_LINE = re.compile(r"whole generations: \d+ after the first \d+ in [\d.]+ s: ([\d.]+) ms")
STAGE_LINE = re.compile(r"generation stages, ms a generation over (\d+): (.*)$", re.M)


@dataclass
class ProductFigures:
    """One soup's figures: ms a generation (medians of the turns, with samples)."""

    shape: Shape
    workers: int
    up: list[float] = field(default_factory=list)
    loop: list[float] = field(default_factory=list)  # the long runs, timed by the server
    golly: list[float] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)  # the last long run's
    server_rss_mib: float = 0.0   # the server's largest resident size seen, MiB
    notes: dict[str, str] = field(default_factory=dict)
    beside: dict[str, float] = field(default_factory=dict)  # engine-only, NumPy: ms

    def ms(self, what: str) -> float | None:
        samples = self.up if what == "up" else self.golly
        return statistics.median(samples) if samples else None


def soup_grid(shape: Shape, fill: float = 0.35, seed: int = 1) -> Grid:
    """The soup ``lifenet up --size --fill --seed`` starts from (the same call)."""
    grid, _ = build_world(ServerConfig(size=shape, fill=fill, seed=seed))
    return grid


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _server_pid(up: int) -> int | None:
    """The ``lifenet server`` child of a ``lifenet up`` (the first child it starts)."""
    try:
        with open(f"/proc/{up}/task/{up}/children") as f:
            children = [int(p) for p in f.read().split()]
    except OSError:
        return None
    for pid in children:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"\0server\0" in f.read():
                    return pid
        except OSError:
            continue
    return None


def run_up(shape: Shape, generations: int, workers: int, out: Path,
           fill: float = 0.35, code: Path | None = None) -> tuple[float, str, int]:
    """One ``lifenet up`` run: its wall time (s), its log, the server's largest
    resident size seen (KiB). ``code``: run the ``server`` package found there (an
    earlier tree, for before and after in one command) instead of this one."""
    h, w = shape
    argv = [sys.executable, "-m", "server", "up", "--headless", "--workers", str(workers),
            "--bots", "0", "--size", f"{h}x{w}", "--seed", "1", "--fill", str(fill),
            "--tick", "0", "--generations", str(generations), "--worker-port", "0",
            "--player-port", "0", "--frame-port", "0", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFENET_")}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    with tempfile.TemporaryDirectory(prefix="lifenet-up-") as state:
        env["LIFENET_STATE_DIR"] = state
        began = time.perf_counter()
        # From ``code`` (``-m`` puts the working directory first on the path).
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=env, cwd=code)
        peak, server = 0, None
        while proc.poll() is None:
            server = server or _server_pid(proc.pid)
            if server is not None:
                peak = max(peak, _rss_kib(server))
            time.sleep(0.05)
        spent = time.perf_counter() - began
        log = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    if proc.returncode != 0:
        raise SimulationError(f"lifenet up exited {proc.returncode}: {log[-400:]}")
    return spent, log, peak


def run_golly(path: Path, generations: int) -> tuple[float, int]:
    """One ``bgolly`` run: its wall time (s) and the population it printed last."""
    bgolly = shutil.which("bgolly")
    assert bgolly is not None
    began = time.perf_counter()
    done = subprocess.run([bgolly, "-a", "QuickLife", "-i", "1", "-m", str(generations),
                           str(path)], capture_output=True, text=True, check=True,
                          timeout=900)
    spent = time.perf_counter() - began
    found = re.findall(r"^\s*(\d+): ([\d,]+)", done.stdout, re.MULTILINE)
    if not found:
        raise SimulationError(f"bgolly printed no population: {done.stdout[-200:]!r}")
    return spent, int(found[-1][1].replace(",", ""))


def measure_product(shape: Shape, workers: int = 2, short: int = 20, long: int = 1020,
                    turns: int = 3, golly: bool = True) -> ProductFigures:
    """``turns`` turns of (lifenet short, lifenet long, Golly short, Golly long)."""
    figures = ProductFigures(shape, workers)
    h, w = shape
    with tempfile.TemporaryDirectory(prefix="lifenet-product-") as tmp:
        out = Path(tmp) / "out.rle"
        soup = Path(tmp) / "soup.rle"
        if golly and shutil.which("bgolly") is None:
            figures.notes["golly"] = "bgolly is not installed (Debian: apt-get install golly)"
            golly = False
        elif not golly:
            figures.notes["golly"] = "not asked for"
        if golly:
            lines = write_rle(soup_grid(shape).codes).splitlines()
            soup.write_text("\n".join(line + f", rule = B3/S23:T{w},{h}"
                                      if line.startswith("x =") else line
                                      for line in lines) + "\n")
        for turn in range(turns):
            t_short, _, _ = run_up(shape, short, workers, out)
            if turn == 0 and golly:  # the same torus, the same soup, the same rule
                population = int((read_pattern(out).codes != 0).sum())
                _, theirs = run_golly(soup, short)
                if theirs != population:
                    raise SimulationError(f"after {short} generations bgolly counts "
                                          f"{theirs} cells, lifenet {population}")
            t_long, log, peak = run_up(shape, long, workers, out)
            figures.up.append((t_long - t_short) * 1000 / (long - short))
            figures.server_rss_mib = max(figures.server_rss_mib, peak / 1024)
            timed = LOOP_LINE.search(log)
            if timed:
                figures.loop.append(float(timed[1]))
            found = STAGE_LINE.search(log)
            if found:
                figures.stages = {name: float(ms) for name, ms in
                                  (part.rsplit(" ", 1) for part in found[2].split(", "))}
            if golly:
                g_short, _ = run_golly(soup, short)
                g_long, _ = run_golly(soup, long)
                figures.golly.append((g_long - g_short) * 1000 / (long - short))
    return figures


def measure_beside(figures: ProductFigures, seconds: float = 1.0) -> None:
    """The same soup's engine-only figure (``Engine.compute`` through the bench's
    in-process server and its worker processes: no players, no publishing, no CURVE)
    and NumPy's in-process step, each after ``seconds`` of warm-up, for ``seconds``."""
    from server.tools.bench import LifenetRig, measure
    from shared.kernel import step_grid
    from shared.rules import CONWAY

    grid = soup_grid(figures.shape)
    numpy = measure(lambda g: step_grid(g, CONWAY), grid, 5, seconds, seconds)
    with LifenetRig(figures.workers) as rig:
        engine = measure(rig.step, grid, 5, seconds, seconds)
    figures.beside = {"engine": statistics.median(engine),
                      "numpy": statistics.median(numpy)}


def product_table(figures: list[ProductFigures]) -> str:
    """The figures as text: ms a generation, the ratio to Golly, the server's size."""
    lines = ["The product path: lifenet up --headless (ms a generation, median of the "
             "turns; long run minus short run)"]
    for f in figures:
        up, golly = f.ms("up"), f.ms("golly")
        size = f"{f.shape[0]}x{f.shape[1]}"
        text = f"  {size}: lifenet up, {f.workers} workers {up:.2f} ms" if up else \
            f"  {size}: lifenet up: no figure"
        if golly and up:
            text += f"; Golly QuickLife {golly:.2f} ms; lifenet {golly / up:.2f}x Golly"
        else:
            text += f" (golly: {f.notes.get('golly', '')})"
        text += f"; server resident {f.server_rss_mib:.0f} MiB"
        lines.append(text)
        if f.loop:
            loop = statistics.median(f.loop)
            lines.append(f"    timed by the server's own loop (after 10 warm-up "
                         f"generations): {loop:.2f} ms"
                         + (f"; lifenet {golly / loop:.2f}x Golly" if golly else ""))
        lines.append("    turns: lifenet " + " ".join(f"{ms:.2f}" for ms in f.up)
                     + ("; golly " + " ".join(f"{ms:.2f}" for ms in f.golly)
                        if f.golly else ""))
        if f.beside:
            lines.append(f"    engine only ({f.workers} workers, in-process server) "
                         f"{f.beside['engine']:.2f} ms; NumPy in-process "
                         f"{f.beside['numpy']:.2f} ms"
                         + (f"; lifenet up {f.beside['numpy'] / up:.2f}x NumPy" if up
                            else ""))
        if f.stages:
            lines.append("    where a server generation went (ms): "
                         + ", ".join(f"{k} {v:.2f}" for k, v in f.stages.items()))
    return "\n".join(lines)
