"""The generation step: freeze, cut into tiles, fan out, fan in (Effective Python 53-58).

``Engine.step`` runs in the thread that owns the world. It freezes generation ``g``,
cuts it into batches (tiles with a one-cell halo, so a worker can count every neighbour
without asking for more), puts them on a bounded ``ClosableQueue`` served by a fixed
pool of ``Dispatcher`` threads, and collects one ``Outcome`` per batch. The answers are
written by the dispatchers into generation ``g + 1``'s ``LockingGrid``. A failed batch
becomes a ``SimulationError`` naming its cells, raised here, in the stepping thread.

The result never depends on the number of workers, on which worker answered or in what
order: every batch is a pure function of the frozen generation, applied exactly once.
"""

from __future__ import annotations

import math
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from server.dispatch import Answer, Batch, Dispatcher
from shared.errors import Closed, SimulationError
from shared.grid import Grid, LockingGrid, pack_bits
from shared.malloc import keep_freed_memory
from shared.pipeline import ClosableQueue, Outcome
from shared.rules import Rule

MIN_BATCH_CELLS = 1024
CELLS_PER_BAND = 1 << 20  # below this, another round trip costs more than it saves


@dataclass(frozen=True)
class Tiling:
    """How a world is cut: tiles of ``h`` rows by ``w`` columns (edges may be smaller)."""

    h: int
    w: int

    def cut(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """Every tile as ``(y, x, h, w)``, row by row; together they cover the world once."""
        return [(y, x, min(self.h, height - y), min(self.w, width - x))
                for y in range(0, height, self.h) for x in range(0, width, self.w)]


def choose_tiling(height: int, width: int, slots: int, workers: int | None = None) -> Tiling:
    """Full-width bands, about one per dispatch slot, of at least ``MIN_BATCH_CELLS``.

    Bands of whole rows are contiguous in the padded world, so they go on the wire
    without a copy; more bands than slots would only add round trips. When the number
    of live ``workers`` is known, a band is about ``CELLS_PER_BAND`` cells and there
    are at most two per worker (its default credit): each band costs a round trip of
    about a millisecond, which a 1 M-cell band's compute (0.6 ms) does not repay.
    """
    cells = height * width
    bands = max(1, min(slots, cells // MIN_BATCH_CELLS, height))
    if workers:
        bands = max(1, min(bands, 2 * workers, math.ceil(cells / CELLS_PER_BAND)))
    return Tiling(math.ceil(height / bands), width)


class Engine:
    """Steps a world one generation at a time through the dispatcher pool."""

    def __init__(self, context: zmq.Context[Any], grid: Grid, rule: Rule, *,
                 generation: int = 0, dispatchers: int = 16, tiling: Tiling | None = None,
                 max_attempts: int = 5, workers: Callable[[], int] | None = None) -> None:
        self.grid = grid
        self.rule = rule
        self.generation = generation
        self.tiling = tiling  # None: chosen every step from the world and the workers
        self.workers = workers  # how many workers are live now, when known
        self.stop_event = threading.Event()
        self.in_queue: ClosableQueue[Batch] = ClosableQueue(maxsize=2 * dispatchers)
        self.out_queue: queue.Queue[Outcome[Batch, Answer]] = queue.Queue()
        self.last_min_wait: float | None = None  # shortest per-cell I/O wait, last step
        self.last_answers: list[Answer] = []
        self.dispatchers = [
            Dispatcher(context, self.in_queue, self.out_queue, self.stop_event,
                       max_attempts=max_attempts, name=f"dispatcher-{i}")
            for i in range(dispatchers)]

    def start(self) -> None:
        keep_freed_memory()  # each step allocates world-sized arrays: reuse, not page faults
        for d in self.dispatchers:
            d.start()

    def stop(self) -> None:
        """Stop flag first, then close the queue once per thread, then join them."""
        self.stop_event.set()
        for _ in self.dispatchers:
            self.in_queue.close()
        for d in self.dispatchers:
            d.join(timeout=5)

    @property
    def resent(self) -> int:
        return sum(d.resent for d in self.dispatchers)

    def step(self) -> Grid:
        """Compute the next generation, make it current and return it."""
        frozen = self.grid.frozen()
        padded = frozen.padded()
        target = LockingGrid(frozen.height, frozen.width)
        rule = str(self.rule)
        tiling = self.tiling or choose_tiling(
            frozen.height, frozen.width, len(self.dispatchers),
            self.workers() if self.workers else None)
        tiles = tiling.cut(frozen.height, frozen.width)
        # A world of neutral cells travels one bit a cell: an eighth of the bytes.
        top = int(frozen.codes.max(initial=0))
        packed = top <= 1
        batches = []
        for i, (y, x, h, w) in enumerate(tiles):
            tile = np.ascontiguousarray(padded[y:y + h + 2, x:x + w + 2])
            batches.append(Batch(self.generation, i, y, x, h, w,
                                 pack_bits(tile) if packed else tile, target, rule,
                                 packed=packed, tile_max=top))
        pending = deque(batches)
        failures: list[Outcome[Batch, Answer]] = []
        answers: list[Answer] = []
        done = 0
        while done < len(batches):
            self._check_stop()
            # Feed the bounded queue without blocking, so outcomes are collected meanwhile.
            while pending:
                try:
                    self.in_queue.put_nowait(pending[0])
                except queue.Full:
                    break
                pending.popleft()
            try:
                outcome = self.out_queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if outcome.item.gen != self.generation:
                continue  # an outcome of an aborted step
            done += 1
            if outcome.error is not None:
                failures.append(outcome)
            elif outcome.result is not None:
                answers.append(outcome.result)
        if failures:
            errors = "; ".join(str(f.error) for f in failures[:3])
            raise SimulationError(f"generation {self.generation} failed: {errors}",
                                  [f.item.cells for f in failures])
        if target.applied() != len(batches):
            raise SimulationError(
                f"generation {self.generation}: {target.applied()} of {len(batches)} "
                "batches were applied", [b.cells for b in batches])
        self.grid = Grid(target.height, target.width, target.codes)
        self.generation += 1
        self.last_answers = answers
        waits = [a.min_wait for a in answers if a.min_wait is not None]
        self.last_min_wait = min(waits) if waits else None
        return self.grid

    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            raise Closed("server stopping")
