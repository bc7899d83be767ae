"""Bytes a viewer receives a generation: a viewport vs the whole-world stream.

Starts a server in this process (a soup, no workers: the server computes every
generation itself, which changes nothing of what is published), one whole-world
subscriber (topic ``b"w"``, what ``FrameView`` gets) and one ``Viewport`` of ``h`` x
``w`` cells, steps ``generations`` generations one at a time, waits until both have
received each one, and prints what each received (topics, headers and payloads).

    .venv/bin/python scripts/viewport_bytes.py [--size 4096] [--view 120x200]
        [--generations 40] [--fill 0.35]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import zmq

from server.app import Server
from server.config import ServerConfig
from server.tools.children import free_port
from shared import protocol
from shared.viewport import Viewport


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=4096, help="side of the world")
    parser.add_argument("--view", default="120x200", help="the viewport, HxW cells")
    parser.add_argument("--at", default="1000x1000", help="its top-left corner, YxX")
    parser.add_argument("--generations", type=int, default=40)
    parser.add_argument("--fill", type=float, default=0.35)
    parser.add_argument("--warmup", type=int, default=0,
                        help="generations stepped before measuring (the soup settles)")
    args = parser.parse_args()
    vh, vw = (int(v) for v in args.view.split("x"))
    vy, vx = (int(v) for v in args.at.split("x"))
    size = (args.size, args.size)
    server = Server(ServerConfig(
        worker_port=free_port(), player_port=free_port(), frame_port=free_port(),
        size=size, fill=args.fill, seed=1, tick=0.0, dispatchers=2, fallback_after=0.0))
    server.start()
    context: zmq.Context[Any] = zmq.Context()
    world = context.socket(zmq.SUB)
    world.setsockopt(zmq.LINGER, 0)
    world.setsockopt(zmq.SUBSCRIBE, protocol.WORLD_TOPIC)
    world.connect(server.frame_endpoint)
    view = Viewport(server.view_endpoint, server.lobby.bound_endpoint, size, context)
    try:
        view.view(vy, vx, vh, vw)
        deadline = time.monotonic() + 10
        while not view.acks:
            view.poll(0.05)
            assert time.monotonic() < deadline, "the VIEW was not answered"
        time.sleep(0.3)  # both subscriptions have reached the server
        for _ in range(args.warmup):
            server.advance()
            view.poll(0)
            while world.poll(0):
                world.recv_multipart()
        world_bytes, world_msgs, world_gen, steps = 0, 0, -1, 0.0
        began, keyframes, deltas = view.bytes, view.keyframes, view.deltas
        for _ in range(args.generations):
            t = time.perf_counter()
            server.advance()
            steps += time.perf_counter() - t
            gen = server.engine.generation
            deadline = time.monotonic() + 30
            while world_gen < gen or any(view.gens.get(c) != gen for c in view.chunks) \
                    or view.gen != gen:
                assert time.monotonic() < deadline, f"generation {gen} did not arrive"
                if world.poll(10):
                    frames = world.recv_multipart()
                    world_bytes += sum(len(f) for f in frames)
                    world_msgs += 1
                    world_gen = protocol.decode(frames[1:])["gen"]
                view.poll(0)
        n = args.generations
        mine = (view.bytes - began) / n
        print(f"world {args.size}x{args.size}, fill {args.fill}, generations "
              f"{gen - n + 1}..{gen} (a step {steps / n * 1000:.0f} ms), population "
              f"{server.engine.latest.board.population:,}")
        print(f"whole-world stream: {world_bytes / n:,.0f} B a generation "
              f"({world_msgs} messages)")
        print(f"viewport {vh}x{vw} at ({vy}, {vx}), {len(view.chunks)} chunks: "
              f"{mine:,.0f} B a generation ({view.keyframes - keyframes} chunk keyframes, "
              f"{view.deltas - deltas} chunk deltas, and an INFO a generation)")
        print(f"ratio: {world_bytes / max(mine * n, 1):,.0f} to 1")
    finally:
        view.close()
        world.close()
        context.term()
        server.close()


if __name__ == "__main__":
    main()
