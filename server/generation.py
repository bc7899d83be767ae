"""One generation, top to bottom: the book's ``simulate_pipeline`` (Effective Python item 58).

``Engine.step`` runs in the thread that owns the world (the server's main thread) and
reads as the generation it makes:

0. **Let the lobby catch up**: when players are served, wait (one decision window at
   most) until the lobby thread has read everything that came before the last round
   closed (``DecisionRound.catch_up``), so that a new round's answers are not read
   behind the old ones.
1. **Freeze** generation ``g`` (a read-only view) and count its live cells per owner.
2. **Ask the players** first: each one that owns cells gets the ``game_logic`` requests
   for its cells (``DecisionRound.ask``), so that they think while the workers compute.
3. **Fan out** the workers' part: cut ``g`` into batches (tiles with a one-cell halo, so
   a worker can count every neighbour without asking for more) and put them on a bounded
   ``ClosableQueue`` served by a fixed pool of ``Dispatcher`` threads (the book's
   ``StoppableWorker``), each with its own socket to the broker and the workers.
4. **Fan in** every answer through generation ``g + 1``'s ``LockingGrid``: the
   dispatchers paste the workers' tiles (each batch at most once); then, here, the zones
   of the live shields (fresh placements evolving as if alone, ``--protect``; read once
   per step, before asking, so the players' verdicts, the zones and the checks of
   their decisions see the same shields whatever the lobby drops meanwhile), the
   players' valid decisions, the cells of players whose grace ended (they turn neutral),
   the end of a round (``--round``: the winner, then every cell neutral) and the
   placements that land. A failed batch becomes a ``SimulationError`` naming its cells,
   raised in this thread; nothing of the failed generation is kept.
5. **Publish** ``g + 1``, now the current generation: the players' points grow by their
   live cells, the players are told what was decided and what landed, and every viewer
   gets the frame (or the delta) with the scoreboard, the round, the shields and the
   players away.

The result never depends on the number of workers, on which worker answered or in what
order: every batch is a pure function of the frozen generation, applied exactly once,
and the players' answers are checked against the rule's verdict on the frozen
generation before they are written.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import zmq

from server.dispatch import LOCAL, Answer, Batch, Dispatcher
from server.players.board import Board, Ranking
from server.players.decisions import Decided, DecisionRound
from server.players.registry import Landed, PlayerRegistry
from server.players.rounds import Result, Rounds, Standing
from server.players.shields import Shield, evolve_zones, rows_cols
from server.publisher import FramePublisher
from server.replay.inputs import Input, Neutral, Place, RoundEnd, Zones
from server.verify import UNVERIFIED, LocalKernel, Verification
from shared import bitlife
from shared.errors import Closed, SimulationError
from shared.grid import (
    NEUTRAL_CODE,
    Codes,
    Grid,
    LockingGrid,
    narrowest,
    pack_bits,
    pack_words,
    player_code,
)
from shared.kernel import rule_table, step_tile
from shared.malloc import keep_freed_memory
from shared.pipeline import ClosableQueue, Outcome
from shared.rules import Rule

log = logging.getLogger("lifenet.generation")

MIN_BATCH_CELLS = 1024
CELLS_PER_BAND = 1 << 20  # below this, another round trip costs more than it saves
# A neutral world of this many cells or more is kept packed (one bit a cell) from one
# generation to the next, and its bands travel as words (``rows`` batches): its bands
# are large enough for the bit kernel to be the faster one (``bitlife.MIN_CELLS``).
PACKED_MIN_CELLS = bitlife.MIN_CELLS
NOBODY_ASKED = np.zeros((0, 0), np.uint8)  # the codes ``ask`` gets when it reads none
SERVER = -1  # the server itself, in a plan of bands: its own share (``Engine.share``)
SHARE_STEPS = 8       # the server's share of a packed world is k/8 of its rows, k 0..8
EXPLORE_EVERY = 64    # every so many generations, another share is tried
SMOOTHING = 0.3       # the weight of the newest time of a share
STEPPERS = 2  # threads stepping the server's own share
LOCAL_BAND_CELLS = 1 << 23  # the server's share is cut in bands of about this many
#                             cells, stepped at once by its stepper threads
OWNED_BAND_CELLS = 1 << 19  # ... and of a world of owners (a byte a cell), in these


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


Cut = tuple[int, int, int, int, int]  # y, x, h, w, and the worker chosen for it (0: any)


def plan_bands(height: int, width: int, slots: int,
               rates: dict[int, float | None]) -> list[Cut]:
    """Bands sized by each worker's measured speed (adaptive batching).

    As many workers as the world is worth (one per ``CELLS_PER_BAND`` cells; the
    fastest first) each get a share of the rows in proportion to their speed, as one
    band, or two when it is large (so a worker computes one while the other travels),
    with that worker chosen for it. A slow worker gets a small share, or none when the
    world needs fewer workers than there are: it does not set the pace. A worker not
    measured yet counts as the median of those measured, so that it gets a share (and
    so a measure) without one that never answers turning adaptivity off; while none is
    measured the bands are equal and go to whoever is free.
    """
    cells = height * width
    measured = sorted(r for r in rates.values() if r is not None and r > 0)
    if not measured:
        tiling = choose_tiling(height, width, slots, len(rates) or None)
        return [(y, x, h, w, 0) for y, x, h, w in tiling.cut(height, width)]
    median = measured[len(measured) // 2]
    speed = {worker: float(rate) if rate is not None and rate > 0 else median
             for worker, rate in rates.items()}
    n = max(1, min(len(speed), math.ceil(cells / CELLS_PER_BAND), height, slots,
                   max(1, cells // MIN_BATCH_CELLS)))
    chosen = sorted(speed, key=lambda worker: -speed[worker])[:n]
    total = sum(speed[worker] for worker in chosen)
    rows = [max(1, int(height * speed[worker] / total)) for worker in chosen]
    rows[0] += height - sum(rows)  # what rounding left goes to the fastest
    while rows[0] < 1:  # many one-row shares in a low world: take from the slowest
        slowest = max(i for i in range(1, len(rows)) if rows[i] > 0)
        rows[slowest] -= 1
        rows[0] += 1
    cuts: list[Cut] = []
    y = 0
    for worker, h in zip(chosen, rows, strict=True):
        if h <= 0:
            continue
        halves = 2 if h * width > CELLS_PER_BAND and h >= 2 and 2 * len(chosen) <= slots \
            else 1
        first = h // halves
        for part in ([first, h - first] if halves == 2 else [h]):
            cuts.append((y, 0, part, width, worker))
            y += part
    return cuts


def plan_shared(height: int, width: int, slots: int, rates: dict[int, float | None],
                share: int, band_cells: int = LOCAL_BAND_CELLS) -> list[Cut]:
    """``plan_bands`` for the workers' part of a large world, after the server's own
    share: its first ``share`` eighths of the rows, in bands of about ``band_cells``
    cells (two at least when it is large, so that its two stepper threads step them
    at once: NumPy lets the GIL go)."""
    mine = height if share >= SHARE_STEPS else height * share // SHARE_STEPS
    cuts: list[Cut] = []
    if mine:
        bands = max(1, min(mine, slots // 2, math.ceil(mine * width / band_cells)))
        if mine * width > min(CELLS_PER_BAND, 2 * band_cells):
            bands = max(bands, min(2, mine))
        step = math.ceil(mine / bands)
        cuts = [(y, 0, min(step, mine - y), width, SERVER) for y in range(0, mine, step)]
    if mine < height:
        cuts += [(y + mine, x, h, w, worker) for y, x, h, w, worker
                 in plan_bands(height - mine, width, slots, rates)]
    return cuts


class Sharing:
    """How much of a large world the server steps itself: the share (in eighths of
    the rows, 0 to all) whose fan-out took the least time lately. Every share is tried
    first, then one other in turn every ``EXPLORE_EVERY`` generations, so that the
    share follows what the machine does (its cores, the workers' speed, the round
    trips; the times are not smooth in the share: a world wholly here needs no round
    trip at all). Exactness does not depend on it: every share makes the same
    generation."""

    def __init__(self) -> None:
        self.current = SHARE_STEPS
        self.seconds: dict[int, float] = {}
        self.count = 0
        self._next = 0  # the share tried next

    def choose(self) -> int:
        """The share of the next generation."""
        self.count += 1
        if len(self.seconds) <= SHARE_STEPS or self.count % EXPLORE_EVERY == 0:
            share = self._next
            self._next = (self._next + 1) % (SHARE_STEPS + 1)
            return share
        return self.current

    def measured(self, share: int, seconds: float) -> None:
        """A generation with ``share`` took ``seconds`` to fan out and in."""
        known = self.seconds.get(share)
        self.seconds[share] = seconds if known is None else \
            SMOOTHING * seconds + (1 - SMOOTHING) * known
        self.current = min(self.seconds, key=self.seconds.__getitem__)


def lying_keys(answers: Iterable[Answer]) -> set[tuple[int, bytes]]:
    """Every (worker, key) pair whose answers a lie caught among ``answers`` taints:
    the liar itself, and every answer that came with its key, under any worker id
    (another connection with the same key, or the liar come back under a new id)."""
    answers = list(answers)
    marks = {a.mark for a in answers if a.lied}
    return {(a.worker, a.mark) for a in answers if a.worker != LOCAL and a.mark in marks}


WARM_UP_GENERATIONS = 10  # a server's first generations pay for page faults, first rates
STAGES = ("lobby", "freeze", "ask", "workers", "players", "count", "score", "publish")


class Clock:
    """One generation's laps: the time since the last lap goes to the stage named."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = self.laps.get(stage, 0.0) + now - self.last
        self.last = now


