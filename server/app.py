"""The server process: the world, its sockets and threads, and the generation loop.

Threads and what each owns (a socket belongs to exactly one thread):

    main      the world, the Engine's step, the frame publisher (PUB)
    broker    the worker endpoint (ROUTER) and the dispatchers' inproc ROUTER
    dispatch  one inproc DEALER each (a pool of StoppableWorker threads)
    lobby     the player endpoint (ROUTER)
    snapshot  writes snapshots (openssl children) from state the loop copied

Signal handlers only set the stop flag (circus's habit); the loop sees it within
100 ms, then shuts down in one order: stop flag, close the queue, join dispatchers,
stop broker and lobby (which close their sockets), close the publisher, terminate the
context.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import zmq

from server.broker import WorkerBroker
from server.engine import Engine, Tiling
from server.game import Game
from server.lobby import PlayerEndpoint, WorldInfo
from server.players import Board, PlayerRegistry, RegistryConfig
from server.publisher import FramePublisher
from server.snapshot import (
    DEFAULT_ITERATIONS,
    DEFAULT_TIMEOUT,
    Done,
    SnapshotKey,
    Snapshotter,
    WorldState,
    Written,
    load_key,
    read_snapshot,
)
from shared import protocol
from shared.errors import Closed, ConfigError, PatternError, SimulationError, SnapshotError
from shared.files import write_atomically
from shared.grid import Grid
from shared.protocol import ErrorCode, Kind, Message
from shared.rle import parse_rle, write_rle
from shared.rules import CONWAY, Rule

log = logging.getLogger("lifenet.server")

DEFAULT_TICK = 0.1


@dataclass
class ServerConfig:
    """Everything ``lifenet server`` takes; the CLI fills it from options and env."""

    host: str = "127.0.0.1"
    worker_port: int = 5555
    player_port: int = 5556
    frame_port: int = 5557
    size: tuple[int, int] = (64, 64)
    rule: Rule | None = None
    pattern: Path | None = None
    at: tuple[int, int] | None = None
    seed: int | None = None
    fill: float | None = None
    tick: float = DEFAULT_TICK
    generations: int | None = None
    out: Path | None = None
    dispatchers: int = 16
    tile: tuple[int, int] | None = None
    heartbeat: float = 1.0
    batch_timeout: float = 10.0
    energy_cap: int = 200
    energy_regen: int = 5
    grace: float = 15.0
    player_heartbeat: float = 1.0
    decision_window: float | None = None  # None: half the tick, at least 20 ms

    @property
    def window(self) -> float:
        """How long players may take to answer a generation's game_logic requests."""
        if self.decision_window is not None:
            return self.decision_window
        return max(0.02, self.tick / 2)
    restore: Path | None = None          # start from this snapshot
    snapshot_dir: Path | None = None     # write snapshots here ...
    snapshot_every: int | None = None    # ... every N generations, and when asked
    snapshot_keep: int = 10              # the newest K are kept
    key_file: Path | None = None         # else LIFENET_SNAPSHOT_KEY
    snapshot_iterations: int = DEFAULT_ITERATIONS
    snapshot_timeout: float = DEFAULT_TIMEOUT

    def endpoint(self, port: int) -> str:
        host = "*" if self.host in ("0.0.0.0", "*") else self.host
        return f"tcp://{host}:{port if port else '*'}"


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


