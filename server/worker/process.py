"""The worker process: answers batches with the next generation of their tiles.

A worker connects a DEALER socket to the server's worker endpoint, says ``READY`` and
then answers every ``BATCH`` with a ``RESULT``, computing ``count_neighbors`` and
``game_logic`` for every cell of the tile (vectorised by default, ``kernel="bits"``: a
``packed`` tile of neutral cells by the bit-parallel kernel, ``shared.bitlife``, without
unpacking it, when it is large enough for that to pay (``bitlife.pays``), other tiles by
``shared.kernel``; ``kernel="numpy"`` steps every
tile with ``shared.kernel``, as lifenet did before the bit kernel; ``kernel="python"``
runs the book's per-cell functions). Heartbeats go both ways (Paranoid Pirate): when
the server is silent for ``liveness`` beats, the worker reconnects with exponential
backoff. SIGTERM and SIGINT only set a flag that the loop reads; the loop then says
``BYE`` and closes its socket, so the server re-sends any batch it held at once.

With ``io_latency`` the worker plays the book's ``my_socket.recv(100)``: every cell's
``game_logic`` waits for its own I/O to complete before its answer is produced. The
I/O of all the cells of a batch is issued together when the batch arrives and the
waits overlap (one timer per batch on the loop's timer heap), but no answer leaves
before ``io_latency`` has passed since its cell's I/O began. The worker reports the wait
of each cell in the result, so tests can check that nothing was answered early.
"""

from __future__ import annotations

import heapq
import logging
import os
import random
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from types import FrameType
from typing import Any

import numpy as np
import zmq

from shared import protocol
from shared.bitlife import (
    band_from_wire,
    band_payload,
    from_cells,
    pays,
    step_band,
    step_wire,
    to_cells,
)
from shared.errors import ConfigError, ProtocolError, RuleError
from shared.grid import Codes, as_payload, codes_from, codes_payload, pack_bits, unpack_bits
from shared.kernel import rule_table, step_tile
from shared.keys import Credentials
from shared.life import step_tile_reference
from shared.malloc import keep_freed_memory
from shared.protocol import ErrorCode, Kind, Message
from shared.ratelimit import LogLimiter
from shared.remote import Handshake, secure
from shared.rules import Rule, parse_rule

log = logging.getLogger("lifenet.worker")
MAX_RULE_TABLES = 16
MAX_HELD_BYTES = 256 << 20  # batches waiting for their I/O, at most (whatever the credit)
_odd = LogLimiter(log)


@dataclass
class WorkerConfig:
    connect: str
    name: str = ""
    credit: int = 0            # 0: choose (2, or 16 with io_latency: the server's cap)
    io_latency: float = 0.0
    kernel: str = "bits"       # neutral tiles bit-parallel; "numpy": step_tile for all;
                               # "python": the book's per-cell functions
    heartbeat: float = 1.0
    liveness: int = 3
    backoff_min: float = 0.25
    backoff_max: float = 8.0
    stop: threading.Event = field(default_factory=threading.Event)
    credentials: Credentials | None = None  # CURVE: the server's key and this worker's
    metrics: tuple[str, int] | None = None  # serve Prometheus /metrics on (host, port)

    def effective_credit(self) -> int:
        if self.credit:
            return self.credit
        return 16 if self.io_latency > 0 else 2


class Ended(Enum):
    """How one connection to the server ended (``Worker._session``)."""

    STOP = "stopped"           # asked to stop (SIGTERM): the worker said BYE
    LOST = "lost"              # never welcomed: reconnect, backing off further
    WELCOMED = "welcomed"      # welcomed, then lost: reconnect, backoff from the start
    FATAL = "refused"          # the server refused us for good (another protocol version)


class Heard(Enum):
    """What a message from the server means for the connection (``Worker._on_message``)."""

    OK = "ok"              # handled; go on
    WELCOME = "welcome"    # the handshake is done
    LOST = "lost"          # the server said BYE, or forgot us: reconnect
    FATAL = "fatal"        # the server refused us for good


@dataclass(order=True)
class _Held:
    """A batch whose cells wait for their I/O to complete before ``game_logic`` runs."""

    release: float
    seq: int
    started: float = field(compare=False)
    msg: Message = field(compare=False)


