"""A load test of the game: many bots against one server, generation times measured.

``python -m server.loadtest --bots 200 --size 256x256 --tick 0.1 --seconds 30`` starts a
server, workers and one ``lifenet bot --count N`` process (all on loopback), watches
the frames for ``--seconds``, and prints the p50/p99 of the server's step time (the
``ms`` every frame carries) and of the interval between generations, with how many
players were connected. Every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from client.remote import status
from client.session import FrameView
from server.up import Embedded, free_port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=200)
    parser.add_argument("--strategy", default="random")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--tick", type=float, default=0.1)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--json", dest="json_file", default=None)
    args = parser.parse_args(argv)
    ports = {name: free_port() for name in ("worker", "player", "frame")}
    server_argv = ["--size", args.size, "--tick", str(args.tick), "--fill", "0.1",
                   "--seed", "1", "--worker-port", str(ports["worker"]),
                   "--player-port", str(ports["player"]), "--frame-port", str(ports["frame"])]
    embedded = Embedded(server_argv=server_argv, worker_argv=[], workers=args.workers,
                        host="127.0.0.1", player_port=ports["player"],
                        frame_port=ports["frame"], worker_port=ports["worker"],
                        bots=args.bots, bot_strategy=args.strategy, log_level="warning")
    endpoint = f"tcp://127.0.0.1:{ports['player']}"
    try:
        embedded.start()
        deadline = time.monotonic() + 60
        while status(endpoint)["players"] < args.bots:
            if time.monotonic() > deadline:
                print("the bots did not all join within 60 s", file=sys.stderr)
                return 1
            time.sleep(0.2)
        view = FrameView(f"tcp://127.0.0.1:{ports['frame']}")
        step_ms: list[float] = []
        arrivals: list[float] = []
        gens: list[int] = []
        ends = time.monotonic() + args.seconds
        while time.monotonic() < ends:
            if view.poll(0.2):
                step_ms.append(view.info["ms"])
                arrivals.append(time.monotonic())
                gens.append(view.gen)
        view.close()
        report = status(endpoint)
    finally:
        embedded.shutdown()
    intervals = np.diff(arrivals) * 1000
    result = {
        "bots": args.bots, "size": args.size, "tick_ms": args.tick * 1000,
        "workers": args.workers, "seconds": args.seconds,
        "generations": gens[-1] - gens[0] if gens else 0,
        "frames_seen": len(gens),
        "players_connected_at_end": report["players"],
        "step_ms_p50": float(np.percentile(step_ms, 50)) if step_ms else None,
        "step_ms_p99": float(np.percentile(step_ms, 99)) if step_ms else None,
        "interval_ms_p50": float(np.percentile(intervals, 50)) if len(intervals) else None,
        "interval_ms_p99": float(np.percentile(intervals, 99)) if len(intervals) else None,
        "population_at_end": report["population"],
    }
    print(json.dumps(result, indent=2))
    if args.json_file:
        with open(args.json_file, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
