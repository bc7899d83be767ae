"""The server process: its sockets and threads, its life cycle, and the generation loop.

Threads and what each owns (a socket belongs to exactly one thread):

    gatekeeper  with keys: answers the CURVE handshakes' ZAP requests (``server.auth``)
    main      the world and its generations (``server.generation.Engine``), the frame
              publisher (PUB)
    broker    the worker endpoint (ROUTER) and the dispatchers' inproc ROUTER
    dispatch  one inproc DEALER each (a pool of StoppableWorker threads)
    lobby     the player endpoint (ROUTER); other threads reach players through its
              ``send``
    snapshot  writes snapshots (openssl children) from state the loop copied

What one generation does is in ``server.generation``; this module starts and stops the
threads around it and paces it. Signal handlers only set the stop flag (circus's habit);
the loop sees it within 100 ms, then shuts down in one order: stop flag, close the
queue, join dispatchers, stop broker and lobby (which close their sockets), close the
publisher, terminate the context.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import zmq

from server.auth import WORKERS, Gatekeeper, ServerKeys, check_exposure
from server.broker import WorkerBroker
from server.config import ServerConfig
from server.generation import WARM_UP_GENERATIONS, Engine, Players, Publishing, Tiling
from server.metrics import MetricsEndpoint, ServerMetrics
from server.players.decisions import DecisionRound
from server.players.lobby import Peer, PlayerEndpoint, WorldInfo
from server.players.registry import PlayerRegistry, RegistryConfig
from server.players.rounds import Rounds
from server.players.shields import Shields
from server.publisher import FramePublisher
from server.replay.log import Recorder
from server.snapshot import (
    SnapshotKey,
    Snapshotter,
    WorldState,
    load_key,
    read_snapshot,
    snapshot_generation,
)
from server.transport import MemoryGuard, raise_open_files_limit
from server.viewports import Interest, ViewPublisher
from server.world import build_world, write_world
from shared import protocol
from shared.errors import Closed, ConfigError, SimulationError, SnapshotError
from shared.grid import Grid
from shared.protocol import ErrorCode, Message

log = logging.getLogger("lifenet.server")


class Server:
    """A running lifenet server."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        check_exposure(config.host, config.keys, config.insecure)
        self.keys = ServerKeys.load(config.keys) if config.keys is not None else None
        self.snapshot_key: SnapshotKey | None = None
        if config.snapshot_dir is not None or config.restore is not None:
            self.snapshot_key = load_key(config.key_file)
        generation = 0
        self.rng_state: dict[str, Any] = {"seed": config.seed, "fill": config.fill}
        restored_players: list[dict[str, Any]] = []
        if config.restore is not None:
            assert self.snapshot_key is not None
            state = self._restore(config.restore, self.snapshot_key)
            grid, self.rule, generation = state.grid(), state.rule, state.generation
            self.rng_state = state.rng
            restored_players = state.players
        else:
            grid, self.rule = build_world(config)
        if config.snapshot_dir is not None:  # every refusal before any socket or thread
            try:
                config.snapshot_dir.mkdir(parents=True, exist_ok=True)
                mode = config.snapshot_dir.stat().st_mode
            except OSError as e:
                raise ConfigError(f"cannot make --snapshot-dir {config.snapshot_dir}: "
                                  f"{e.strerror}") from e
            if mode & 0o002 and not mode & 0o1000:
                raise ConfigError(f"--snapshot-dir {config.snapshot_dir} may be written by "
                                  "anyone (mode o+w): another user could replace or plant "
                                  "snapshots there; chmod o-w it, or choose another")
        self.stop_event = threading.Event()
        self.context: zmq.Context[Any] = zmq.Context()
        # A big world legitimately grows by a few bytes a cell while it steps (the next
        # board, the payloads, the frame): allowed on top of the configured growth.
        self.guard = MemoryGuard(config.memory_guard,
                                 slack_mb=grid.height * grid.width * 8 / (1 << 20))
        self.guard.handshake_ms = int(config.handshake_timeout * 1000)
        self.gatekeeper: Gatekeeper | None = None
        if self.keys is not None:
            self.gatekeeper = Gatekeeper(self.context, self.keys)
        admits, is_operator = self._admits, self.is_operator
        self.broker = WorkerBroker(self.context, config.endpoint(config.worker_port),
                                   heartbeat=config.heartbeat,
                                   batch_timeout=config.batch_timeout, keys=self.keys,
                                   admits=admits, max_credit=config.max_credit,
                                   max_io_latency=config.max_io_latency, guard=self.guard)
        self.rounds = Rounds(config.round_length) if config.round_length else None
        self.registry = PlayerRegistry(RegistryConfig(
            energy_cap=config.energy_cap, energy_regen=config.energy_regen,
            grace=config.grace, heartbeat=config.player_heartbeat,
            per_address=config.max_players_per_address, max_players=config.max_players,
            joins_per_second=config.joins_per_second),
            Shields(grid.height, grid.width, config.protect))
        # Points come back for the round in progress; the last rounds' results and the
        # shields start afresh (the snapshot format keeps neither).
        self.registry.restore(restored_players, self._round_ends_at(generation))
        self.registry.landing = generation + 1
        self.world_info = WorldInfo(grid.height, grid.width, str(self.rule), 0,
                                    round=config.round_length, protect=config.protect)
        self.lobby = PlayerEndpoint(self.context, config.endpoint(config.player_port),
                                    self.status, self.registry, self.world_info,
                                    lambda: self.engine.generation, keys=self.keys,
                                    is_operator=is_operator, guard=self.guard)
        self.snapshotter: Snapshotter | None = None
        if config.snapshot_dir is not None:
            assert self.snapshot_key is not None
            self.snapshotter = Snapshotter(
                config.snapshot_dir, self.snapshot_key, keep=config.snapshot_keep,
                iterations=config.snapshot_iterations, timeout=config.snapshot_timeout,
                every=config.snapshot_every, generation=generation, reply=self.lobby.send)
        self.lobby.handlers[protocol.Kind.SNAPSHOT] = self._on_snapshot
        self.interest = self.lobby.interest = Interest(grid.height, grid.width)
        self.engine = Engine(
            self.context, grid, self.rule, generation=generation,
            dispatchers=config.dispatchers,
            tiling=Tiling(*config.tile) if config.tile else None,
            rates=self.broker.rates, broker_alive=self.broker.is_alive,
            fallback_after=config.fallback_after,
            verification=config.verify,
            players=Players(self.registry, DecisionRound(self.registry, self.rule,
                                                         config.window, self.lobby.send,
                                                         self.lobby.send_all),
                            self.rounds))
        assert self.engine.players is not None
        self.engine.players.round.idle = self.lobby.idle
        self.registry.read_at = lambda: self.lobby.idle.at
        self.recorder: Recorder | None = None
        if config.record is not None:  # the log's start record: the world as it begins
            self.recorder = Recorder(config.record, self.rule, grid, generation,
                                     snapshot=config.restore)
            self.engine.record = self.recorder.append
            if self.snapshotter is not None:  # the log names each snapshot, by hash
                recorder = self.recorder
                self.snapshotter.on_written.append(
                    lambda written, _: recorder.snapshot_written(written.path,
                                                                 written.generation))
        self.registry.owned = lambda player: self.engine.latest.board.cells(player)
        self.lobby.standing = lambda player: self.engine.ranking.standing(player)
        self.metrics: ServerMetrics | None = None
        self.metrics_endpoint: MetricsEndpoint | None = None
        if config.metrics is not None:  # counted from the first request and generation
            self.metrics = ServerMetrics(self)
            self.lobby.handle = self.metrics.counting(self.lobby.handle)  # type: ignore[method-assign]
            self.lobby.on_late = self.metrics.decisions_late.inc  # each, told or not
            for dispatcher in self.engine.dispatchers:
                dispatcher.on_answer = self.metrics.observe_trip
            if self.snapshotter is not None:
                self.snapshotter.on_written.append(self.metrics.snapshot_written)
        self.publisher: FramePublisher | None = None
        self.frame_endpoint = ""
        self.view_endpoint = ""
        self._started = False
        self._closed = False

    # -- who may do what ---------------------------------------------------------------

    def _admits(self, key: bytes | None) -> bool:
        """Whether a worker showing ``key`` may work here (any, without keys)."""
        if self.gatekeeper is None:
            return True
        return key is not None and self.gatekeeper.admits(WORKERS, key)

    def is_operator(self, key: bytes | None) -> bool:
        """Whether ``key`` is an operator's (anyone's, without keys: loopback only, or
        ``--insecure``)."""
        return self.gatekeeper is None or self.gatekeeper.is_operator(key)

    # -- status, read by the lobby thread ----------------------------------------------

    def status(self, full: bool = True) -> dict[str, Any]:
        """The status report; ``full`` (an operator asks) adds the workers' names,
        which name their hosts: everyone else gets their count."""
        latest = self.engine.latest
        board = latest.board
        players = self.registry.snapshot()
        report: dict[str, Any] = {
            "generation": latest.generation,
            "players": sum(p.connected for p in players),
            "players_owning": sum(1 for p in players if board.cells(p.id) > 0),
            "workers": self.broker.worker_count(),
            "population": board.population,
            "size": [latest.grid.height, latest.grid.width],
            "rule": str(self.rule),
            "scores": {p.name: board.cells(p.id) for p in
                       sorted(players, key=lambda p: -board.cells(p.id))[:MAX_SCORES]},
            "view_port": self.world_info.view_port,
            "player_bytes": self.lobby.sent_bytes,
            # players asked about their cells since the start, answers in time, and
            # players not asked, their earlier answers not yet read (``askable``)
            "decisions": {"asked": self.registry.asked_total,
                          "answered": self.registry.answered_total,
                          "held": self.registry.held_total},
            "ms_per_generation": latest.ms,
            "tick": self.config.tick,
            "running": not self.stop_event.is_set(),
            "computed_locally": self.engine.computed_locally,
            "checked": self.engine.checked,
            "caught": self.engine.caught,
            "quarantined": self.broker.quarantined(),
            "away": sorted(p.name for p in players if not p.connected)[:MAX_SCORES],
        }
        if latest.round is not None:
            report["round"] = latest.round.status(MAX_SCORES)
        if full:
            report["worker_names"] = _within(self.broker.worker_names(), STATUS_NAME_BYTES)
            # where the generations' time went since the start (after the warm-up), in
            # totals: two readings give the mean of the generations between them
            stages = self.engine.stages
            report["stages"] = {"generations": stages.generations,
                                "ms": {k: v * 1000 for k, v in dict(stages.seconds).items()}}
        return report

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Bind every endpoint and start the threads; ``ConfigError`` if a port is taken."""
        if self.gatekeeper is not None:  # before any CURVE socket binds
            self.gatekeeper.start()
            if not self.gatekeeper.ready.wait(10):
                self.close()
                raise ConfigError("the gatekeeper did not start within 10 s")
            if self.gatekeeper.error is not None:
                self.close()
                raise ConfigError(f"cannot start the gatekeeper: {self.gatekeeper.error}")
        try:
            views = ViewPublisher(self.context, self.config.endpoint(self.config.view_port),
                                  self.interest, self.keys, self.guard)
        except zmq.ZMQError as e:
            self.close()
            raise ConfigError(f"cannot listen for views on port {self.config.view_port}: "
                              f"{e.strerror}") from e
        try:
            self.publisher = FramePublisher(self.context,
                                            self.config.endpoint(self.config.frame_port),
                                            self.keys, self.guard, views)
        except zmq.ZMQError as e:
            views.close()
            self.close()
            raise ConfigError(f"cannot listen for frames on port {self.config.frame_port}: "
                              f"{e.strerror}") from e
        self.frame_endpoint = self.publisher.endpoint
        self.view_endpoint = views.endpoint
        self.world_info.frame_port = self.publisher.port
        self.world_info.view_port = views.port
        self.engine.publishing = Publishing(
            self.publisher, lambda: {"workers": self.broker.worker_count()})
        for thread in (self.broker, self.lobby):
            thread.start()
            thread.ready.wait()
            if thread.error is not None:
                self.close()
                raise ConfigError(f"cannot listen on {thread.endpoint}: {thread.error}")
        if self.metrics is not None and self.config.metrics is not None:
            try:
                self.metrics_endpoint = MetricsEndpoint(self.metrics.registry,
                                                        *self.config.metrics)
            except ConfigError:
                self.close()
                raise
            log.info("metrics at %s", self.metrics_endpoint.url)
        self.engine.start()
        self.guard.arm()  # the world and every thread are there: growth from now on
        if self.snapshotter is not None:
            self.snapshotter.start()
        self._started = True
        grid = self.engine.grid
        log.info("lifenet server ready: workers %s, players %s, frames %s; world %dx%d %s; %s",
                 self.broker.bound_endpoint, self.lobby.bound_endpoint, self.frame_endpoint,
                 grid.height, grid.width, self.rule,
                 "CURVE, server key fingerprint "  # the key itself is in no log line
                 + hashlib.sha256(self.keys.pair.public).hexdigest()[:16] if self.keys
                 else "no keys: plain text, every peer trusted")

    def stop(self) -> None:
        self.stop_event.set()
        self.engine.stop_event.set()

    def install_signal_handlers(self) -> None:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            self.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    REBASE_AFTER = 3  # generations after which the memory guard measures again

    def run(self) -> int:
        """The generation loop; returns the exit status."""
        config = self.config
        self.engine.publish(0.0)
        failures = 0
        warm_at = self.engine.generation + WARM_UP_GENERATIONS  # then the loop is timed
        warm: tuple[int, float] | None = None
        ended = 0.0
        rebase_at = self.engine.generation + self.REBASE_AFTER
        while not self.stop_event.is_set():
            if rebase_at and self.engine.generation >= rebase_at:
                self.guard.rebase()
                rebase_at = 0
            if config.generations is not None and self.engine.generation >= config.generations:
                break
            broken = self._broken()
            if broken:
                # A server that no one may reach, or whose workers or players can no
                # longer be heard, stops rather than go on, and says why.
                log.error("%s: stopping the server", broken)
                self._flush_news()
                self.stop()
                return 1
            began = time.monotonic()
            try:
                self.advance()
            except Closed:
                break
            except SimulationError as e:
                if self.stop_event.is_set():
                    break  # a batch cut short by the stop itself: nothing went wrong
                failures += 1
                if self.metrics is not None:
                    self.metrics.generation_failures.inc()
                log.error("%s; trying generation %d again", e, self.engine.generation,
                          extra={"generation": self.engine.generation})
                self._snapshot_if_due(periodic=False)  # a requested one need not wait
                self.stop_event.wait(min(0.1 * 2 ** failures, 5.0))
                continue
            failures = 0
            ended = time.perf_counter()
            if warm is None and self.engine.generation >= warm_at:
                warm = self.engine.generation, ended
            self._snapshot_if_due(periodic=True)
            rest = config.tick - (time.monotonic() - began)
            if self.engine.players is not None:
                # Behind the tick, the next generation's requests carry the players'
                # news; otherwise it goes now, alone.
                behind = self.engine.players.round.fold = rest <= NEWS_WAIT
                if not behind:
                    self.engine.players.round.flush()
            if rest > 0:
                self.stop_event.wait(rest)
        self._flush_news()  # no request comes to carry it now
        self._snapshot_if_due(periodic=False, final=True)
        if warm is not None and self.engine.generation > warm[0]:
            made = self.engine.generation - warm[0]
            log.info("whole generations: %d after the first %d in %.3f s: %.3f ms a "
                     "generation", made, WARM_UP_GENERATIONS, ended - warm[1],
                     (ended - warm[1]) * 1000 / made)
        for what, sharing in (("packed world", self.engine.sharing),
                              ("world of owners", self.engine.sharing_owned)):
            if sharing.seconds:
                log.info("the server's own share of the %s: %d/8 of its rows; ms a fan-out "
                         "by share: %s", what, sharing.current, ", ".join(
                             f"{k}/8 {v * 1000:.1f}" for k, v in sorted(sharing.seconds.items())))
        stages = self.engine.stages
        if stages.generations:
            log.info("generation stages, ms a generation over %d: %s", stages.generations,
                     stages.line())
        if config.out is not None:
            write_world(config.out, self.engine.grid, self.rule, self.engine.generation)
            log.info("wrote generation %d to %s", self.engine.generation, config.out)
        return 0

    def _flush_news(self) -> None:
        """Send the players' news held for a next request (the lobby sends what is
        handed to it before it closes)."""
        if self.engine.players is not None:
            self.engine.players.round.fold = False
            self.engine.players.round.flush()

    def _broken(self) -> str:
        """Why the server cannot go on (an endpoint's thread ended, the frame endpoint
        could not listen again), or nothing."""
        if self.gatekeeper is not None and not self.gatekeeper.is_alive():
            return "the gatekeeper (ZAP) thread ended: every CURVE handshake fails"
        for thread in (self.broker, self.lobby):
            if not thread.is_alive():
                return f"the {thread.name} thread ended ({thread.error or 'a bug'})"
        if self.recorder is not None and self.recorder.error is not None:
            return f"the replay log {self.recorder.path} cannot be written: " \
                   f"{self.recorder.error.strerror}"
        if self.publisher is not None and self.publisher.failed is not None:
            return f"the frame endpoint stopped: {self.publisher.failed}"
        if self.publisher is not None and self.publisher.views is not None \
                and self.publisher.views.failed is not None:
            return f"the view endpoint stopped: {self.publisher.views.failed}"
        return ""

    def advance(self) -> Grid:
        """Step one generation (players, workers, publishing: ``Engine.step``)."""
        if self.metrics is None:
            return self.engine.step()
        began = time.perf_counter()
        grid = self.engine.step()
        self.metrics.generations.inc()
        self.metrics.generation_seconds.observe(time.perf_counter() - began)
        return grid

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
        if self.recorder is not None:
            self.recorder.close()
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()
        if self.gatekeeper is not None and self.gatekeeper.is_alive():
            self.gatekeeper.stop()  # last: sockets being closed may still ask it
            self.gatekeeper.join(timeout=5)
        self.context.term()

    # -- snapshots -------------------------------------------------------------------------

    def _restore(self, path: Path, key: SnapshotKey) -> WorldState:
        """The world, rule and generation of a verified snapshot (the options' are unused)."""
        _, state = read_snapshot(path, key, self.config.snapshot_timeout)
        named = snapshot_generation(path.name)
        if named is not None and named != state.generation:
            raise SnapshotError(f"{path.name} holds generation {state.generation} (its "
                                "authenticated header says so), not the one its name says: "
                                "refused (a renamed snapshot)")
        if self.config.rule is not None and self.config.rule != state.rule:
            log.warning("--rule %s ignored: the snapshot runs %s", self.config.rule,
                        state.rule)
        log.info("restored generation %d of a %dx%d world from %s", state.generation,
                 state.height, state.width, path)
        return state

    def capture(self) -> WorldState:
        """A copy of the state, taken in the loop between generations (the only stall)."""
        generation = self.engine.generation
        return WorldState(self.engine.grid.codes.copy(), generation, self.rule,
                          players=self.registry.export(self._round_ends_at(generation)),
                          rng=dict(self.rng_state))

    def _round_ends_at(self, generation: int) -> int | None:
        """The generation that ends the round in progress (None without rounds)."""
        return self.rounds.ends_at(generation) if self.rounds is not None else None

    def _snapshot_if_due(self, periodic: bool, final: bool = False) -> None:
        if self.snapshotter is not None:
            self.snapshotter.between_generations(self.engine.generation, self.capture,
                                                 periodic=periodic, final=final)

    def _on_snapshot(self, peer: Peer, msg: Message) -> Message | None:
        """``SNAPSHOT``, for operators only: answered by the snapshot writer once the
        file is written."""
        protocol.check_version(msg)
        if not self.is_operator(peer.key):
            return protocol.error(ErrorCode.NOT_ALLOWED, "snapshots are for operators: "
                                  "sign in with a key on the server's authorized/operators "
                                  "(lifenet snapshot save --keys DIR)", str(msg.kind))
        if self.snapshotter is None:
            return protocol.error(ErrorCode.NOT_ALLOWED, "this server takes no snapshots: "
                                  "start it with --snapshot-dir DIR", str(msg.kind))
        return self.snapshotter.ask(peer.identity, msg.body.get("send", False))


NEWS_WAIT = 0.02  # seconds to the next generation beyond which players' news goes alone
MAX_SCORES = 256  # players named in a status reply's scores, points and away: the best
STATUS_NAME_BYTES = 16 << 10  # the workers' names in a status reply: 1 000 workers' worth


def _within(names: list[str], budget: int) -> list[str]:
    """As many of ``names`` as fit ``budget`` bytes (of msgpack, roughly): a status
    reply must stay well under what a client takes (64 KiB), however many workers."""
    kept: list[str] = []
    for name in names:
        budget -= len(name.encode()) + 3
        if budget < 0:
            break
        kept.append(name)
    return kept


def serve(config: ServerConfig) -> int:
    """Run a server in this process until stopped or ``--generations`` is reached."""
    soft, hard = raise_open_files_limit()  # every peer is a file descriptor
    log.debug("open files: soft limit %d, hard limit %d", soft, hard)
    server = Server(config)
    server.install_signal_handlers()
    try:
        server.start()
        # What starting made (modules, the world, the tables) lives as long as the
        # process: the cyclic collector leaves it out, or each full collection walks
        # it with the GIL held (60 ms at a time with a thousand players, measured; 11
        # frozen). Here, not in ``run``: a process that runs servers one after another
        # (the tests) would keep whatever of theirs later became cyclic garbage.
        gc.freeze()
        return server.run()
    finally:
        server.close()
