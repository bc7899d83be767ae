"""Workers that misbehave, for the tests: ``python -m tests.integration.liar MODE ...``.

Real worker processes (``server.worker.Worker``, the real connection, heartbeats and
all) whose answers are wrong in the ways a buggy or hostile worker's could be:

    alive     every cell of every tile alive
    flip      the right answer with one cell flipped
    stale     the answer it gave for the same batch a generation before (an old tile)
    slow:F    the right answer, F times as slow (it sleeps F - 1 times its compute)
    silent    takes every batch and never answers one (heartbeating all along)
    mute:N    does not answer its first N batches, then answers right

Usage: ``python -m tests.integration.liar MODE --connect tcp://HOST:PORT [--keys DIR]``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from server.worker.process import Worker, WorkerConfig, run_worker
from shared import bitlife, protocol
from shared.grid import Codes, as_payload, pack_bits, unpack_bits
from shared.keys import Credentials
from shared.protocol import Kind, Message


class Liar(Worker):
    mode = "alive"
    factor = 1.0

    def __init__(self, config: WorkerConfig) -> None:
        super().__init__(config)
        self.previous: dict[int, Codes] = {}
        self.muted = 0

    def compute(self, msg: Message) -> Message:
        began = time.perf_counter()
        answer = super().compute(msg)
        if answer.kind is not Kind.RESULT:
            return answer
        h, w, packed = answer["h"], answer["w"], answer.body.get("packed", False)
        rows = answer.body.get("rows", False)  # whole rows of a packed world, in words
        if rows:
            codes = bitlife.to_cells(bitlife.band_from_wire(answer.payloads[0], h, w), w)
        else:
            codes = unpack_bits(answer.payloads[0], (h, w)) if packed else \
                np.frombuffer(answer.payloads[0], dtype=np.uint8).reshape(h, w).copy()
        if self.mode in ("silent", "mute"):
            return answer
        if self.mode == "slow":
            time.sleep((self.factor - 1) * (time.perf_counter() - began))
            return answer
        right = codes.copy()
        if self.mode == "alive":
            codes[:] = 1
        elif self.mode == "flip":
            codes[0, 0] = 0 if codes[0, 0] else 1
        elif self.mode == "stale":
            old = self.previous.get(msg["batch"])
            if old is not None and old.shape == codes.shape:
                codes = old
        self.previous[msg["batch"]] = right
        if rows:
            return protocol.message(
                Kind.RESULT, [as_payload(bitlife.band_payload(bitlife.from_cells(codes)))],
                gen=msg["gen"], batch=msg["batch"], attempt=msg["attempt"], h=h, w=w,
                rows=True)
        payload = pack_bits(codes) if packed else codes
        return protocol.message(Kind.RESULT, [as_payload(payload)], gen=msg["gen"],
                                batch=msg["batch"], attempt=msg["attempt"], h=h, w=w,
                                **({"packed": True} if packed else {}))

    def _send(self, sock: zmq.Socket[Any], msg: Message) -> None:  # type: ignore[override]
        if msg.kind is Kind.RESULT and (self.mode == "silent" or (
                self.mode == "mute" and self.muted < self.factor)):
            self.muted += 1
            return
        Worker._send(sock, msg)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode")
    parser.add_argument("--connect", required=True)
    parser.add_argument("--keys", type=Path, default=None)
    parser.add_argument("--name", default="liar")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s liar %(message)s")
    mode, _, factor = args.mode.partition(":")
    Liar.mode, Liar.factor = mode, float(factor or 1)
    credentials = Credentials.in_dir(args.keys, "worker") if args.keys else None
    return run_worker(WorkerConfig(connect=args.connect, name=args.name, heartbeat=0.2,
                                   credentials=credentials), Liar)


if __name__ == "__main__":
    raise SystemExit(main())