@dataclass
class Stages:
    """Seconds spent in each stage of ``Engine.step`` (``STAGES``), summed over the
    generations made since the last ``reset``: wait for the lobby to read what came
    before the last round closed, freeze (and pack) ``g``, ask the
    players, the workers' fan-out and fan-in, the players' fan-in, count (make ``g + 1``
    and its board), score (rounds, the replay log), publish."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    generations: int = 0
    skip: int = WARM_UP_GENERATIONS  # the first ones are not counted: warm-up

    @staticmethod
    def start() -> Clock:
        return Clock()

    def add(self, clock: Clock) -> None:
        if self.skip > 0:
            self.skip -= 1
            return
        for stage, spent in clock.laps.items():
            self.seconds[stage] = self.seconds.get(stage, 0.0) + spent
        self.generations += 1

    def reset(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.generations = 0
        self.skip = 0

    def ms(self) -> dict[str, float]:
        """Milliseconds a generation in each stage, on average."""
        n = max(1, self.generations)
        return {stage: spent * 1000 / n for stage, spent in self.seconds.items()}

    def line(self) -> str:
        return ", ".join(f"{stage} {ms:.2f}" for stage, ms in self.ms().items())


@dataclass(frozen=True)
class Latest:
    """The newest generation as other threads may read it (``status``): replaced
    whole after every generation, never changed in place."""

    generation: int
    grid: Grid
    board: Board
    ms: float = 0.0
    round: Standing | None = None  # with rounds: the round as it stands at this generation


@dataclass
class Players:
    """The players' part of a generation: who they are, their decision round, and the
    game's rounds (``None``: no rounds)."""

    registry: PlayerRegistry
    round: DecisionRound
    rounds: Rounds | None = None


