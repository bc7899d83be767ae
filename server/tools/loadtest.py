"""A load test of the game: many bots against one server, generation times measured.

``lifenet loadtest --bots 200 --size 256x256 --tick 0.1 --seconds 30`` starts a server,
workers and one ``lifenet bot --count N`` process (all on loopback), watches the frames
for ``--seconds``, and reports the p50/p99 of the server's step time (the ``ms`` every
frame carries) and of the interval between generations, with how many players were
connected. Every process it starts is stopped at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from server.tools.children import free_port
from server.tools.up import Embedded
from shared.frames import FrameView
from shared.remote import status

JOIN_TIMEOUT = 60.0


@dataclass(frozen=True)
class LoadTest:
    """What to run: how many bots of which strategy, on what world, for how long."""

    bots: int = 200
    strategy: str = "random"
    workers: int = 2
    size: str = "256x256"
    tick: float = 0.1
    seconds: float = 30.0


def run_loadtest(test: LoadTest) -> dict[str, Any]:
    """Run ``test``; the figures as a dict (see the module docstring)."""
    ports = {name: free_port() for name in ("worker", "player", "frame")}
    server_argv = ["--size", test.size, "--tick", str(test.tick), "--fill", "0.1",
                   "--seed", "1", "--max-players-per-address", "254",
                   "--worker-port", str(ports["worker"]),
                   "--player-port", str(ports["player"]), "--frame-port", str(ports["frame"])]
    embedded = Embedded(server_argv=server_argv, worker_argv=[], workers=test.workers,
                        host="127.0.0.1", player_port=ports["player"],
                        frame_port=ports["frame"], worker_port=ports["worker"],
                        bots=test.bots, bot_strategy=test.strategy, log_level="warning")
    endpoint = embedded.player_endpoint
    step_ms: list[float] = []
    arrivals: list[float] = []
    gens: list[int] = []
    try:
        embedded.start()
        embedded.children.wait_until(
            lambda: status(endpoint)["players"] >= test.bots, JOIN_TIMEOUT,
            f"{test.bots} bots to join", watch=[p for _, p in embedded.children.started],
            interval=0.2)
        view = FrameView(f"tcp://127.0.0.1:{ports['frame']}")
        try:
            ends = time.monotonic() + test.seconds
            while time.monotonic() < ends:
                if view.poll(0.2):
                    step_ms.append(view.info["ms"])
                    arrivals.append(time.monotonic())
                    gens.append(view.gen)
        finally:
            view.close()
        report = status(endpoint)
    finally:
        embedded.shutdown()
    intervals = np.diff(arrivals) * 1000

    def percentile(values: Any, q: float) -> float | None:
        return float(np.percentile(values, q)) if len(values) else None

    return {
        "bots": test.bots, "size": test.size, "tick_ms": test.tick * 1000,
        "workers": test.workers, "seconds": test.seconds,
        "generations": gens[-1] - gens[0] if gens else 0,
        "frames_seen": len(gens),
        "players_connected_at_end": report["players"],
        "step_ms_p50": percentile(step_ms, 50),
        "step_ms_p99": percentile(step_ms, 99),
        "interval_ms_p50": percentile(intervals, 50),
        "interval_ms_p99": percentile(intervals, 99),
        "population_at_end": report["population"],
    }
