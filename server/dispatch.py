"""Dispatcher threads: the fan-out and fan-in of one generation (the book's item 58).

A ``Dispatcher`` is a ``StoppableWorker``: it takes a ``Batch`` (a tile of the frozen
generation with its one-cell halo) from the ``ClosableQueue``, sends it through its own
socket to the broker, which hands it to a live worker, and blocks on the reply with a
timeout. When the worker dies (the broker says ``LOST``), stalls (the timeout passes) or
answers with an error, the batch is sent again, never to that worker, up to
``max_attempts`` times. When no worker takes it within ``fallback_after`` seconds, the
dispatcher computes it itself (``server.verify.LocalKernel``): the world never waits on
a peer's word. An answer drawn for checking (``--verify``) is computed here too and
compared; a liar's answer is replaced by the server's and the liar quarantined.

The tile is written into the next generation's ``LockingGrid`` with ``paste_once``, so
a batch is applied at most once even when two attempts both answer. Replies for
another batch or generation are ignored.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from queue import Queue
from typing import Any

import numpy as np
import zmq

from server import envelope
from server.envelope import DISPATCH_ENDPOINT, Envelope, Key, Verb
from server.verify import UNVERIFIED, LocalKernel, Verification
from shared import protocol
from shared.bitlife import band_from_wire
from shared.errors import Closed, ProtocolError, SimulationError
from shared.grid import (
    Codes,
    LockingGrid,
    as_payload,
    codes_from,
    codes_payload,
    is_wide,
    unpack_bits,
)
from shared.pipeline import ClosableQueue, Outcome, StoppableWorker
from shared.protocol import Kind
from shared.ratelimit import LogLimiter

log = logging.getLogger("lifenet.dispatch")
_resends = LogLimiter(log, interval=10.0)  # one line per worker per 10 s; the rest counted
SEND_TIMEOUT_MS = 2000  # an envelope the broker does not take in this long: it is gone


@dataclass
class Batch:
    """One tile of generation ``gen``: cells ``(y..y+h-1, x..x+w-1)`` and their halo."""

    gen: int
    index: int
    y: int
    x: int
    h: int
    w: int
    tile: Codes          # (h + 2, w + 2) cell codes, C-contiguous, or their pack_bits,
    #                      or with ``rows`` (h + 2) rows of little-endian words (the
    #                      server's own share: native words, a view of the world)
    target: LockingGrid  # the next generation, written by fan-in
    rule: str
    packed: bool = False  # every cell is 0 or 1: one bit a cell on the wire
    tile_max: int = 1     # the largest code in the tile (an answer cannot exceed it)
    prefer: int = 0       # the worker the engine chose for it (0: any)
    rows: bool = False    # whole rows (x 0, w the width) of a packed world, in words:
    #                       no halo columns (the torus wraps them), answered in words
    local: bool = False   # the server's own share: stepped by the engine, never sent

    @property
    def cells(self) -> tuple[int, int, int, int]:
        return (self.y, self.x, self.h, self.w)

    @property
    def wide(self) -> bool:
        """Whether its codes travel two bytes a cell (a world with player ids > 254)."""
        return not self.packed and not self.rows and is_wide(self.tile)


class Fate(Enum):
    """What became of one attempt of a batch."""

    OK = "answered"
    TIMEOUT = "timed out"
    LOST = "was lost"
    ERROR = "failed"
    UNTAKEN = "was taken by no worker"


LOCAL = 0  # the "worker" of a batch the server computed itself


@dataclass
class Answer:
    """How a batch was answered: by which worker (``LOCAL``: the server), whether this
    answer was the one applied, the shortest per-cell I/O wait the worker reported (if
    it did), whether the server checked it, and whether the check caught a lie."""

    worker: int
    applied: bool
    min_wait: float | None = None
    checked: bool = False
    lied: bool = False
    mark: bytes = b""  # the key it came with (the connection without keys; LOCAL: none)
    share: bool = False  # a batch of the server's own share


class Dispatcher(StoppableWorker[Batch, Answer]):
    """Sends batches to workers through the broker and writes their answers."""

    def __init__(self, context: zmq.Context[Any], in_queue: ClosableQueue[Batch],
                 out_queue: Queue[Outcome[Batch, Answer]], stop_event: threading.Event,
                 *, max_attempts: int = 5, name: str = "dispatcher",
                 fallback_after: float | None = None,
                 verification: Verification = UNVERIFIED,
                 kernel: LocalKernel | None = None,
                 broker_alive: Callable[[], bool] = lambda: True) -> None:
        super().__init__(None, in_queue, out_queue, name=name)
        self.broker_alive = broker_alive  # a batch waits for nobody once the broker ended
        self.context = context
        self.stop_event = stop_event
        self.max_attempts = max_attempts
        self.fallback_after = fallback_after  # None: wait for a worker, however long
        self.verification = verification
        self.kernel = kernel or LocalKernel()
        self.sock: zmq.Socket[Any] | None = None
        self.resent = 0
        self.sent = 0    # sends to workers (re-sends too), read by the metrics
        self.failed = 0  # batches that failed every attempt
        # Told each answer's worker and round trip, in this thread (``--metrics``).
        self.on_answer: Callable[[int, float], None] | None = None

    def setup(self) -> None:
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)  # a broker that is gone: no hang
        sock.connect(DISPATCH_ENDPOINT)
        self.sock = sock

    def teardown(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def compute_here(self, batch: Batch) -> Codes:
        """The batch's next generation computed in this process."""
        return self.kernel.compute(batch.tile, batch.h, batch.w, batch.rule, batch.packed,
                                   batch.rows)

    def process(self, batch: Batch) -> Answer:
        exclude: list[int] = []
        reasons: list[str] = []
        for attempt in range(self.max_attempts):
            began = time.monotonic()
            self._send(batch, attempt, exclude)
            self.sent += 1
            fate, worker, detail = self._await(batch, attempt)
            if fate is Fate.UNTAKEN:  # no worker would or could: the server computes it
                self._cancel(batch, attempt)
                applied = batch.target.paste_once(batch.index, batch.y, batch.x,
                                                  self.compute_here(batch))
                return Answer(LOCAL, applied)
            if isinstance(detail, tuple):
                if self.on_answer is not None:
                    self.on_answer(worker, time.monotonic() - began)
                codes, min_wait, mark = detail
                checked = lied = False
                if self.verification.picks():
                    checked = True
                    truth = self.compute_here(batch)
                    if not np.array_equal(codes, truth):
                        lied = True
                        self._quarantine(batch, attempt, worker, mark)
                        codes = truth
                applied = batch.target.paste_once(batch.index, batch.y, batch.x, codes)
                return Answer(worker, applied, min_wait, checked, lied, mark)
            if fate is Fate.TIMEOUT:  # its credit back to it, and it is suspect
                self._cancel(batch, attempt, worker)
            self.resent += 1
            reasons.append(f"worker {worker} {fate.value}: {detail}")
            _resends.warning(f"{worker}", "batch %d of generation %d, attempt %d: %s; "
                             "sending it again",
                        batch.index, batch.gen, attempt, reasons[-1])
            if worker not in exclude:
                exclude.append(worker)
        self.failed += 1
        raise SimulationError(
            f"generation {batch.gen}: batch {batch.index} failed {self.max_attempts} times "
            f"({'; '.join(reasons[-3:])})", [batch.cells])

    def _send(self, batch: Batch, attempt: int, exclude: list[int]) -> None:
        assert self.sock is not None
        if batch.rows:
            payload, flags = as_payload(batch.tile), {"rows": True}
        elif batch.packed:
            payload, flags = as_payload(batch.tile), {"packed": True}
        else:
            wide, payload = codes_payload(batch.tile)
            flags = {"wide": True} if wide else {}
        msg = protocol.message(
            Kind.BATCH, [payload], gen=batch.gen,
            batch=batch.index, attempt=attempt, y=batch.y, x=batch.x, h=batch.h, w=batch.w,
            rule=batch.rule, **flags)
        try:
            envelope.send(self.sock, Envelope(Verb.SEND, Key(batch.gen, batch.index, attempt),
                                              exclude=frozenset(exclude),
                                              prefer=batch.prefer if attempt == 0 else 0,
                                              cells=batch.h * batch.w,
                                              frames=protocol.encode(msg)))
        except zmq.Again as e:
            raise SimulationError(f"generation {batch.gen}: the broker takes no batch "
                                  f"(for {SEND_TIMEOUT_MS} ms)", [batch.cells]) from e

    def _cancel(self, batch: Batch, attempt: int, worker: int = 0) -> None:
        """No longer wanted: out of the broker's queue, or off ``worker``, which let it
        time out."""
        assert self.sock is not None
        with contextlib.suppress(zmq.Again):  # the broker is gone: nothing to forget
            envelope.send(self.sock, Envelope(Verb.CANCEL,
                                              Key(batch.gen, batch.index, attempt), worker))

    def _quarantine(self, batch: Batch, attempt: int, worker: int, mark: bytes) -> None:
        """Tell the broker: ``worker`` (with the key ``mark``) answered this batch
        wrongly."""
        assert self.sock is not None
        log.warning("batch %d of generation %d: worker %d's answer differs from the "
                    "server's own computation: it is quarantined", batch.index, batch.gen,
                    worker)
        try:
            envelope.send(self.sock, Envelope(Verb.QUARANTINE, Key(batch.gen, batch.index,
                                                                   attempt), worker,
                                              mark=mark))
        except zmq.Again:
            log.error("worker %d lied, and the broker takes no report of it", worker)

    def _await(self, batch: Batch, attempt: int) -> tuple[Fate, int, object]:
        """Wait for this attempt's fate: ``(Fate.OK, worker, (codes, min_wait, mark))``,
        or a failure with its reason."""
        assert self.sock is not None
        deadline: float | None = None
        untaken = None if self.fallback_after is None \
            else time.monotonic() + self.fallback_after
        worker = 0
        while True:
            if self.stop_event.is_set():
                raise Closed("server stopping")
            wait = 0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))
            if not self.sock.poll(int(wait * 1000)):
                if not self.broker_alive():
                    raise SimulationError(f"generation {batch.gen}: the worker broker "
                                          "has stopped", [batch.cells])
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return Fate.TIMEOUT, worker, "no answer before the batch timeout"
                if deadline is None and untaken is not None and now >= untaken:
                    return Fate.UNTAKEN, 0, "no worker took it in time"
                continue
            got = envelope.decode(self.sock.recv_multipart(copy=False))
            if (got.key.gen, got.key.batch) != (batch.gen, batch.index):
                continue  # a late answer for an earlier batch: already decided
            this_attempt = got.key.attempt == attempt
            if got.verb is Verb.SENT:
                if this_attempt:
                    worker = got.worker
                    deadline = time.monotonic() + got.timeout
            elif got.verb is Verb.LOST:
                if this_attempt:
                    return Fate.LOST, got.worker, "worker lost"
            elif got.verb is Verb.REPLY:
                verdict = self._check_reply(batch, got.frames)
                if isinstance(verdict, tuple):
                    return Fate.OK, got.worker, (*verdict, got.mark)
                if this_attempt:
                    return Fate.ERROR, got.worker, verdict

    @staticmethod
    def _check_reply(batch: Batch, frames: list[Any]) -> tuple[Codes, float | None] | str:
        """The answered codes and shortest per-cell wait, or why they cannot be used."""
        try:
            msg = protocol.decode(frames)
        except ProtocolError as e:
            return f"bad result: {e}"
        if msg.kind is Kind.ERROR:
            return f"worker error {msg['code']}: {msg['reason']}"
        if msg.kind is not Kind.RESULT or (msg["h"], msg["w"]) != (batch.h, batch.w):
            return f"result of shape {msg.body.get('h')}x{msg.body.get('w')}, " \
                   f"expected {batch.h}x{batch.w}"
        if msg.body.get("packed", False) != batch.packed \
                or msg.body.get("rows", False) != batch.rows:
            return "result packed differently from its batch"
        if msg.body.get("wide", False) != batch.wide:
            return "result codes not as wide as its batch's"
        if batch.rows:  # words, pasted as they are (the bits past the width cleared)
            codes = band_from_wire(msg.payloads[0], batch.h, batch.w)
        elif batch.packed:
            codes = unpack_bits(msg.payloads[0], (batch.h, batch.w))
        else:
            codes = codes_from(msg.payloads[0], batch.wide, (batch.h, batch.w))
            # Every live code of the next generation is a survivor's, a parent's, or neutral.
            if int(codes.max(initial=0)) > max(batch.tile_max, 1):
                return "result has owners that are not in the tile"
        min_wait = None
        if len(msg.payloads) > 1:
            min_wait = float(np.frombuffer(msg.payloads[1], dtype=np.float32).min())
        return codes, min_wait
