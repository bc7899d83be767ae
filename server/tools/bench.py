"""``lifenet bench``: the book's approaches and lifenet's engine, measured in one run.

Two questions, as in the issue that asked for it:

- **I/O latency** (section ``io``): every cell's ``game_logic`` waits ``latency`` seconds
  for its own I/O. The book's approaches (``server.tools.book``: serial, a thread per cell,
  the ``Queue`` pipeline with 5 threads, ``ThreadPoolExecutor(1000)``, asyncio) and
  lifenet with real worker processes started with ``--io-latency``. Serial and the
  5-thread pipeline are measured on the smallest world only and extrapolated linearly
  beyond (10 000 cells would take them 1000 s and 200 s); such figures say
  ``measured: false``.
- **Throughput** (section ``cpu``): random soups with no I/O, through lifenet's workers,
  against the book's pure-Python ``simulate`` and the in-process NumPy step.
- **Snapshots** (section ``snapshot``): saving and reading an encrypted snapshot of a
  world with owners (default 4096x4096), beside ``openssl enc`` alone on the same bytes
  and the parts of the work (the key derivations, msgpack, the export's RLE writing);
  best of ``snapshot_repeats``, in milliseconds per operation.

Everything runs in this process tree: lifenet is an in-process ``Server`` (the real
broker and dispatcher threads) with real ``lifenet worker`` child processes on loopback,
and every child is ended before ``run_bench`` returns, however it returns.

A figure is the median of at least ``repeats`` generations, after one warm-up generation
where it is cheap; each approach's first generation is checked against the NumPy step.
The throughput figures of NumPy and lifenet, a few milliseconds each, are taken in the
steady state a running server is in: after ``warmup`` seconds of warm-up generations
(a process's first generations of a new size pay for growing its heap and buffers: 3.6
ms instead of 2.6 at 1024x1024 through lifenet) and over at least ``min_time`` seconds
of samples, so that one slow generation does not make the median.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from server.app import Server
from server.config import ServerConfig
from server.snapshot import (
    DEFAULT_ITERATIONS,
    MIN_ITERATIONS,
    SnapshotKey,
    WorldState,
    pack_state,
    read_snapshot,
    save_snapshot,
)
from server.tools import book
from server.tools.children import LocalProcesses, free_port
from server.tools.kernels import KERNEL_NOTES, STAGES, measure_kernels
from server.verify import UNVERIFIED, Verification
from server.world import write_world
from shared.errors import ConfigError, SimulationError
from shared.grid import Grid
from shared.kernel import step_grid
from shared.keys import init_keys
from shared.life import simulate
from shared.rules import CONWAY

Shape = tuple[int, int]
Progress = Callable[[str], None]

READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class Profile:
    """What one run measures."""

    name: str
    latency: float = 0.1
    io_shapes: tuple[Shape, ...] = ((5, 9), (100, 100), (250, 400), (1000, 1000))
    book_cells: int = 10_000          # the book's approaches stop here (asyncio, pool, ...)
    serial_cells: int = 45            # serial and the 5-thread queue stop here
    python_cells: int = 1 << 20       # the pure-Python step stops here (4096x4096: 50 s)
    cpu_shapes: tuple[Shape, ...] = ((1024, 1024), (4096, 4096))
    repeats: int = 3
    slow_repeats: int = 1             # for serial and the pure-Python step
    warmup: float = 0.25              # seconds of warm-up generations (throughput)
    min_time: float = 0.25            # seconds of samples, at least (throughput)
    workers: int = 2
    queue_threads: int = 5
    pool_threads: int = 1000
    # Which shape each target is judged on.
    io_target_shapes: tuple[Shape, Shape] = ((100, 100), (1000, 1000))
    cpu_target_shapes: tuple[Shape, Shape] = ((1024, 1024), (4096, 4096))
    snapshot_shape: Shape = (4096, 4096)
    snapshot_repeats: int = 3
    snapshot_iterations: int = DEFAULT_ITERATIONS
    kernel_repeats: int = 15          # timed calls a kernel stage (server/tools/kernels.py)
    kernel_fill: float = 0.35         # the kernel section's soups (the speed issue's)


QUICK = Profile("quick")
FULL = Profile("full", repeats=5, slow_repeats=3)
TINY = Profile("tiny", latency=0.01, io_shapes=((5, 9), (10, 10), (20, 20), (30, 30)),
               book_cells=100, cpu_shapes=((32, 32), (64, 64)), python_cells=1024, repeats=1,
               warmup=0.0, min_time=0.0,
               io_target_shapes=((10, 10), (30, 30)), cpu_target_shapes=((32, 32), (64, 64)),
               snapshot_shape=(64, 64), snapshot_repeats=1, snapshot_iterations=MIN_ITERATIONS,
               kernel_repeats=3)
PROFILES = {p.name: p for p in (QUICK, FULL, TINY)}

BOOK_IO = ("serial", "threads", "queue", "pool", "asyncio")
SNAPSHOT_PARTS = {
    "pbkdf2": "PBKDF2 in Python alone (the MAC key)",
    "openssl-kdf": "openssl enc of nothing: its own key derivation",
    "enc": "openssl enc alone, encrypting the packed state",
    "dec": "openssl enc -d alone, decrypting it",
    "pack": "pack_state: the state as msgpack",
    "save": "save_snapshot: pack, enc | dgst, HMAC, fsync, rename",
    "read": "read_snapshot: verify, then decrypt and unpack",
    "write-rle": "write_world of the state read: the export's last step",
}


@dataclass
class Figure:
    """One measured (or extrapolated) figure: milliseconds per generation."""

    section: str      # "io", "cpu", "kernel" or "snapshot"
    approach: str
    shape: Shape
    ms: float
    samples: list[float] = field(default_factory=list)
    measured: bool = True
    note: str = ""

    @property
    def cells(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def key(self) -> str:
        return figure_key(self.section, self.approach, self.cells)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["cells"] = self.cells
        out["ms_per_generation"] = out.pop("ms")
        return out


def figure_key(section: str, approach: str, cells: int) -> str:
    return f"{section}/{approach}/{cells}"


def expected_keys(profile: Profile) -> list[str]:
    """Every figure a run of ``profile`` reports."""
    keys = []
    for shape in profile.io_shapes:
        cells = shape[0] * shape[1]
        if cells <= profile.book_cells:
            keys += [figure_key("io", a, cells) for a in BOOK_IO]
        keys.append(figure_key("io", "lifenet", cells))
        if shape == profile.io_target_shapes[0]:
            keys.append(figure_key("io", "lifenet-curve", cells))
    for shape in profile.cpu_shapes:
        cells = shape[0] * shape[1]
        keys += [figure_key("cpu", a, cells)
                 for a in ("python", "numpy", "lifenet", "lifenet-curve", "lifenet-sample",
                           "lifenet-all")]
    for shape in profile.cpu_shapes:
        keys += [figure_key("kernel", stage, shape[0] * shape[1]) for stage in STAGES
                 if stage != "golly" or shutil.which("bgolly") is not None]
    cells = profile.snapshot_shape[0] * profile.snapshot_shape[1]
    keys += [figure_key("snapshot", a, cells) for a in SNAPSHOT_PARTS]
    return keys


def soup(shape: Shape, seed: int = 1, fill: float = 0.25) -> Grid:
    rng = np.random.default_rng(seed)
    return Grid.from_codes(rng.random(shape) < fill)


MAX_SAMPLES = 200
ROUNDS = 3  # turns in which the lifenet variants are measured


def measure(step: Callable[[Grid], Grid], grid: Grid, repeats: int,
            warmup: float | None, min_time: float = 0.0) -> list[float]:
    """Milliseconds of successive generations; the first is checked.

    ``warmup`` None: the first generation is a sample too. Otherwise the first one and
    any more within ``warmup`` seconds are warm-up, not samples. Then at least
    ``repeats`` samples, and more until ``min_time`` seconds of them (``MAX_SAMPLES``
    at most).
    """
    expected = step_grid(grid, CONWAY)
    began = time.perf_counter()
    got = step(grid)
    first = (time.perf_counter() - began) * 1000
    if got != expected:
        raise SimulationError("a benchmarked step differs from the NumPy step")
    grid = got
    if warmup is None:
        samples = [first]
    else:
        samples = []
        warm_until = began + warmup
        while time.perf_counter() < warm_until:
            grid = step(grid)
    sampled = 0.0
    while len(samples) < repeats or (sampled < min_time * 1000
                                     and len(samples) < MAX_SAMPLES):
        began = time.perf_counter()
        grid = step(grid)
        samples.append((time.perf_counter() - began) * 1000)
        sampled += samples[-1]
    return samples


# -- lifenet in this process tree ------------------------------------------------------


class LifenetRig:
    """An in-process ``Server`` and ``workers`` real worker processes on loopback."""

    def __init__(self, workers: int, io_latency: float = 0.0, log: Path | None = None,
                 dispatchers: int = 16, curve: bool = False,
                 verify: Verification = UNVERIFIED, kernel: str = "bits") -> None:
        self.workers = workers
        self.kernel = kernel  # the workers' --kernel
        self.verify = verify
        self.io_latency = io_latency
        self.dispatchers = dispatchers
        self.log = log
        self.curve = curve  # keys of its own: CURVE between the server and its workers
        self.children = LocalProcesses(log_level="warning")
        self.server: Server | None = None
        self._keys: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> LifenetRig:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        port = free_port()
        endpoint = f"tcp://127.0.0.1:{port}"
        argv = ["worker", "--connect", endpoint, "--kernel", self.kernel]
        if self.io_latency:
            argv += ["--io-latency", str(self.io_latency)]
        keys = None
        if self.curve:
            self._keys = tempfile.TemporaryDirectory(prefix="lifenet-bench-keys-")
            keys = Path(self._keys.name) / "keys"
            init_keys(keys)
            argv += ["--keys", str(keys)]
        # Workers first: spawning from a process without ZeroMQ's threads yet is safest,
        # and a worker simply retries its connection until the server binds.
        output: Path | int = self.log if self.log else subprocess.DEVNULL
        workers = [self.children.start(f"worker-{i + 1}", [*argv, "--name", f"bench-{i + 1}"],
                                       output)
                   for i in range(self.workers)]
        self.server = Server(ServerConfig(
            worker_port=port, player_port=free_port(), frame_port=free_port(), size=(8, 8),
            fill=0.0, tick=0.0, batch_timeout=30.0, dispatchers=self.dispatchers, keys=keys,
            verify=self.verify))
        self.server.start()
        server = self.server
        self.children.wait_until(
            lambda: server.broker.worker_count() >= self.workers, READY_TIMEOUT,
            f"{self.workers} bench workers to join (log: {self.log})", watch=workers)

    def set_verification(self, verify: Verification) -> None:
        """Check answers from now on as ``verify`` says (the bench's variants)."""
        assert self.server is not None
        self.server.engine.verification = verify
        for dispatcher in self.server.engine.dispatchers:
            dispatcher.verification = verify

    def step(self, grid: Grid) -> Grid:
        """The workers' step of ``grid``: the engine cuts it from its size and the live
        workers, fans it out and in (no players, no publishing)."""
        assert self.server is not None
        return self.server.engine.compute(grid)

    def close(self) -> None:
        """End every worker this rig started (SIGTERM, then SIGKILL), then the server."""
        self.children.stop()
        if self.server is not None:
            self.server.close()
            self.server = None
        if self._keys is not None:
            self._keys.cleanup()
            self._keys = None


# -- the run ---------------------------------------------------------------------------


@dataclass
class Report:
    profile: Profile
    figures: dict[str, Figure] = field(default_factory=dict)
    wall_s: float = 0.0
    notes: dict[str, str] = field(default_factory=dict)  # why a figure is missing

    def add(self, figure: Figure) -> None:
        self.figures[figure.key] = figure

    def get(self, section: str, approach: str, shape: Shape) -> Figure | None:
        return self.figures.get(figure_key(section, approach, shape[0] * shape[1]))

    def ratios(self) -> dict[str, float]:
        """How many times faster than a baseline, for every figure that has one."""
        out: dict[str, float] = {}
        for f in self.figures.values():
            base = self.get(f.section, "serial" if f.section == "io" else "python", f.shape)
            if base is not None and f is not base and f.ms > 0:
                out[f"{f.key} vs {base.approach}"] = base.ms / f.ms
            if f.section == "cpu" and f.approach == "lifenet":
                numpy = self.get("cpu", "numpy", f.shape)
                if numpy is not None and f.ms > 0:
                    out[f"{f.key} vs numpy"] = numpy.ms / f.ms
        return out

    def targets(self) -> list[dict[str, Any]]:
        """The issue's targets, each judged on this run's figures."""
        p = self.profile
        io_mid, io_big = p.io_target_shapes
        cpu_small, cpu_big = p.cpu_target_shapes
        checks: list[tuple[str, Figure | None, Figure | None, str, float]] = [
            ("io: 10 000 cells <= 130 ms", self.get("io", "lifenet", io_mid), None, "ms", 130),
            ("io: 1 000 000 cells <= 1 s", self.get("io", "lifenet", io_big), None, "ms", 1000),
            ("cpu: 1024x1024 >= 100x pure Python", self.get("cpu", "lifenet", cpu_small),
             self.get("cpu", "python", cpu_small), "ratio", 100),
            ("cpu: 1024x1024 >= 0.25x in-process NumPy",
             self.get("cpu", "lifenet", cpu_small), self.get("cpu", "numpy", cpu_small),
             "ratio", 0.25),
            ("cpu: 4096x4096 <= 100 ms", self.get("cpu", "lifenet", cpu_big), None, "ms", 100),
            ("curve: 1024x1024 <= 1.3x plain", self.get("cpu", "lifenet-curve", cpu_small),
             self.get("cpu", "lifenet", cpu_small), "cost", 1.3),
            ("curve: 4096x4096 <= 1.3x plain", self.get("cpu", "lifenet-curve", cpu_big),
             self.get("cpu", "lifenet", cpu_big), "cost", 1.3),
            ("curve: io 10 000 cells <= 1.3x plain", self.get("io", "lifenet-curve", io_mid),
             self.get("io", "lifenet", io_mid), "cost", 1.3),
            ("verify sample:0.05: 1024x1024 <= 1.1x plain",
             self.get("cpu", "lifenet-sample", cpu_small), self.get("cpu", "lifenet", cpu_small),
             "cost", 1.1),
            ("verify sample:0.05: 4096x4096 <= 1.1x plain",
             self.get("cpu", "lifenet-sample", cpu_big), self.get("cpu", "lifenet", cpu_big),
             "cost", 1.1),
            ("verify all: 1024x1024 <= 2.2x plain", self.get("cpu", "lifenet-all", cpu_small),
             self.get("cpu", "lifenet", cpu_small), "cost", 2.2),
            ("verify all: 4096x4096 <= 2.2x plain", self.get("cpu", "lifenet-all", cpu_big),
             self.get("cpu", "lifenet", cpu_big), "cost", 2.2),
        ]
        out = []
        for name, fig, base, kind, limit in checks:
            if fig is None or (kind != "ms" and base is None):
                continue
            if kind == "ms":
                value, met = fig.ms, fig.ms <= limit
            elif kind == "cost":  # how many times the base's time: at most the limit
                assert base is not None
                value = fig.ms / base.ms
                met = value <= limit
            else:
                assert base is not None
                value = base.ms / fig.ms
                met = value >= limit
            out.append({"target": name, "kind": kind, "figure": fig.key,
                        "shape": list(fig.shape),
                        "value": value, "limit": limit, "met": met})
        return out

    def as_json(self, command: str) -> dict[str, Any]:
        return {
            "command": command,
            "profile": asdict(self.profile),
            "machine": machine(),
            "wall_s": self.wall_s,
            "figures": {k: f.as_json() for k, f in self.figures.items()},
            "ratios": self.ratios(),
            "targets": self.targets(),
            "missing": self.notes,
        }


def count_steps(profile: Profile) -> int:
    # Each lifenet variant is measured in ROUNDS turns; and three rigs are started.
    variants = 4 * len(profile.cpu_shapes)
    kernels = [k for k in expected_keys(profile) if k.startswith("kernel/")]
    return len(expected_keys(profile)) - len(kernels) + len(profile.cpu_shapes) \
        + variants * (ROUNDS - 1) + 3


def run_bench(profile: Profile, progress: Progress = lambda _: None,
              log: Path | None = None) -> Report:
    """Measure every figure of ``profile``; every child process is ended on return."""
    began = time.perf_counter()
    report = Report(profile)
    if log is None:
        log = Path(tempfile.gettempdir()) / f"lifenet-bench-{os.getpid()}.log"
    _run_cpu(profile, report, progress, log)
    _run_kernels(profile, report, progress)
    _run_io(profile, report, progress, log)
    _run_snapshot(profile, report, progress)
    report.wall_s = time.perf_counter() - began
    return report


def _run_cpu(p: Profile, report: Report, progress: Progress, log: Path) -> None:
    for shape in p.cpu_shapes:
        progress(f"cpu numpy {shape[0]}x{shape[1]}")
        samples = measure(lambda g: step_grid(g, CONWAY), soup(shape), p.repeats,
                          p.warmup, p.min_time)
        report.add(Figure("cpu", "numpy", shape, statistics.median(samples), samples,
                          note="shared.kernel.step_grid in this process"))
    for shape in p.cpu_shapes:
        progress(f"cpu pure Python {shape[0]}x{shape[1]}")
        cells = shape[0] * shape[1]
        base = report.get("cpu", "python", p.cpu_shapes[0])
        if cells > p.python_cells and base is not None:
            report.add(Figure("cpu", "python", shape, base.ms * cells / base.cells,
                              measured=False, note=f"extrapolated from {base.cells} cells"))
            continue
        samples = measure(lambda g: simulate(g, CONWAY), soup(shape), p.slow_repeats, None)
        report.add(Figure("cpu", "python", shape, statistics.median(samples), samples,
                          note="shared.life.simulate, the book's step"))
    progress(f"starting lifenet with {p.workers} workers, plain and with keys")
    with LifenetRig(p.workers, log=log) as plain, \
            LifenetRig(p.workers, log=log, curve=True) as curve:
        # The variants are measured in turns, ROUNDS times, so that a machine whose
        # speed drifts during the run (it does) weighs on each of them alike.
        variants = {
            "lifenet": (plain, UNVERIFIED, ""),
            "lifenet-curve": (curve, UNVERIFIED, ", CURVE (keys)"),
            "lifenet-sample": (plain, Verification(0.05), ", --verify sample:0.05"),
            "lifenet-all": (plain, Verification(1.0), ", --verify all"),
        }
        for shape in p.cpu_shapes:
            taken: dict[str, list[float]] = {name: [] for name in variants}
            for turn in range(ROUNDS):
                for name, (rig, verify, _) in variants.items():
                    progress(f"cpu {name} {shape[0]}x{shape[1]} ({turn + 1}/{ROUNDS})")
                    rig.set_verification(verify)
                    taken[name] += measure(rig.step, soup(shape), p.repeats,
                                             p.warmup / ROUNDS if turn else p.warmup,
                                             p.min_time / ROUNDS)
            for name, (_, _, note) in variants.items():
                report.add(Figure("cpu", name, shape, statistics.median(taken[name]),
                                  taken[name], note=f"{p.workers} worker processes{note}"))


def _run_kernels(p: Profile, report: Report, progress: Progress) -> None:
    """Kernel-only figures (``server.tools.kernels``): NumPy's, the bit kernel's, its
    packing stages, and Golly's QuickLife on the same torus when it is installed."""
    for shape in p.cpu_shapes:
        progress(f"kernels {shape[0]}x{shape[1]}")
        figures = measure_kernels(shape, p.kernel_repeats, p.kernel_fill)
        for stage in STAGES:
            if stage in figures.ms:
                report.add(Figure("kernel", stage, shape, figures.ms[stage],
                                  figures.samples[stage], note=KERNEL_NOTES[stage]))
            else:
                report.notes[f"kernel/{stage}/{shape[0]}x{shape[1]}"] = \
                    figures.notes.get(stage, "")


def _run_io(p: Profile, report: Report, progress: Progress, log: Path) -> None:
    small = p.io_shapes[0]
    for shape in p.io_shapes:
        cells = shape[0] * shape[1]
        if cells > p.book_cells:
            continue
        for name in BOOK_IO:
            progress(f"io {name} {cells} cells")
            kwargs = {"queue": {"threads": p.queue_threads},
                      "pool": {"max_workers": p.pool_threads}}.get(name, {})
            slow = name in ("serial", "queue")
            if slow and cells > p.serial_cells:
                base = report.get("io", name, small)
                assert base is not None
                report.add(Figure("io", name, shape, base.ms * cells / base.cells,
                                  measured=False,
                                  note=f"extrapolated from {base.cells} cells"))
                continue
            approach = book.APPROACHES[name](CONWAY, p.latency, **kwargs)
            try:
                samples = measure(approach.step, soup(shape),
                                  p.slow_repeats if slow else p.repeats,
                                  None if slow else 0.0)
            finally:
                approach.close()
            report.add(Figure("io", name, shape, statistics.median(samples), samples,
                              note=_BOOK_NOTES[name].format(p=p)))
    progress(f"starting lifenet with {p.workers} workers, --io-latency {p.latency:g}")
    with LifenetRig(p.workers, io_latency=p.latency, log=log) as rig:
        for shape in p.io_shapes:
            progress(f"io lifenet {shape[0] * shape[1]} cells")
            samples = measure(rig.step, soup(shape), p.repeats, 0.0)
            report.add(Figure("io", "lifenet", shape, statistics.median(samples), samples,
                              note=f"{p.workers} worker processes"))
    shape = p.io_target_shapes[0]
    progress(f"starting lifenet with keys (CURVE), --io-latency {p.latency:g}")
    with LifenetRig(p.workers, io_latency=p.latency, log=log, curve=True) as rig:
        progress(f"io lifenet-curve {shape[0] * shape[1]} cells")
        samples = measure(rig.step, soup(shape), p.repeats, 0.0)
        report.add(Figure("io", "lifenet-curve", shape, statistics.median(samples), samples,
                          note=f"{p.workers} worker processes, CURVE (keys)"))


def _best(f: Callable[[], object], repeats: int) -> list[float]:
    """Milliseconds of ``repeats`` runs of ``f`` (the figure is their best)."""
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        f()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def _run_snapshot(p: Profile, report: Report, progress: Progress) -> None:
    """Saving and reading a snapshot of a world with owners, beside ``openssl enc``."""
    shape = p.snapshot_shape
    rng = np.random.default_rng(1)
    codes = rng.choice(np.arange(4, dtype=np.uint8), size=shape, p=[.7, .2, .05, .05])
    state = WorldState(codes, 120, CONWAY, [], {"seed": 1, "fill": 0.3})
    key = SnapshotKey(b"benchmark key")
    iterations = p.snapshot_iterations

    def openssl_enc(src: Path, dst: Path, decrypt: bool = False) -> None:
        read, write = os.pipe()
        os.write(write, key.secret + b"\n")
        os.close(write)
        try:
            subprocess.run(["openssl", "enc", "-d" if decrypt else "-e", "-aes-256-cbc",
                            "-pbkdf2", "-md", "sha256", "-iter", str(iterations),
                            "-S", "0102030405060708", "-pass", f"fd:{read}", "-in", str(src),
                            "-out", str(dst)], pass_fds=(read,), check=True)
        finally:
            os.close(read)

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "plain").write_bytes(pack_state(state))
        (d / "empty").write_bytes(b"")
        runs: dict[str, Callable[[], object]] = {
            "pbkdf2": lambda: hashlib.pbkdf2_hmac("sha256", key.secret, b"s" * 16,
                                                  iterations),
            "openssl-kdf": lambda: openssl_enc(d / "empty", d / "e.out"),
            "enc": lambda: openssl_enc(d / "plain", d / "ct"),
            "dec": lambda: openssl_enc(d / "ct", d / "pt", decrypt=True),
            "pack": lambda: pack_state(state),
            "save": lambda: save_snapshot(d / "s.lns", state, key, iterations=iterations),
            "read": lambda: read_snapshot(d / "s.lns", key),
        }
        for name, run in runs.items():
            progress(f"snapshot {name} {shape[0]}x{shape[1]}")
            samples = _best(run, p.snapshot_repeats)
            report.add(Figure("snapshot", name, shape, min(samples), samples,
                              note=SNAPSHOT_PARTS[name]))
        progress(f"snapshot write-rle {shape[0]}x{shape[1]}")
        _, back = read_snapshot(d / "s.lns", key)
        samples = _best(lambda: write_world(d / "out.rle", back.grid(), back.rule,
                                            back.generation), 1)
        report.add(Figure("snapshot", "write-rle", shape, min(samples), samples,
                          note=SNAPSHOT_PARTS["write-rle"]))


