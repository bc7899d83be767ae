"""The book's ways to step a world whose every cell does blocking I/O (Effective Python 53-60).

In the book, ``game_logic`` calls ``my_socket.recv(100)`` before it answers, and each
chapter runs the same generation in a new way. Each is kept here, runnable, and fed the
same per-cell I/O so that ``lifenet bench`` can put them next to lifenet's engine:

    ``Serial``         item 56's ``simulate``: one cell after another; costs cells x I/O
    ``ThreadPerCell``  item 57: a new ``Thread`` for every cell, writing a ``LockingGrid``
                       (reads go to the frozen generation, which needs no lock)
    ``QueuePipeline``  item 58: ``count_neighbors`` in the caller, ``game_logic`` in N
                       ``StoppableWorker`` threads between two ``ClosableQueue``s
    ``Pool``           item 59: ``ThreadPoolExecutor.submit`` for every cell
    ``AsyncIO``        item 60: ``async`` ``game_logic``, every cell a coroutine, one loop

Every one returns exactly what the reference ``shared.life.simulate`` returns, owners
included (tested cell for cell in ``tests/unit/test_book.py``).

The I/O is ``time.sleep(latency)`` (``asyncio.sleep`` for the coroutines). Like a blocking
``recv`` it releases the GIL and completes no earlier than ``latency`` after it began, and
unlike a real socket it needs no file descriptor: a thread per cell over 10 000 cells would
need 10 000 socket pairs (twice the descriptors, above this machine's ``ulimit -n``) and a
sender that itself competes for the GIL, which would measure the sender, not the pattern.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from queue import Queue
from threading import Thread
from typing import Protocol

from shared.errors import SimulationError
from shared.grid import Grid, LockingGrid
from shared.life import Get, GetOwner, Set, count_neighbors, game_logic, settle
from shared.pipeline import ClosableQueue, Outcome, StoppableWorker
from shared.rules import CONWAY, Rule

IO = Callable[[], None]
Cell = tuple[int, int]


def blocking_io(latency: float) -> IO:
    """The book's ``my_socket.recv(100)``: a blocking wait of ``latency`` seconds."""
    if latency <= 0:
        return lambda: None

    def io() -> None:
        time.sleep(latency)

    return io


def game_logic_io(state: str, neighbors: int, rule: Rule, io: IO) -> str:
    """``game_logic`` that first waits for this cell's I/O, as in the book."""
    io()
    return game_logic(state, neighbors, rule)


def step_cell_io(y: int, x: int, get: Get, get_owner: GetOwner, set_: Set, rule: Rule,
                 io: IO) -> None:
    """The book's ``step_cell`` with a ``game_logic`` that does blocking I/O."""
    state = get(y, x)
    neighbors = count_neighbors(y, x, get)
    next_state = game_logic_io(state, neighbors, rule, io)
    settle(y, x, state, next_state, get, get_owner, set_)


def _cells(grid: Grid) -> list[Cell]:
    return [(y, x) for y in range(grid.height) for x in range(grid.width)]


class BookApproach(Protocol):
    """One of the book's ways to compute a generation; ``close`` frees its threads."""

    name: str

    def step(self, grid: Grid) -> Grid: ...

    def close(self) -> None: ...


class Serial:
    """Item 56: every cell in turn, so a generation costs the sum of every cell's I/O."""

    name = "serial"

    def __init__(self, rule: Rule = CONWAY, latency: float = 0.0) -> None:
        self.rule = rule
        self.io = blocking_io(latency)

    def step(self, grid: Grid) -> Grid:
        """The book's ``simulate`` with a blocking ``game_logic``."""
        out = Grid(grid.height, grid.width)
        for y, x in _cells(grid):
            step_cell_io(y, x, grid.get, grid.owner, out.set, self.rule, self.io)
        return out

    def close(self) -> None:
        pass


