"""The server process: the world, its sockets and threads, and the generation loop.

Threads and what each owns (a socket belongs to exactly one thread):

    main      the world, the Engine's step, the frame publisher (PUB)
    broker    the worker endpoint (ROUTER) and the dispatchers' inproc ROUTER
    dispatch  one inproc DEALER each (a pool of StoppableWorker threads)
    lobby     the player endpoint (ROUTER)

Signal handlers only set the stop flag (circus's habit); the loop sees it within
100 ms, then shuts down in one order: stop flag, close the queue, join dispatchers,
stop broker and lobby (which close their sockets), close the publisher, terminate the
context.
"""

from __future__ import annotations

import contextlib
import logging
import os
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
from server.lobby import PlayerEndpoint
from shared import protocol
from shared.errors import Closed, ConfigError, PatternError, SimulationError
from shared.grid import Grid, as_payload
from shared.protocol import Kind
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {e.strerror}") from e


class Server:
    """A running lifenet server."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.grid, self.rule = build_world(config)
        self.stop_event = threading.Event()
        self.context: zmq.Context[Any] = zmq.Context()
        self.broker = WorkerBroker(self.context, config.endpoint(config.worker_port),
                                   heartbeat=config.heartbeat,
                                   batch_timeout=config.batch_timeout)
        self.engine = Engine(self.context, self.grid, self.rule,
                             dispatchers=config.dispatchers,
                             tiling=Tiling(*config.tile) if config.tile else None,
                             workers=self.broker.worker_count)
        self.lobby = PlayerEndpoint(self.context, config.endpoint(config.player_port),
                                    self.status)
        self.publisher: zmq.Socket[Any] | None = None
        self.frame_endpoint = ""
        self._stats_lock = threading.Lock()
        self._ms = 0.0
        self._started = False
        self._closed = False

    # -- status, read by the lobby thread ----------------------------------------------

    def status(self) -> dict[str, Any]:
        with self._stats_lock:
            grid, generation, ms = self.engine.grid, self.engine.generation, self._ms
        return {
            "generation": generation,
            "players": 0,
            "workers": self.broker.worker_count(),
            "worker_names": self.broker.worker_names()[:4096],
            "population": grid.population,
            "size": [grid.height, grid.width],
            "rule": str(self.rule),
            "scores": {},
            "ms_per_generation": ms,
            "tick": self.config.tick,
            "running": not self.stop_event.is_set(),
        }

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Bind every endpoint and start the threads; ``ConfigError`` if a port is taken."""
        self.publisher = self.context.socket(zmq.PUB)
        self.publisher.setsockopt(zmq.LINGER, 0)
        self.publisher.setsockopt(zmq.SNDHWM, 8)
        try:
            self.publisher.bind(self.config.endpoint(self.config.frame_port))
        except zmq.ZMQError as e:
            self.close()
            raise ConfigError(f"cannot listen for frames on port {self.config.frame_port}: "
                              f"{e.strerror}") from e
        self.frame_endpoint = self.publisher.getsockopt_string(zmq.LAST_ENDPOINT)
        for thread in (self.broker, self.lobby):
            thread.start()
            thread.ready.wait()
            if thread.error is not None:
                self.close()
                raise ConfigError(f"cannot listen on {thread.endpoint}: {thread.error}")
        self.engine.start()
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
                self.engine.step()
            except Closed:
                break
            except SimulationError as e:
                failures += 1
                log.error("%s; trying generation %d again", e, self.engine.generation)
                self.stop_event.wait(min(0.1 * 2 ** failures, 5.0))
                continue
            failures = 0
            ms = (time.monotonic() - began) * 1000
            with self._stats_lock:
                self._ms = ms
            self._publish(ms)
            rest = config.tick - (time.monotonic() - began)
            if rest > 0:
                self.stop_event.wait(rest)
        if config.out is not None:
            write_world(config.out, self.engine.grid, self.rule, self.engine.generation)
            log.info("wrote generation %d to %s", self.engine.generation, config.out)
        return 0

    def _publish(self, ms: float) -> None:
        assert self.publisher is not None
        grid = self.engine.grid
        msg = protocol.message(
            Kind.FRAME, [as_payload(grid.codes)], gen=self.engine.generation,
            h=grid.height, w=grid.width, population=grid.population, ms=ms,
            workers=self.broker.worker_count(), rule=str(self.rule))
        with contextlib.suppress(zmq.Again):
            self.publisher.send_multipart(protocol.encode(msg), zmq.NOBLOCK, copy=False)

    def close(self) -> None:
        """Shut down in order: stop flag, dispatchers, broker and lobby, publisher, context."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        if self._started:
            self.engine.stop()
        for thread in (self.broker, self.lobby):
            thread.stop()
            if thread.is_alive():
                thread.join(timeout=5)
        if self.publisher is not None:
            self.publisher.close()
        self.context.term()


def serve(config: ServerConfig) -> int:
    """Run a server in this process until stopped or ``--generations`` is reached."""
    server = Server(config)
    server.install_signal_handlers()
    try:
        server.start()
        return server.run()
    finally:
        server.close()