_BOOK_NOTES = {
    "serial": "item 56: one cell after another",
    "threads": "item 57: a Thread per cell, LockingGrid",
    "queue": "item 58: Queue pipeline, {p.queue_threads} StoppableWorker threads",
    "pool": "item 59: ThreadPoolExecutor({p.pool_threads})",
    "asyncio": "item 60: a coroutine per cell, one event loop",
}


# -- the machine, the table, the plot --------------------------------------------------


def machine() -> dict[str, Any]:
    import zmq

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(), "cpu_model": model or platform.processor(),
        "python": platform.python_version(), "numpy": np.__version__,
        "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(),
        "platform": platform.platform(),
    }


def _cells_text(cells: int) -> str:
    return f"{cells:,}".replace(",", " ")


def _ms_text(ms: float) -> str:
    text = f"{ms:,.1f}" if ms < 10_000 else f"{ms / 1000:,.0f} s"
    return text.replace(",", " ")


def table(report: Report) -> str:
    """The figures as a plain-text table, with each one's ratio to its baseline."""
    lines = []
    p = report.profile
    sections = {"io": f"{p.latency * 1000:g} ms of I/O in every cell",
                "cpu": "no I/O: random soups"}
    for section, title in sections.items():
        base_name = "serial" if section == "io" else "python"
        how = f"median of {p.repeats}"
        if section == "cpu" and (p.warmup or p.min_time):
            how = (f"median of >= {p.repeats} over >= {p.min_time:g} s, after {p.warmup:g} s "
                   "of warm-up")
        lines.append(f"{title} (ms per generation, {how}; x = times faster than {base_name})")
        lines.append(f"  {'approach':<14} {'cells':>11} {'ms/gen':>12} {'x':>10}  note")
        figures = sorted((f for f in report.figures.values() if f.section == section),
                         key=lambda f: (f.cells, list(report.figures).index(f.key)))
        for f in figures:
            base = report.get(section, base_name, f.shape)
            ratio = "-"
            if base is not None and f.ms > 0:
                ratio = f"{base.ms / f.ms:,.1f}".replace(",", " ")
            ms = _ms_text(f.ms) + ("*" if not f.measured else "")
            extra = ""
            if section == "cpu" and f.approach == "lifenet":
                numpy = report.get("cpu", "numpy", f.shape)
                if numpy is not None:
                    extra = f"; {numpy.ms / f.ms:.3f}x NumPy"
            plain = report.get(section, "lifenet", f.shape)
            if f.approach.startswith("lifenet-") and plain is not None and plain.ms > 0:
                extra = f"; {f.ms / plain.ms:.2f}x the plain generation"
            lines.append(f"  {f.approach:<14} {_cells_text(f.cells):>11} {ms:>12} "
                         f"{ratio:>10}  {f.note}{extra}")
        lines.append("")
    lines.append("  * extrapolated linearly from the smallest world measured")
    lines.append("")
    kernels = [f for f in report.figures.values() if f.section == "kernel"]
    if kernels:
        lines.append(f"kernels alone, in this process (ms per generation, median of "
                     f"{p.kernel_repeats}; soups of fill {p.kernel_fill:g}, B3/S23)")
        for f in kernels:
            numpy = report.get("kernel", "numpy", f.shape)
            extra = f"; {numpy.ms / f.ms:.2f}x numpy" if numpy and f.approach in (
                "bits", "golly") else ""
            if f.approach == "bits-wire":
                old = report.get("kernel", "numpy-wire", f.shape)
                golly = report.get("kernel", "golly", f.shape)
                extra = (f"; {old.ms / f.ms:.2f}x numpy-wire" if old else "") + \
                    (f", {golly.ms / f.ms:.2f}x golly" if golly else "")
            lines.append(f"  {f.approach:<14} {_cells_text(f.cells):>11} "
                         f"{f.ms:>12.3f}  {f.note}{extra}")
        for key, why in report.notes.items():
            if key.startswith("kernel/"):
                lines.append(f"  {key.split('/')[1]:<14} {key.split('/')[2]:>11} "
                             f"{'-':>12}  {why}")
        lines.append("")
    snapshots = [f for f in report.figures.values() if f.section == "snapshot"]
    if snapshots:
        h, w = snapshots[0].shape
        lines.append(f"snapshots of a {h}x{w} world with owners (ms, best of "
                     f"{p.snapshot_repeats}; PBKDF2 {p.snapshot_iterations} iterations)")
        for f in snapshots:
            alone = {"save": "enc", "read": "dec"}.get(f.approach)
            base = report.get("snapshot", alone, f.shape) if alone else None
            extra = f"; {f.ms / base.ms:.2f}x openssl {alone} alone" if base else ""
            lines.append(f"  {f.approach:<12} {_ms_text(f.ms):>10}  {f.note}{extra}")
        lines.append("")
    lines.append("targets")
    for t in report.targets():
        unit = "ms" if t["kind"] == "ms" else "x"
        value = t["value"]
        text = f"{value:.3f}" if value < 1 else f"{value:.1f}" if value < 1000 else \
            f"{value:,.0f}".replace(",", " ")
        if "x plain" in t["target"]:
            text = f"{value:.2f}"
        lines.append(f"  {'met    ' if t['met'] else 'NOT MET'} {t['target']:<42} "
                     f"{text} {unit}")
    lines.append(f"\nwall time {report.wall_s:.1f} s")
    return "\n".join(lines)