class ThreadPerCell:
    """Item 57: a new ``Thread`` per cell, all writing one ``LockingGrid``.

    Costs a thread start per cell (tens of microseconds, and memory for each stack) on
    top of one I/O. An exception in a thread is not lost here (the book shows it would
    be): it is kept and raised as ``SimulationError`` once every thread has ended.
    """

    name = "threads"

    def __init__(self, rule: Rule = CONWAY, latency: float = 0.0) -> None:
        self.rule = rule
        self.io = blocking_io(latency)

    def step(self, grid: Grid) -> Grid:
        """The book's ``simulate_threaded``: a thread per ``step_cell``, joined."""
        source = grid.frozen()
        out = LockingGrid(grid.height, grid.width)
        failed: list[tuple[Cell, BaseException]] = []

        def run(y: int, x: int) -> None:
            try:
                step_cell_io(y, x, source.get, source.owner, out.set, self.rule, self.io)
            except Exception as e:
                failed.append(((y, x), e))  # list.append is atomic

        threads = [Thread(target=run, args=cell) for cell in _cells(grid)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        _raise_failures("threads", failed)
        return Grid(out.height, out.width, out.codes)

    def close(self) -> None:
        pass


Item = tuple[int, int, str, int]      # y, x, state, neighbors
Verdict = tuple[int, int, str, str]   # y, x, state, next state


class QueuePipeline:
    """Item 58: the caller counts neighbours, N ``StoppableWorker`` threads run ``game_logic``.

    A generation costs about ``cells / threads`` I/Os: the pipeline overlaps only as many
    waits as it has threads. The threads live as long as the pipeline (``close`` them).
    """

    name = "queue"

    def __init__(self, rule: Rule = CONWAY, latency: float = 0.0, threads: int = 5) -> None:
        self.rule = rule
        self.io = blocking_io(latency)
        self.in_queue: ClosableQueue[Item] = ClosableQueue()
        self.out_queue: Queue[Outcome[Item, Verdict]] = Queue()
        self.threads = [StoppableWorker(self._game_logic_thread, self.in_queue,
                                        self.out_queue, name=f"game-logic-{i}")
                        for i in range(threads)]
        for thread in self.threads:
            thread.start()

    def _game_logic_thread(self, item: Item) -> Verdict:
        y, x, state, neighbors = item
        return y, x, state, game_logic_io(state, neighbors, self.rule, self.io)

    def step(self, grid: Grid) -> Grid:
        """The book's ``simulate_pipeline``: cells in, verdicts out, failures re-raised
        as ``SimulationError``."""
        for y, x in _cells(grid):
            self.in_queue.put((y, x, grid.get(y, x), count_neighbors(y, x, grid.get)))
        self.in_queue.join()
        out = Grid(grid.height, grid.width)
        failed: list[tuple[Cell, BaseException]] = []
        while not self.out_queue.empty():
            outcome = self.out_queue.get()
            if outcome.error is not None:
                failed.append((outcome.item[:2], outcome.error))
            elif outcome.result is not None:
                y, x, state, next_state = outcome.result
                settle(y, x, state, next_state, grid.get, grid.owner, out.set)
        _raise_failures("queue", failed)
        return out

    def close(self) -> None:
        for _ in self.threads:
            self.in_queue.close()
        for thread in self.threads:
            thread.join(timeout=5)


class Pool:
    """Item 59: every cell's ``step_cell`` submitted to a ``ThreadPoolExecutor``.

    Threads are made once; a generation costs about ``cells / max_workers`` I/Os.
    """

    name = "pool"

    def __init__(self, rule: Rule = CONWAY, latency: float = 0.0,
                 max_workers: int = 1000) -> None:
        self.rule = rule
        self.io = blocking_io(latency)
        self.pool = ThreadPoolExecutor(max_workers=max_workers)

    def step(self, grid: Grid) -> Grid:
        """The book's ``simulate_pool``: ``submit`` every cell, then collect."""
        source = grid.frozen()
        out = LockingGrid(grid.height, grid.width)
        futures = [(cell, self.pool.submit(step_cell_io, *cell, source.get, source.owner,
                                           out.set, self.rule, self.io))
                   for cell in _cells(grid)]
        failed: list[tuple[Cell, BaseException]] = []
        for cell, future in futures:
            error = future.exception()
            if error is not None:
                failed.append((cell, error))
        _raise_failures("pool", failed)
        return Grid(out.height, out.width, out.codes)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class AsyncIO:
    """Item 60: ``game_logic`` is a coroutine; every cell's wait overlaps in one loop."""

    name = "asyncio"

    def __init__(self, rule: Rule = CONWAY, latency: float = 0.0) -> None:
        self.rule = rule
        self.latency = latency

    async def _step_cell(self, y: int, x: int, grid: Grid, out: Grid) -> None:
        state = grid.get(y, x)
        neighbors = count_neighbors(y, x, grid.get)
        await asyncio.sleep(self.latency)  # the cell's I/O, as a coroutine
        next_state = game_logic(state, neighbors, self.rule)
        settle(y, x, state, next_state, grid.get, grid.owner, out.set)

    async def _simulate(self, grid: Grid) -> Grid:
        out = Grid(grid.height, grid.width)
        results = await asyncio.gather(
            *(self._step_cell(y, x, grid, out) for y, x in _cells(grid)),
            return_exceptions=True)
        failed = [(cell, r) for cell, r in zip(_cells(grid), results, strict=True)
                  if isinstance(r, BaseException)]
        _raise_failures("asyncio", failed)
        return out

    def step(self, grid: Grid) -> Grid:
        """The book's ``asyncio.run(simulate(grid))``: a coroutine per cell."""
        return asyncio.run(self._simulate(grid))

    def close(self) -> None:
        pass


APPROACHES: dict[str, Callable[..., BookApproach]] = {
    "serial": Serial, "threads": ThreadPerCell, "queue": QueuePipeline, "pool": Pool,
    "asyncio": AsyncIO,
}


def _raise_failures(how: str, failed: list[tuple[Cell, BaseException]]) -> None:
    if failed:
        (y, x), first = failed[0]
        raise SimulationError(
            f"{how}: {len(failed)} cells failed, first ({y}, {x}): {first!r}",
            [(y, x, 1, 1) for (y, x), _ in failed]) from first