class Worker:
    """One worker's state across reconnections."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.name = config.name or f"{socket.gethostname()}-{os.getpid()}"
        self.credit = config.effective_credit()
        self.tables: dict[str, tuple[Rule, Any]] = {}
        self.held: list[_Held] = []
        self.seq = 0
        self.answered = 0
        self.reconnects = 0
        self.heartbeat = config.heartbeat

    # -- computing -------------------------------------------------------------------

    def compute(self, msg: Message) -> Message:
        """The ``RESULT`` (or an ``ERROR`` naming the batch) for one ``BATCH``."""
        ref = [msg["gen"], msg["batch"], msg["attempt"]]
        try:
            rule, table = self._rule(msg["rule"])
        except RuleError as e:
            return protocol.error(ErrorCode.BAD_FIELD, str(e), "batch", ref)
        h, w = msg["h"], msg["w"]
        packed = msg.body.get("packed", False)
        started = time.perf_counter()  # compute_ms: from the batch's payload to the result's
        # A neutral tile's next generation is neutral too: it goes back packed (by the
        # bit kernel, words in and words out, where it is the faster one and no other
        # kernel is asked for); the others go back as wide as they came.
        if msg.body.get("rows", False):  # whole rows of the server's packed torus
            return self._compute_rows(msg, rule, table, started)
        if packed and self.config.kernel == "bits" and pays(h, w):
            stepped = step_wire(msg.payloads[0], h, w, rule)
            compute_ms = (time.perf_counter() - started) * 1000
            return protocol.message(Kind.RESULT, [stepped], gen=msg["gen"],
                                    batch=msg["batch"], attempt=msg["attempt"], h=h, w=w,
                                    compute_ms=compute_ms, packed=True)
        if packed:
            tile = unpack_bits(msg.payloads[0], (h + 2, w + 2))
        else:
            tile = codes_from(msg.payloads[0], msg.body.get("wide", False), (h + 2, w + 2))
        out: Codes
        if self.config.kernel == "python":
            out = step_tile_reference(tile, rule)
        else:
            out = step_tile(tile, table)
        if packed:
            payload, flags = as_payload(pack_bits(out)), {"packed": True}
        else:
            wide, payload = codes_payload(out)
            flags = {"wide": True} if wide else {}
        compute_ms = (time.perf_counter() - started) * 1000
        return protocol.message(Kind.RESULT, [payload], gen=msg["gen"],
                                batch=msg["batch"], attempt=msg["attempt"], h=h, w=w,
                                compute_ms=compute_ms, **flags)

    def _compute_rows(self, msg: Message, rule: Rule, table: Any,
                      started: float) -> Message:
        """A ``rows`` batch: ``h`` whole rows of a packed torus and the rows around them,
        in words; the answer is words too. ``--kernel bits`` steps the words as they
        are; the other kernels step the cells (the columns wrap: a torus row)."""
        h, w = msg["h"], msg["w"]
        if self.config.kernel == "bits":
            stepped = step_band(msg.payloads[0], h, w, rule)
        else:
            cells = to_cells(band_from_wire(msg.payloads[0], h + 2, w), w)
            tile = np.pad(cells, ((0, 0), (1, 1)), mode="wrap")
            out = step_tile_reference(tile, rule) if self.config.kernel == "python" \
                else step_tile(tile, table)
            stepped = from_cells(out)
        compute_ms = (time.perf_counter() - started) * 1000
        return protocol.message(Kind.RESULT, [as_payload(band_payload(stepped))],
                                gen=msg["gen"], batch=msg["batch"], attempt=msg["attempt"],
                                h=h, w=w, compute_ms=compute_ms, rows=True)

    def _rule(self, text: str) -> tuple[Rule, Any]:
        """A rule and its table, from a small cache (a server may send any rule text)."""
        if text not in self.tables:
            rule = parse_rule(text)
            self.tables[text] = (rule, rule_table(rule))
            while len(self.tables) > MAX_RULE_TABLES:
                del self.tables[next(iter(self.tables))]
        return self.tables[text]

    # -- the loop --------------------------------------------------------------------

    def run(self) -> int:
        """Serve until stopped; returns the process exit status."""
        context = zmq.Context()
        backoff = self.config.backoff_min
        try:
            while not self.config.stop.is_set():
                outcome = self._session(context)
                if outcome is Ended.STOP:
                    break
                if outcome is Ended.FATAL:
                    return 1
                if outcome is Ended.WELCOMED:
                    backoff = self.config.backoff_min
                self.reconnects += 1
                pause = backoff * (0.5 + random.random() / 2)
                log.info("reconnecting in %.2f s", pause)
                self.config.stop.wait(pause)
                backoff = min(backoff * 2, self.config.backoff_max)
        finally:
            context.destroy(linger=0)
        return 0

    def _session(self, context: zmq.Context[Any]) -> Ended:
        """One connection, until it ends (see ``Ended``)."""
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_PAYLOAD_BYTES + protocol.MAX_HEADER_BYTES)
        secure(sock, self.config.credentials)
        handshake = Handshake(sock, self.config.connect, self.config.credentials is not None,
                              hint="--keys DIR (or --key FILE --server-key FILE)")
        try:
            sock.connect(self.config.connect)
        except zmq.ZMQError as e:
            handshake.close()
            sock.close()
            raise ConfigError(f"cannot connect to {self.config.connect!r}: {e}") from e
        self.held.clear()
        welcomed = False
        try:
            self._send(sock, protocol.message(
                Kind.READY, version=protocol.PROTOCOL_VERSION, name=self.name,
                pid=os.getpid(), credit=self.credit, io_latency=self.config.io_latency))
            now = time.monotonic()
            server_expires = now + self.heartbeat * self.config.liveness
            next_beat = now + self.heartbeat
            while not self.config.stop.is_set():
                now = time.monotonic()
                wake = min(next_beat, server_expires, now + 0.2)
                if self.held:
                    wake = min(wake, self.held[0].release)
                if handshake.monitor is not None:
                    why = handshake.failure()
                    if why is not None:  # said once a connection; libzmq retries it
                        log.error("%s", why)
                        handshake.close()
                    elif handshake.succeeded:
                        handshake.close()
                if sock.poll(max(0.0, wake - now) * 1000):
                    frames = sock.recv_multipart(copy=False)
                    server_expires = time.monotonic() + self.heartbeat * self.config.liveness
                    heard = self._on_message(sock, frames)
                    if heard is Heard.WELCOME:
                        welcomed = True
                        server_expires = (time.monotonic()
                                          + self.heartbeat * self.config.liveness)
                    elif heard is Heard.FATAL:
                        return Ended.FATAL
                    elif heard is Heard.LOST:
                        return Ended.WELCOMED if welcomed else Ended.LOST
                self._release_held(sock)
                now = time.monotonic()
                if now >= next_beat:
                    self._send(sock, protocol.message(Kind.HEARTBEAT))
                    next_beat = now + self.heartbeat
                if now >= server_expires:
                    log.warning("server silent for %d heartbeats: reconnecting",
                                self.config.liveness)
                    return Ended.WELCOMED if welcomed else Ended.LOST
            self._send(sock, protocol.message(Kind.BYE, reason="worker stopping"))
            return Ended.STOP
        finally:
            handshake.close()
            sock.close()

    def _on_message(self, sock: zmq.Socket[Any], frames: list[Any]) -> Heard:
        try:
            msg = protocol.decode(frames)
        except ProtocolError as e:
            _odd.warning("bad", "bad message from the server: %s", e)
            return Heard.OK
        if msg.kind is Kind.BATCH:
            held_bytes = sum(len(h.msg.payloads[0]) for h in self.held)
            if len(self.held) >= self.credit or held_bytes > MAX_HELD_BYTES:
                # More than it said it takes: refused, whatever the server does.
                self._send(sock, protocol.error(
                    ErrorCode.BUSY, f"this worker holds {len(self.held)} batches, its "
                    "credit", "batch", [msg["gen"], msg["batch"], msg["attempt"]]))
                return Heard.OK
            if self.config.io_latency > 0:
                started = time.monotonic()
                self.seq += 1
                heapq.heappush(self.held, _Held(started + self.config.io_latency, self.seq,
                                                started, msg))
            else:
                self._send(sock, self.compute(msg))
                self.answered += 1
            return Heard.OK
        if msg.kind is Kind.WELCOME:
            self.heartbeat = msg["heartbeat"]
            log.info("joined the server as worker %d", msg["worker"])
            return Heard.WELCOME
        if msg.kind is Kind.HEARTBEAT:
            return Heard.OK
        if msg.kind is Kind.BYE:
            log.info("server says bye: %s", msg["reason"])
            return Heard.LOST
        if msg.kind is Kind.ERROR:
            if msg["code"] == ErrorCode.VERSION:
                log.error("server refused us: %s", msg["reason"])
                return Heard.FATAL
            if msg["code"] == ErrorCode.UNKNOWN_PEER:
                return Heard.LOST  # the server restarted and forgot us: say READY again
            _odd.warning(f"error:{msg['code']}", "server error %s: %s", msg["code"],
                         msg["reason"])
            return Heard.OK
        return Heard.OK

    def _release_held(self, sock: zmq.Socket[Any]) -> None:
        """Compute and send every held batch whose cells' I/O has completed."""
        while self.held and self.held[0].release <= time.monotonic():
            held = heapq.heappop(self.held)
            waited = time.monotonic() - held.started
            answer = self.compute(held.msg)
            if answer.kind is Kind.RESULT:
                cells = answer["h"] * answer["w"]
                waits = np.full(cells, waited, dtype=np.float32)
                answer.payloads.append(as_payload(waits))
            self._send(sock, answer)
            self.answered += 1

    @staticmethod
    def _send(sock: zmq.Socket[Any], msg: Message) -> None:
        try:
            sock.send_multipart(protocol.encode(msg), zmq.NOBLOCK, copy=False)
        except zmq.Again:
            log.warning("send queue full; dropping a %s", msg.kind)


def run_worker(config: WorkerConfig, kind: type[Worker] = Worker) -> int:
    """Run a worker (of class ``kind``) in this process until SIGTERM/SIGINT; returns the
    exit status."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        config.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    keep_freed_memory()  # tile-sized temporaries would otherwise be page-faulted in anew
    worker = kind(config)
    if config.metrics is None:
        return worker.run()
    from server.metrics import serve_worker_metrics

    endpoint = serve_worker_metrics(worker, *config.metrics)
    try:
        return worker.run()
    finally:
        endpoint.close()