@dataclass
class Publishing:
    """Where a generation goes when it is made, and what the frames say besides cells."""

    publisher: FramePublisher
    info: Callable[[], dict[str, Any]] = field(default=dict)  # e.g. live workers


class Engine:
    """The world and its generations: ``step`` makes the next one (see the module doc).

    ``players`` and ``publishing`` are the server's; without them (the bench) a step is
    the workers' part alone.
    """

    def __init__(self, context: zmq.Context[Any], grid: Grid, rule: Rule, *,
                 generation: int = 0, dispatchers: int = 16, tiling: Tiling | None = None,
                 max_attempts: int = 5,
                 rates: Callable[[], dict[int, float | None]] | None = None,
                 broker_alive: Callable[[], bool] = lambda: True,
                 players: Players | None = None,
                 publishing: Publishing | None = None,
                 fallback_after: float | None = None,
                 verification: Verification = UNVERIFIED) -> None:
        self.grid = grid
        self.rule = rule
        self.generation = generation
        self.tiling = tiling  # None: planned every step from the world and the workers
        self.rates = rates  # the live workers' measured speeds, by id, when known
        self.verification = verification
        self.kernel = LocalKernel()
        self.computed_locally = 0  # batches the server computed itself
        self.checked = 0           # answers the server checked
        self.caught = 0            # answers that were wrong
        self.players = players
        self.publishing = publishing
        self.stop_event = threading.Event()
        self.in_queue: ClosableQueue[Batch] = ClosableQueue(maxsize=2 * dispatchers)
        self.out_queue: queue.Queue[Outcome[Batch, Answer]] = queue.Queue()
        self.last_min_wait: float | None = None  # shortest per-cell I/O wait, last step
        self.last_answers: list[Answer] = []
        self.table = rule_table(rule)  # the shields' own steps
        self.packed_min_cells = PACKED_MIN_CELLS
        # The server steps a share of a packed world itself (``Sharing``); never while
        # workers simulate per-cell I/O (``--io-latency``: the server has none to
        # simulate), nor with a fixed ``--tile``.
        self.share = True
        self.sharing = Sharing()
        # The same for a large world of owners (stepped a byte a cell, whose round
        # trips carry eight times the bytes: measured apart).
        self.sharing_owned = Sharing()
        self.shared_locally = 0  # batches of the server's own share
        self.steppers: ThreadPoolExecutor | None = None  # which step it
        self.stages = Stages()  # where the generations' time went (``lifenet bench``)
        self.latest = Latest(generation, grid, board_of(grid),
                             round=self._standing(generation))
        self.ranking = Ranking()  # the players' places, made as each generation is published
        # What changed the step's generation beyond the rule (server.replay.inputs), and
        # who records it (``--record``): called with the generation made, the inputs and
        # the world, before it is published.
        self.inputs: list[Input] = []
        self.record: Callable[[int, list[Input], Codes], None] | None = None
        self.dispatchers = [
            Dispatcher(context, self.in_queue, self.out_queue, self.stop_event,
                       max_attempts=max_attempts, name=f"dispatcher-{i}",
                       fallback_after=fallback_after, verification=verification,
                       kernel=self.kernel, broker_alive=broker_alive)
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
        if self.steppers is not None:
            self.steppers.shutdown(wait=True)

    @property
    def resent(self) -> int:
        return sum(d.resent for d in self.dispatchers)

    # -- one generation -------------------------------------------------------------------

    def step(self) -> Grid:
        """Make generation ``g + 1`` from ``g``, make it current, publish it, return it.

        This is lifenet's ``simulate_pipeline``: the steps are numbered as in the module
        docstring. ``SimulationError`` when a batch cannot be computed (the world stays
        at ``g``; the loop tries again); ``Closed`` when the server is stopping.
        """
        began = time.monotonic()
        clock = self.stages.start()
        # 0. A lobby still reading the last round's answers gets the time to read them
        # (one decision window at most) before the players are asked again.
        if self.players is not None:
            self.players.round.catch_up()
        clock.lap("lobby")
        gen = self.generation
        self.inputs = []
        # 1. Freeze g, and its live cells per owner (counted when g was made). A large
        # neutral world is stepped packed (and stays so while it is neutral).
        board = self.latest.board
        if self.latest.grid is not self.grid or \
                (not self.grid.packed and board.codes is not self.grid.codes):
            board = board_of(self.grid)  # the world was replaced since
        frozen = self.freeze(self.grid)
        clock.lap("freeze")
        # 2. The players are asked before the fan-out, so they answer while workers work.
        # The live shields are read once: asking, the zones and the decisions' checks
        # all use this list, even if the lobby drops one of them meanwhile.
        shields: list[Shield] = []
        if self.players is not None:
            shields = self.players.registry.step_shields(gen)
            # In a packed world no player owns a cell, so nobody is asked for one: its
            # codes are made for ``ask`` only when someone is there to ask.
            codes = frozen.codes if not frozen.packed \
                or self.players.registry.connected() else NOBODY_ASKED
            self.players.round.ask(gen, codes, board, shields)
        clock.lap("ask")
        # 3. Fan out to the workers; the dispatchers fan their tiles in (paste_once).
        target = self.target(frozen)
        self.fan_out(frozen, target)
        clock.lap("workers")
        # 4. Fan in the shields' zones, then the players' answers, through the same grid.
        told: tuple[Decided, list[Landed]] | None = None
        ended: Result | None = None
        if self.players is not None:
            self._fan_in_shields(frozen, target, shields)
            decided, landed, ended = self._fan_in_players(gen, target, shields)
            told = decided, landed
        clock.lap("players")
        # A wide world narrows again once no code needs two bytes (a round's end, the
        # players with high ids gone); a packed one stays packed unless a player wrote.
        grid = made(target)
        self.grid, self.generation = grid, gen + 1
        board = board_of(grid)
        clock.lap("count")
        if self.players is not None and self.players.rounds is not None and ended is None:
            self.players.registry.score(board.cells)  # a round's end scored its own
        if self.record is not None:
            self.record(self.generation, self.inputs, grid.codes)
        clock.lap("score")
        ms = (time.monotonic() - began) * 1000
        self.latest = Latest(self.generation, grid, board, ms, self._standing(gen + 1))
        # 5. Publish g + 1: what each player's answers and placements got, then the frame.
        if told is not None:
            assert self.players is not None
            self.players.round.tell(gen, *told)
        if self.publishing is not None:
            self.publish(ms)
        clock.lap("publish")
        self.stages.add(clock)
        return grid

    def fan_out(self, frozen: Grid, target: LockingGrid) -> list[Answer]:
        """The workers' part of a generation: every batch of ``frozen`` computed by a
        worker (or, for the server's share of a large world, by its stepper threads)
        and pasted into ``target`` exactly once; returns how each was answered."""
        rule = str(self.rule)
        if self.tiling is not None:
            cuts: list[Cut] = [(y, x, h, w, 0) for y, x, h, w
                               in self.tiling.cut(frozen.height, frozen.width)]
        else:
            cuts = plan_bands(frozen.height, frozen.width, len(self.dispatchers),
                              self.rates() if self.rates else {})
        batches = []
        if frozen.bits is not None:  # a packed world: its bands' words, as they are
            sharing = self.sharing
            share, cuts = self._share(sharing, frozen, cuts, LOCAL_BAND_CELLS)
            assert target.packed and all(w == frozen.width for _, _, _, w, _ in cuts)
            issued = time.perf_counter()
            for i, (y, x, h, w, prefer) in enumerate(cuts):
                local = prefer == SERVER
                # The server's own bands are read where they are (native words); the
                # workers' go on the wire.
                band = bitlife.rows_of(frozen.bits, y, h, view=True) if local \
                    else bitlife.band_payload(bitlife.rows_of(frozen.bits, y, h))
                batches.append(Batch(self.generation, i, y, x, h, w, band, target, rule,
                                     prefer=max(prefer, 0), rows=True, local=local))
        else:
            # A world of neutral cells travels one bit a cell: an eighth of the bytes.
            top = int(frozen.codes.max(initial=0))
            packed = top <= 1
            # A large world of owners is shared as a packed one is (a share of it
            # stepped here, by ``step_tile``): its round trips carry a byte a cell.
            sharing = self.sharing_owned
            share = None
            if not packed and frozen.height * frozen.width >= self.packed_min_cells:
                share, cuts = self._share(sharing, frozen, cuts, OWNED_BAND_CELLS)
            issued = time.perf_counter()
            for i, (y, x, h, w, prefer) in enumerate(cuts):
                tile = frozen.tile(y, x, h, w)
                batches.append(Batch(self.generation, i, y, x, h, w,
                                     pack_bits(tile) if packed else tile, target, rule,
                                     packed=packed, tile_max=top, prefer=max(prefer, 0),
                                     local=prefer == SERVER))
        answers = self._fan_out(batches, target)
        if share is not None:
            sharing.measured(share, time.perf_counter() - issued)
        return answers

    def _share(self, sharing: Sharing, frozen: Grid, cuts: list[Cut],
               band_cells: int) -> tuple[int | None, list[Cut]]:
        """The server's share of ``frozen`` this generation (``sharing``'s choice) and
        the cuts with it, or None and ``cuts`` as they are: never with a fixed
        ``--tile`` or ``--io-latency``, nor before the workers are measured."""
        if self.tiling is not None or not self.share or self.last_min_wait is not None:
            return None, cuts
        rates = self.rates() if self.rates else {}
        if not any(r for r in rates.values()):
            return None, cuts
        share = sharing.choose()
        return share, plan_shared(frozen.height, frozen.width, len(self.dispatchers), rates,
                                  share, band_cells)

    def _fan_out(self, batches: list[Batch], target: LockingGrid) -> list[Answer]:
        """Every batch through the dispatchers, each pasted into ``target`` once."""
        pending = deque(b for b in batches if not b.local)
        for batch in batches:
            if batch.local:  # the server's own share, in its stepper threads
                self._steppers().submit(self._step_here, batch)
        failures: list[Outcome[Batch, Answer]] = []
        answers: list[Answer] = []
        answered: list[tuple[Batch, Answer]] = []
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
                answered.append((outcome.item, outcome.result))
        if failures:
            errors = "; ".join(str(f.error) for f in failures[:3])
            raise SimulationError(f"generation {self.generation} failed: {errors}",
                                  [f.item.cells for f in failures])
        if target.applied() != len(batches):
            raise SimulationError(
                f"generation {self.generation}: {target.applied()} of {len(batches)} "
                "batches were applied", [b.cells for b in batches])
        self._recompute_liars(answered, target)
        self.last_answers = answers
        waits = [a.min_wait for a in answers if a.min_wait is not None]
        self.last_min_wait = min(waits) if waits else None
        return answers

    def _steppers(self) -> ThreadPoolExecutor:
        """The threads that step the server's own share (made when first needed): two,
        for two cores (NumPy lets the GIL go while it computes), and the same two every
        generation, so that their freed temporaries are reused, not kept in one malloc
        arena per dispatcher thread."""
        if self.steppers is None:
            self.steppers = ThreadPoolExecutor(STEPPERS, thread_name_prefix="stepper")
        return self.steppers

    def _step_here(self, batch: Batch) -> None:
        """One band of the server's own share, stepped and pasted; its outcome goes
        where the dispatchers' go."""
        try:
            codes = bitlife.step_words(batch.tile, batch.w, self.rule, wrap=True) \
                if batch.rows else step_tile(batch.tile, self.table)
            applied = batch.target.paste_once(batch.index, batch.y, batch.x, codes)
            self.out_queue.put(Outcome(batch, result=Answer(LOCAL, applied, share=True)))
        except Exception as e:  # carried to the stepping thread, as a dispatcher does
            self.out_queue.put(Outcome(batch, error=e))

    def _recompute_liars(self, answered: list[tuple[Batch, Answer]],
                         target: LockingGrid) -> None:
        """Count what was checked and computed here; a worker caught lying in this
        generation has every other answer it gave in it recomputed here, before the
        generation is published, and so has every worker with its key."""
        liars = lying_keys(a for _, a in answered)
        self.shared_locally += sum(1 for _, answer in answered if answer.share)
        for batch, answer in answered:
            self.checked += answer.checked
            self.caught += answer.lied
            if answer.share:
                continue
            self.computed_locally += answer.worker == LOCAL
            if answer.applied and not answer.lied and (answer.worker, answer.mark) in liars:
                target.overwrite(batch.index, batch.y, batch.x,
                                 self.kernel.compute(batch.tile, batch.h, batch.w,
                                                     batch.rule, batch.packed, batch.rows))
                self.computed_locally += 1

    def compute(self, grid: Grid) -> Grid:
        """The rule's next generation of ``grid`` by the fan-out alone (the workers, and
        the server's share of a large world; no players, no publishing; the world is
        not replaced): what the bench measures. The
        generation count still advances, so that a late answer to one call's batch can
        never be taken for the next call's."""
        frozen = self.freeze(grid)
        target = self.target(frozen)
        self.fan_out(frozen, target)
        self.generation += 1
        return made(target)

    def packs(self, grid: Grid) -> bool:
        """Whether ``grid``'s generation is stepped packed: large enough, cut in whole
        rows (``--tile`` narrower than the world is not), and neutral."""
        if grid.height * grid.width < self.packed_min_cells \
                or (self.tiling is not None and self.tiling.w < grid.width):
            return False
        return grid.packed or int(grid.codes.max(initial=0)) <= NEUTRAL_CODE

    def freeze(self, grid: Grid) -> Grid:
        """Generation ``g`` as the step reads it: packed (bits) when ``packs`` says so,
        else a read-only view of its codes."""
        if not self.packs(grid):
            return grid.frozen() if not grid.packed \
                else Grid(grid.height, grid.width, grid.codes)  # codes read-only already
        if grid.packed:
            return grid
        return Grid(grid.height, grid.width, bits=frozen_bits(pack_words(grid.codes)))

    @staticmethod
    def target(frozen: Grid) -> LockingGrid:
        """Generation ``g + 1``'s fan-in grid: words when ``frozen`` is packed, else
        codes as wide as ``frozen``'s. Not cleared: the batches cover it once, and a
        generation whose batches do not all land is thrown away."""
        h, w = frozen.height, frozen.width
        if frozen.packed:
            return LockingGrid(h, w, bits=np.empty((h, bitlife.words(w)), np.uint64))
        return LockingGrid(h, w, np.empty((h, w), frozen.codes.dtype))

    def _fan_in_shields(self, frozen: Grid, target: LockingGrid,
                        shields: list[Shield]) -> None:
        """Step 4 for the step's live ``shields``: each zone's next generation as if it
        were alone (every cell outside it dead), computed here from the frozen
        generation and written over what the workers made there. Zones never overlap,
        so the order does not matter."""
        zones = [shield.zone for shield in shields]
        if not zones:
            return  # (a packed world's codes are not even made)
        self.inputs.append(Zones(tuple(zones)))
        for zone, evolved in zip(zones, evolve_zones(frozen.codes, zones, self.table),
                                 strict=True):
            rows, cols = rows_cols(zone, frozen.height, frozen.width)
            target.write(rows[:, None], cols[None, :], evolved)

    def _fan_in_players(self, gen: int, target: LockingGrid, shields: list[Shield]
                        ) -> tuple[Decided, list[Landed], Result | None]:
        """Step 4 for the players: their decisions (checked against the step's
        ``shields``), the departed, the end of a round, their placements (a shield for
        each one that qualifies, judged on the world with its cells in); returns what to
        tell them (step 5) and how a round ended."""
        assert self.players is not None
        registry, decision_round = self.players.registry, self.players.round
        decided = decision_round.collect(gen, shields)  # waits until the deadline at most
        self.inputs += decided.writes
        if decided.writes:  # one write for all: each player's cells are its own
            writes = decided.writes
            target.write(np.concatenate([w.ys for w in writes]),
                         np.concatenate([w.xs for w in writes]),
                         np.repeat(np.array([w.code for w in writes], dtype=np.int64),
                                   [len(w.ys) for w in writes]))
        for player in registry.expire():
            self.inputs.append(Neutral(player))
            log.info("player %d's grace ended: its cells are neutral now", player,
                     extra={"player": player, "generation": gen + 1})
            target.recolour(player_code(player), NEUTRAL_CODE)
        ended = None
        rounds = self.players.rounds
        if rounds is not None and rounds.ends(gen + 1):
            ended = self._end_round(rounds, gen + 1, target)
            self.inputs.append(RoundEnd())
        landed = []
        for placement, ys, xs, done in registry.land(gen + 1, target.fill_empty,
                                                      lambda: target.codes):
            self.inputs.append(Place(ys, xs, placement.code))
            landed.append(done)
        return decided, landed, ended

    def _end_round(self, rounds: Rounds, made: int, target: LockingGrid) -> Result:
        """Generation ``made`` ends a round: it scores, the winner is named, and then a
        fresh start (points 0, every cell neutral, shields ended, energy at the cap
        less what the placements landing at this boundary reserved: they land after
        it, and are paid for)."""
        assert self.players is not None
        registry = self.players.registry
        board = Board.of(target.codes)
        registry.score(board.cells)
        standings = registry.end_round()
        result = rounds.close(made, standings, {pid: board.cells(pid) for pid in standings})
        with target.lock:
            np.minimum(target.codes, NEUTRAL_CODE, out=target.codes)  # every owner neutral
        if result.winner is None:
            log.info("round %d ended at generation %d: nobody scored", result.round, made)
        else:
            log.info("round %d ended at generation %d: %s (player %d) won with %d points",
                     result.round, made, result.winner, result.player, result.points)
        return result

    def _standing(self, generation: int) -> Standing | None:
        """The round as it stands at ``generation`` (None without rounds)."""
        if self.players is None or self.players.rounds is None:
            return None
        return self.players.rounds.standing(generation, self.players.registry.points())

    def publish(self, ms: float) -> None:
        """Send the current generation to every viewer, with the scoreboard."""
        assert self.publishing is not None
        latest = self.latest
        names: dict[int, str] = {}
        away: set[int] = set()
        shields: list[list[int]] = []
        connected = 0
        if self.players is not None:
            names, away = self.players.registry.roster()
            connected = len(names) - len(away)
            shields = [s.wire() for s in
                       self.players.registry.live_shields(latest.generation)]
        points = {pid: p for pid, _, p in latest.round.points} if latest.round else {}
        self.ranking = ranking = Ranking.of(latest.board, names, points)
        top = ranking.top()
        shown = {row[0] for row in top}
        info: dict[str, Any] = {
            "population": latest.board.population, "ms": ms, "rule": str(self.rule),
            **self.publishing.info(),
            "board": [[pid, name, cells] for pid, name, cells, _ in top],
            "ranked": len(ranking.rows), "players": connected,
            "players_owning": ranking.owning,
            "away": sorted(away & shown), "shields": shields,
        }
        if latest.round is not None:
            frame = latest.round.frame()
            frame["points"] = [row for row in frame["points"] if row[0] in shown]
            info["round"] = frame
        self.publishing.publisher.publish(latest.generation, latest.grid, info)

    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            raise Closed("server stopping")


def frozen_bits(bits: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """``bits`` made read-only: a packed generation never changes."""
    bits.flags.writeable = False
    return bits


def made(target: LockingGrid) -> Grid:
    """The generation a fan-in made: packed when ``target`` still is (no player wrote
    into it), else its codes, narrowed when every code fits a byte again."""
    if target.bits is not None:
        return Grid(target.height, target.width, bits=frozen_bits(target.bits))
    return Grid(target.height, target.width, narrowest(target.codes))


def board_of(grid: Grid) -> Board:
    """The live cells per owner of ``grid``: of a packed world, a popcount (every cell
    is neutral), without its codes."""
    if grid.bits is None:
        return Board.of(grid.codes)
    counts = np.zeros(256, np.int64)
    counts[NEUTRAL_CODE] = grid.population
    return Board(counts)
