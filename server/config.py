"""``ServerConfig``: everything ``lifenet server`` takes, as one value."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from server.broker import DEFAULT_MAX_CREDIT, DEFAULT_MAX_IO_LATENCY
from server.snapshot import DEFAULT_ITERATIONS, DEFAULT_TIMEOUT
from server.verify import Verification
from shared.rules import Rule

DEFAULT_TICK = 0.1
DEFAULT_VERIFY = 0.05    # sample:0.05: one answer in twenty checked by the server
DEFAULT_MEMORY_GUARD = 1024.0  # MiB the server may grow by before it drops connections
DEFAULT_FALLBACK = 2.0   # seconds a batch may wait for a worker before the server computes it
DEFAULT_PROTECT = 8      # generations a fresh placement's zone evolves as if alone


@dataclass
class ServerConfig:
    """Everything ``lifenet server`` takes; the CLI fills it from options and env."""

    host: str = "127.0.0.1"
    worker_port: int = 5555
    player_port: int = 5556
    frame_port: int = 5557
    view_port: int = 0   # the view publisher's (viewports); 0: any free port
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
    restore: Path | None = None          # start from this snapshot
    snapshot_dir: Path | None = None     # write snapshots here ...
    snapshot_every: int | None = None    # ... every N generations, and when asked
    snapshot_keep: int = 10              # the newest K are kept
    key_file: Path | None = None         # else LIFENET_SNAPSHOT_KEY
    snapshot_iterations: int = DEFAULT_ITERATIONS
    snapshot_timeout: float = DEFAULT_TIMEOUT
    keys: Path | None = None             # CURVE on every endpoint (lifenet keys init)
    insecure: bool = False               # listen beyond loopback without keys anyway
    verify: Verification = field(default_factory=lambda: Verification(DEFAULT_VERIFY))
    fallback_after: float | None = DEFAULT_FALLBACK  # None: wait for a worker forever
    max_credit: int = DEFAULT_MAX_CREDIT             # batches a worker may hold at once
    max_io_latency: float = DEFAULT_MAX_IO_LATENCY   # a worker's declared I/O, at most
    max_players_per_address: int = 32  # sessions one address may hold, grace included
    max_players: int = 4096            # sessions at once (ids 1..max_players)
    joins_per_second: float = 2.0      # sessions one address may open, after a burst
    memory_guard: float | None = DEFAULT_MEMORY_GUARD  # MiB of growth: connections dropped
    handshake_timeout: float = 10.0  # seconds a connection may take to say hello
    round_length: int = 0            # generations a round lasts (0: no rounds)
    protect: int = DEFAULT_PROTECT   # generations a fresh placement is shielded (0: never)
    record: Path | None = None       # append every generation to this replay log
    metrics: tuple[str, int] | None = None  # serve Prometheus /metrics on (host, port)

    @property
    def window(self) -> float:
        """How long players may take to answer a generation's game_logic requests."""
        if self.decision_window is not None:
            return self.decision_window
        return max(0.02, self.tick / 2)

    def endpoint(self, port: int) -> str:
        host = "*" if self.host in ("0.0.0.0", "*") else self.host
        return f"tcp://{host}:{port if port else '*'}"