def plot(report: Report, path: Path) -> None:
    """ms per generation against cells, log-log, one line per approach; needs matplotlib."""
    try:
        import matplotlib
    except ImportError as e:
        raise ConfigError("--plot needs matplotlib: pip install 'lifenet[bench]'") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = report.profile
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    titles = {"io": f"{p.latency * 1000:g} ms of I/O in every cell",
              "cpu": "no I/O (random soups)"}
    for ax, (section, title) in zip(axes, titles.items(), strict=True):
        approaches = dict.fromkeys(f.approach for f in report.figures.values()
                                   if f.section == section)
        for approach in approaches:
            figs = sorted((f for f in report.figures.values()
                           if f.section == section and f.approach == approach),
                          key=lambda f: f.cells)
            measured = [f for f in figs if f.measured]
            line = ax.plot([f.cells for f in measured], [f.ms for f in measured], "o-",
                           label=approach, linewidth=2 if approach == "lifenet" else 1.2)[0]
            guessed = [f for f in figs if not f.measured]
            if guessed:
                last = measured[-1:] if measured else []
                ax.plot([f.cells for f in last + guessed], [f.ms for f in last + guessed],
                        "o--", mfc="none", color=line.get_color(),
                        label=f"{approach} (extrapolated)")
        if section == "io":
            ax.axhline(p.latency * 1000, color="grey", linestyle=":", linewidth=1)
            ax.annotate(f"one I/O ({p.latency * 1000:g} ms)", (0.99, p.latency * 1000 * 0.93),
                        xycoords=("axes fraction", "data"), ha="right", va="top",
                        color="grey", fontsize=8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("cells in the world")
        ax.set_ylabel("ms per generation")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    m = machine()
    fig.suptitle(f"lifenet bench ({p.name}): {p.workers} workers; {m['cpus']} x "
                 f"{m['cpu_model']}, Python {m['python']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@contextlib.contextmanager
def progress_bar(total: int) -> Iterator[Progress]:
    """A plain progress bar on stderr; yields the function that advances it."""
    import click

    with click.progressbar(length=total, label="lifenet bench", file=sys.stderr,
                           show_eta=False, item_show_func=lambda s: s,
                           width=24) as bar:
        started = [False]

        def advance(label: str) -> None:
            if started[0]:
                bar.update(1, label)
            else:
                started[0] = True
                bar.update(0, label)

        yield advance
        bar.update(1, "done")