class Server:
    """A running lifenet server."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.snapshot_key: SnapshotKey | None = None
        if config.snapshot_dir is not None or config.restore is not None:
            self.snapshot_key = load_key(config.key_file)
        generation = 0
        self.rng_state: dict[str, Any] = {"seed": config.seed, "fill": config.fill}
        restored_players: list[dict[str, Any]] = []
        if config.restore is not None:
            assert self.snapshot_key is not None
            state = self._restore(config.restore, self.snapshot_key)
            self.grid, self.rule, generation = state.grid(), state.rule, state.generation
            self.rng_state = state.rng
            restored_players = state.players
        else:
            self.grid, self.rule = build_world(config)
        self.snapshotter: Snapshotter | None = None
        self._last_snapshot = generation
        # (who asked, whether to send the file back)
        self._snapshot_requests: queue.SimpleQueue[tuple[bytes, bool]] = queue.SimpleQueue()
        if config.snapshot_dir is not None:
            try:
                config.snapshot_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(f"cannot make --snapshot-dir {config.snapshot_dir}: "
                                  f"{e.strerror}") from e
            assert self.snapshot_key is not None
            self.snapshotter = Snapshotter(
                config.snapshot_dir, self.snapshot_key, keep=config.snapshot_keep,
                iterations=config.snapshot_iterations, timeout=config.snapshot_timeout)
        self.stop_event = threading.Event()
        self.context: zmq.Context[Any] = zmq.Context()
        self.broker = WorkerBroker(self.context, config.endpoint(config.worker_port),
                                   heartbeat=config.heartbeat,
                                   batch_timeout=config.batch_timeout)
        self.engine = Engine(self.context, self.grid, self.rule, generation=generation,
                             dispatchers=config.dispatchers,
                             tiling=Tiling(*config.tile) if config.tile else None,
                             workers=self.broker.worker_count)
        self.registry = PlayerRegistry(RegistryConfig(
            energy_cap=config.energy_cap, energy_regen=config.energy_regen,
            grace=config.grace, heartbeat=config.player_heartbeat))
        self.registry.restore(restored_players)
        self.registry.landing = generation + 1
        self.world_info = WorldInfo(self.grid.height, self.grid.width, str(self.rule), 0)
        self.lobby = PlayerEndpoint(self.context, config.endpoint(config.player_port),
                                    self.status, self.registry, self.world_info,
                                    lambda: self.engine.generation)
        self.publisher: FramePublisher | None = None
        self.game: Game | None = None
        self.lobby.handlers[Kind.SNAPSHOT] = self._on_snapshot
        self.frame_endpoint = ""
        self._stats_lock = threading.Lock()
        self._ms = 0.0
        self._board = Board.of(self.grid.codes)
        self._started = False
        self._closed = False

    # -- status, read by the lobby thread ----------------------------------------------

    def status(self) -> dict[str, Any]:
        with self._stats_lock:
            grid, generation, ms = self.engine.grid, self.engine.generation, self._ms
            board = self._board
        players = self.registry.snapshot()
        return {
            "generation": generation,
            "players": sum(p.connected for p in players),
            "workers": self.broker.worker_count(),
            "worker_names": self.broker.worker_names()[:4096],
            "population": int(board.counts[1:].sum()),
            "size": [grid.height, grid.width],
            "rule": str(self.rule),
            "scores": {p.name: board.cells(p.id) for p in players},
            "ms_per_generation": ms,
            "tick": self.config.tick,
            "running": not self.stop_event.is_set(),
        }

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Bind every endpoint and start the threads; ``ConfigError`` if a port is taken."""
        try:
            self.publisher = FramePublisher(self.context,
                                            self.config.endpoint(self.config.frame_port))
        except zmq.ZMQError as e:
            self.close()
            raise ConfigError(f"cannot listen for frames on port {self.config.frame_port}: "
                              f"{e.strerror}") from e
        self.frame_endpoint = self.publisher.endpoint
        self.world_info.frame_port = self.publisher.port
        for thread in (self.broker, self.lobby):
            thread.start()
            thread.ready.wait()
            if thread.error is not None:
                self.close()
                raise ConfigError(f"cannot listen on {thread.endpoint}: {thread.error}")
        self.game = Game(self.context, self.registry, self.rule, self.config.window)
        self.engine.start()
        if self.snapshotter is not None:
            self.snapshotter.start()
        self._started = True
        log.info("lifenet server ready: workers %s, players %s, frames %s; world %dx%d %s",
                 self.broker.bound_endpoint, self.lobby.bound_endpoint, self.frame_endpoint,
                 self.grid.height, self.grid.width, self.rule)

    def stop(self) -> None:
        self.stop_event.set()
        self.engine.stop_event.set()

    def install_signal_handlers(self) -> None:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            self.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def run(self) -> int:
        """The generation loop; returns the exit status."""
        config = self.config
        self._publish(0.0)
        failures = 0
        while not self.stop_event.is_set():
            if config.generations is not None and self.engine.generation >= config.generations:
                break
            began = time.monotonic()
            try:
                self.advance()
            except Closed:
                break
            except SimulationError as e:
                failures += 1
                log.error("%s; trying generation %d again", e, self.engine.generation)
                self._snapshot_if_due(periodic=False)  # a requested one need not wait
                self.stop_event.wait(min(0.1 * 2 ** failures, 5.0))
                continue
            failures = 0
            self._snapshot_if_due(periodic=True)
            rest = config.tick - (time.monotonic() - began)
            if rest > 0:
                self.stop_event.wait(rest)
        self._snapshot_if_due(periodic=False, final=True)
        if config.out is not None:
            write_world(config.out, self.engine.grid, self.rule, self.engine.generation)
            log.info("wrote generation %d to %s", self.engine.generation, config.out)
        return 0

    def advance(self) -> Grid:
        """Step one generation, then publish it; returns the new generation."""
        began = time.monotonic()
        grid = self.step()
        ms = (time.monotonic() - began) * 1000
        with self._stats_lock:
            self._ms = ms
        self._publish(ms)
        return grid

    def step(self) -> Grid:
        """One generation: players asked, workers' step, players' answers applied."""
        assert self.game is not None
        gen = self.engine.generation
        codes = self.engine.grid.codes
        with self._stats_lock:
            board = self._board  # counted when this generation was made ...
        if board.codes is not codes:  # ... unless the world was replaced since
            board = Board.of(codes)
        self.game.ask(gen, codes, board)
        grid = self.engine.step()
        self.game.settle(gen, grid.codes)
        board = Board.of(grid.codes)
        with self._stats_lock:
            self._board = board
        return grid

    def _publish(self, ms: float) -> None:
        assert self.publisher is not None
        grid = self.engine.grid
        with self._stats_lock:
            board = self._board
        names = {p.id: p.name for p in self.registry.snapshot()}
        self.publisher.publish(self.engine.generation, grid.codes, {
            "population": int(board.counts[1:].sum()), "ms": ms,
            "workers": self.broker.worker_count(), "rule": str(self.rule),
            "board": [[pid, name, board.cells(pid)] for pid, name in sorted(names.items())],
        })

    def close(self) -> None:
        """Shut down in order: stop flag, dispatchers, broker and lobby, publisher, context."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        if self._started:
            self.engine.stop()
        if self.snapshotter is not None and self.snapshotter.is_alive():
            self.snapshotter.stop()  # finishes what was submitted, answers who asked
            self.snapshotter.join(timeout=self.config.snapshot_timeout + 5)
        for thread in (self.broker, self.lobby):
            thread.stop()
            if thread.is_alive():
                thread.join(timeout=5)
        if self.publisher is not None:
            self.publisher.close()
        if self.game is not None:
            self.game.close()
        self.context.term()

    # -- snapshots -------------------------------------------------------------------------

    def _restore(self, path: Path, key: SnapshotKey) -> WorldState:
        """The world, rule and generation of a verified snapshot (the options' are unused)."""
        _, state = read_snapshot(path, key, self.config.snapshot_timeout)
        if self.config.rule is not None and self.config.rule != state.rule:
            log.warning("--rule %s ignored: the snapshot runs %s", self.config.rule,
                        state.rule)
        log.info("restored generation %d of a %dx%d world from %s", state.generation,
                 state.height, state.width, path)
        return state

    def capture(self) -> WorldState:
        """A copy of the state, taken in the loop between generations (the only stall)."""
        return WorldState(self.engine.grid.codes.copy(), self.engine.generation, self.rule,
                          players=self.registry.export(), rng=dict(self.rng_state))

    def _snapshot_if_due(self, periodic: bool, final: bool = False) -> None:
        """Hand a copy of the state to the snapshot thread if one is asked for or due.

        ``final``: the loop has ended; with ``--snapshot-every`` the last generation is
        written too (even while another snapshot is being written).
        """
        if self.snapshotter is None:
            return
        waiters = []
        while True:
            try:
                waiters.append(self._replier(*self._snapshot_requests.get_nowait()))
            except queue.Empty:
                break
        every = self.config.snapshot_every
        due = periodic and every is not None and every > 0 \
            and self.engine.generation % every == 0
        generation = self.engine.generation
        if final and every and generation != self._last_snapshot:
            due, periodic = True, False
        if (waiters or due) and self.snapshotter.submit(
                self.capture(), waiters, periodic=periodic and not waiters):
            self._last_snapshot = generation

    def _replier(self, identity: bytes, send: bool) -> Done:
        def done(written: Written | None, error: SnapshotError | None) -> None:
            if written is not None:
                payloads = []
                if send:  # `snapshot save --out`: the encrypted file itself goes back
                    try:
                        payloads = [written.path.read_bytes()]
                    except OSError as e:
                        self.lobby.reply_later(identity, protocol.error(
                            ErrorCode.FAILED, f"cannot read {written.path.name}: {e}",
                            str(Kind.SNAPSHOT)))
                        return
                reply = protocol.message(Kind.SNAPSHOT_REPLY, payloads,
                                         path=str(written.path.resolve()),
                                         generation=written.generation,
                                         bytes=len(payloads[0]) if payloads else written.size)
            else:
                reply = protocol.error(ErrorCode.FAILED, str(error), str(Kind.SNAPSHOT))
            self.lobby.reply_later(identity, reply)
        return done

    def _on_snapshot(self, identity: bytes, msg: Message) -> Message | None:
        """``SNAPSHOT``: answered by the snapshot thread once the file is written."""
        protocol.check_version(msg)
        if self.snapshotter is None:
            return protocol.error(ErrorCode.NOT_ALLOWED, "this server takes no snapshots: "
                                  "start it with --snapshot-dir DIR", str(msg.kind))
        if self._snapshot_requests.qsize() >= 8:
            return protocol.error(ErrorCode.BUSY, "too many snapshot requests waiting",
                                  str(msg.kind))
        self._snapshot_requests.put((identity, msg.body.get("send", False)))
        return None


def serve(config: ServerConfig) -> int:
    """Run a server in this process until stopped or ``--generations`` is reached."""
    server = Server(config)
    server.install_signal_handlers()
    try:
        server.start()
        return server.run()
    finally:
        server.close()
