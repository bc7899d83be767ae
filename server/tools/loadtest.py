"""A load test of the game: many bots against one server, generation times measured.

``lifenet loadtest --bots 200 --size 256x256 --tick 0.1 --seconds 30`` starts a server,
workers and ``lifenet bot`` processes (``--bot-processes``, 250 bots each by default;
all on loopback), watches the world for ``--seconds``, and reports the p50/p99 of the
server's step time (the ``ms`` every frame carries) and of the interval between
generations, how many players were connected, and the bytes one viewer received a
generation: a whole-world subscriber (``FrameView``), or with ``--viewport HxW`` a
``Viewport`` of that many cells in the middle of the world (what a client of a big
world receives). Every process it starts is stopped at the end.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from server.tools.children import free_port
from server.tools.up import Embedded
from shared.frames import FrameView
from shared.remote import status
from shared.viewport import Viewport

JOIN_TIMEOUT = 120.0
BOTS_PER_PROCESS = 250  # one thread answers them all: more would answer late
# The bots stand in for players on machines of their own; on this one they run this
# much lower in priority, and take the CPU the server and its workers leave (whether
# they still answered in time is reported: ``answered_in_time``).
BOT_NICE = 10


@dataclass(frozen=True)
class LoadTest:
    """What to run: how many bots of which strategy, on what world, for how long."""

    bots: int = 200
    strategy: str = "random"
    workers: int = 2
    size: str = "256x256"
    tick: float = 0.1
    seconds: float = 30.0
    viewport: tuple[int, int] | None = None  # watch through a viewport of HxW cells
    bot_processes: int | None = None         # None: one per BOTS_PER_PROCESS bots
    bot_nice: int = BOT_NICE                 # the bots' processes this much lower


def run_loadtest(test: LoadTest) -> dict[str, Any]:
    """Run ``test``; the figures as a dict (see the module docstring)."""
    ports = {name: free_port() for name in ("worker", "player", "frame", "view")}
    height, width = (int(v) for v in test.size.split("x"))
    server_argv = ["--size", test.size, "--tick", str(test.tick), "--fill", "0.1",
                   "--seed", "1", "--max-players-per-address", str(test.bots + 1),
                   "--max-players", str(max(4096, test.bots + 1)),
                   "--worker-port", str(ports["worker"]),
                   "--player-port", str(ports["player"]), "--frame-port", str(ports["frame"]),
                   "--view-port", str(ports["view"])]
    processes = test.bot_processes or -(-test.bots // BOTS_PER_PROCESS)
    embedded = Embedded(server_argv=server_argv, worker_argv=[], workers=test.workers,
                        host="127.0.0.1", player_port=ports["player"],
                        frame_port=ports["frame"], worker_port=ports["worker"],
                        bots=test.bots, bot_strategy=test.strategy,
                        bot_processes=processes, bot_nice=test.bot_nice,
                        log_level="warning")
    endpoint = embedded.player_endpoint
    step_ms: list[float] = []
    arrivals: list[float] = []
    gens: list[int] = []
    received = 0
    watcher_s = 0.0
    try:
        embedded.start()
        began = time.monotonic()
        embedded.children.wait_until(
            lambda: status(endpoint)["players"] >= test.bots, JOIN_TIMEOUT,
            f"{test.bots} bots to join", watch=[p for _, p in embedded.children.started],
            interval=0.5)
        joined_s = time.monotonic() - began
        view: FrameView | Viewport
        if test.viewport is None:
            view = FrameView(f"tcp://127.0.0.1:{ports['frame']}")
        else:
            view = Viewport(f"tcp://127.0.0.1:{ports['view']}", endpoint, (height, width))
            vh, vw = test.viewport
            view.view((height - vh) // 2, (width - vw) // 2, vh, vw)
        try:
            settle = time.monotonic() + 2.0  # the first keyframes are not a generation's
            while time.monotonic() < settle:
                view.poll(0.1)
            start_bytes = view.bytes
            cpu_before = cpu_seconds(embedded)
            watcher_before = time.process_time()
            before = status(endpoint)
            sent_before = before.get("player_bytes", 0)
            ends = time.monotonic() + test.seconds
            while time.monotonic() < ends:
                gen = view.gen
                if view.poll(0.2) and view.gen != gen:
                    step_ms.append(view.info["ms"])
                    arrivals.append(time.monotonic())
                    gens.append(view.gen)
            received = view.bytes - start_bytes
            cpu_after = cpu_seconds(embedded)
            watcher_s = time.process_time() - watcher_before
            after = status(endpoint)
            sent = after.get("player_bytes", 0) - sent_before
        finally:
            view.close()
        report = status(endpoint)
        stages = _stage_means(before.get("stages"), after.get("stages"))
        asked = after["decisions"]["asked"] - before["decisions"]["asked"]
        answered = after["decisions"]["answered"] - before["decisions"]["answered"]
        held = after["decisions"]["held"] - before["decisions"]["held"]
    finally:
        embedded.shutdown()
    intervals = np.diff(arrivals) * 1000

    def percentile(values: Any, q: float) -> float | None:
        return float(np.percentile(values, q)) if len(values) else None

    generations = gens[-1] - gens[0] if gens else 0
    cpu_ms = {name: round((cpu_after.get(name, 0.0) - seconds) * 1000 / max(1, generations), 1)
              for name, seconds in cpu_before.items()}
    return {
        "bots": test.bots, "bot_processes": processes, "size": test.size,
        "tick_ms": test.tick * 1000, "workers": test.workers, "seconds": test.seconds,
        "joined_in_s": round(joined_s, 1),
        "generations": generations,
        "frames_seen": len(gens),
        "players_connected_at_end": report["players"],
        "players_owning_at_end": report.get("players_owning"),
        "step_ms_p50": percentile(step_ms, 50),
        "step_ms_p99": percentile(step_ms, 99),
        "interval_ms_p50": percentile(intervals, 50),
        "interval_ms_p99": percentile(intervals, 99),
        "viewer": "whole world" if test.viewport is None
                  else f"viewport {test.viewport[0]}x{test.viewport[1]}",
        "viewer_bytes_per_generation": round(received / max(1, len(gens))),
        # what the server sent its players (requests, replies), a player a generation
        "player_bytes_per_generation": round(sent / max(1, generations) / test.bots),
        "population_at_end": report["population"],
        # of the players asked about their cells while watched, the share whose answer
        # came before the decision window closed (bots that cannot keep up lower it)
        "answered_in_time": round(answered / asked, 4) if asked else None,
        # of the players' turns to be asked, the share skipped: their answers to earlier
        # requests were not read yet (the server's lobby behind, or the player silent)
        "held_back": round(held / (asked + held), 4) if asked + held else None,
        "bot_nice": test.bot_nice,
        # the server's mean ms a generation in each stage of its step while watched
        # (ask, workers, players: the wait for the answers and checking them, ...)
        "server_stages_ms": stages,
        # CPU time a generation (user + system, ms), what the load of the machine does
        # not change much: the server, its workers, the bots' processes together
        "cpu_ms_per_generation": {
            "server": cpu_ms.get("server"),
            "workers": round(sum(v for k, v in cpu_ms.items() if k.startswith("worker")), 1),
            "bots": round(sum(v for k, v in cpu_ms.items() if k.startswith("bots")), 1),
            # this process: the viewer that times the generations
            "viewer": round(watcher_s * 1000 / max(1, generations), 1)},
    }


def _stage_means(before: dict[str, Any] | None,
                 after: dict[str, Any] | None) -> dict[str, float] | None:
    """The mean ms a generation of each stage between two status readings."""
    if not before or not after:
        return None
    made = after["generations"] - before["generations"]
    if made <= 0:
        return None
    return {stage: round((ms - before["ms"].get(stage, 0.0)) / made, 2)
            for stage, ms in after["ms"].items()}


def cpu_seconds(embedded: Embedded) -> dict[str, float]:
    """Each running child's CPU time so far (user + system, s), by name; from
    ``/proc`` (Linux): empty elsewhere."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, proc in embedded.children.started:
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return out
