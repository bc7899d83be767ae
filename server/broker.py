"""The worker broker: the one thread that owns the worker endpoint (a ROUTER socket).

Dispatcher threads never touch the worker endpoint; each owns an ``inproc`` DEALER
socket to the broker's second ROUTER. The broker is a Paranoid Pirate queue between the
two:

- Workers announce themselves with ``READY`` (protocol version checked; on a server
  with keys, only from a key the gatekeeper admits), get a ``WELCOME``, and heartbeat
  both ways. A worker whose key is taken off the allow-list is dropped at the next
  heartbeat round, its batches re-sent. A worker silent for ``liveness`` heartbeats,
  or one that says ``BYE``, is dropped, and every dispatcher whose batch it held is
  told so (``LOST``) at once, so the batch is re-sent elsewhere without waiting for a
  timeout.
- What a worker declares is the server's to cap: its ``credit`` (batches held at once)
  by ``max_credit``, its ``io_latency`` (which lengthens its batch deadline) by
  ``max_io_latency``. The deadline of a batch is the server's.
- A dispatcher's ``SEND`` waits in a FIFO until a live worker with credit may take it:
  never one the batch must avoid (it failed this batch, or lied), and for a moment
  (``PREFER_WAIT``) only the one the engine chose for it (``prefer``), then any. With
  no worker that may take it, the request waits: nothing spins, and the dispatcher
  computes the batch itself after its fallback delay (``CANCEL``).
- A worker that let a batch time out (the dispatcher's ``CANCEL`` names it) gets its
  credit for it back, its measured speed lowered, and is *suspect*: no share of the
  world, and no batch but one probe now and then (after ``PROBE_AFTER`` seconds,
  doubling with each strike, up to ``PROBE_AT_MOST``) until it answers a
  batch it was given (in time, or late: a timed-out one). A worker that takes batches
  and never answers them, heartbeating all along, so costs one timeout, then one
  probe's now and then; one that only slowed down comes back by itself. Its standing
  outlives its connection: a worker with its key (its connection, without keys) that
  comes back is as suspect as it left.
- Every answer measures its worker's speed (cells a second, from the moment the batch
  left, or the worker's previous answer if later, to the answer): ``rates`` tells the
  engine, which sizes each worker's share of the next generation by it.
- A worker caught lying (``QUARANTINE``, which names its key: the broker hands every
  answer to its dispatcher with the key it came with) is dropped and gets no more work
  for the server's lifetime: its key is refused (on a server without keys, its
  connection), even if it left before the report came, and every other connection
  with that key is dropped too. The engine recomputes every answer of the generation
  that came with that key.
- A connection says ``READY`` once: another on a live worker's connection is refused.
- A worker's ``RESULT`` goes back to the dispatcher that sent the batch. Results nobody
  waits for any more (an old attempt, an old generation) are dropped here.

The broker never raises out of its loop: bad frames from the network get an ``ERROR``
reply (or are dropped) and the loop goes on. Dispatchers and broker speak in the
envelopes of ``server.envelope``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from server import envelope
from server.auth import WORKERS, ServerKeys, peer_key, serve_curve
from server.envelope import DISPATCH_ENDPOINT, Envelope, Key, Verb
from server.transport import (
    MemoryGuard,
    apply_heartbeats,
    drain,
)
from shared import protocol
from shared.errors import ProtocolError
from shared.protocol import ErrorCode, Kind, Message
from shared.ratelimit import LogLimiter

log = logging.getLogger("lifenet.broker")

DEFAULT_MAX_CREDIT = 16
DEFAULT_MAX_IO_LATENCY = 10.0
RATE_SMOOTHING = 0.3  # weight of the newest measure in a worker's speed
PREFER_WAIT = 0.25   # seconds a batch waits for the worker chosen for it, then any
PROBE_AFTER = 1.0    # seconds before a suspect worker's first probe batch ...
PROBE_AT_MOST = 60.0  # ... doubling with each strike, up to this
CLEAN_ANSWERS = 16   # answers in time that forgive one strike
REMEMBERED = 4096    # suspect workers' standing kept after they leave (by key)


@dataclass
class WorkerPeer:
    """A live worker as the broker sees it."""

    identity: bytes
    id: int
    name: str
    credit: int
    io_latency: float
    expires: float
    key: bytes | None = None  # its CURVE public key (None without keys)
    in_flight: dict[Key, bytes] = field(default_factory=dict)  # key -> dispatcher identity
    sent_at: dict[Key, tuple[float, int]] = field(default_factory=dict)  # key -> (t, cells)
    last_answer: float = 0.0
    rate: float | None = None  # cells a second, measured; None until its first answer
    served: int = 0
    suspect: bool = False  # let a batch time out, and has not answered one since
    strikes: int = 0       # timeouts, less one for every CLEAN_ANSWERS answers in time
    clean: int = 0         # answers in time since the last strike was forgiven
    probe_at: float = 0.0  # when a suspect may have its next probe batch (monotonic)
    timed_out: dict[Key, tuple[float, int]] = field(default_factory=dict)  # (t, cells)

    def may_take(self, now: float) -> bool:
        """Whether it may be given a batch now: not a suspect, or one due a probe
        (one batch at a time)."""
        return not self.suspect or (now >= self.probe_at and not self.in_flight)

    @property
    def mark(self) -> bytes:
        """What a quarantine refuses: its key, or its connection without keys."""
        return self.key or self.identity

    @property
    def free(self) -> int:
        return self.credit - len(self.in_flight)

    def measure(self, key: Key, now: float) -> None:
        """Fold this answer's speed into ``rate``."""
        sent = self.sent_at.pop(key, None)
        if sent is None:
            return
        self._fold(sent, now)

    def _fold(self, sent: tuple[float, int], now: float) -> None:
        began, cells = sent
        began = max(began, self.last_answer)  # it waited behind the worker's previous one
        self.last_answer = now
        if cells <= 0:
            return
        speed = cells / max(now - began, 1e-6)
        self.rate = speed if self.rate is None else (
            RATE_SMOOTHING * speed + (1 - RATE_SMOOTHING) * self.rate)

    def time_out(self, key: Key, now: float) -> bool:
        """The batch ``key`` timed out here: its credit back, its time folded into the
        speed (as if it had answered now), one more strike. Whether it held it."""
        if self.in_flight.pop(key, None) is None:
            return False
        sent = self.sent_at.pop(key, None)
        if sent is not None:
            self._fold(sent, now)
            self.timed_out[key] = sent
            while len(self.timed_out) > 4 * max(self.credit, 1):
                del self.timed_out[next(iter(self.timed_out))]
        self.suspect = True
        self.strikes += 1
        self.clean = 0
        self.probe_at = now + min(PROBE_AT_MOST,
                                  PROBE_AFTER * 2 ** min(self.strikes - 1, 16))
        return True

    def answered(self, key: Key, now: float) -> None:
        """It answered the batch ``key``, in time (measured already) or late (one that
        timed out here, measured now): no longer suspect. Its strikes are forgiven one
        by one, for ``CLEAN_ANSWERS`` answers in time each, so that a worker that
        answers its probe and lets the next batch time out waits longer each time."""
        sent = self.timed_out.pop(key, None)
        if sent is not None:
            self._fold(sent, now)
        elif self.strikes:
            self.clean += 1
            if self.clean >= CLEAN_ANSWERS:
                self.strikes, self.clean = self.strikes - 1, 0
        self.suspect = False


@dataclass
class Request:
    dispatcher: bytes
    key: Key
    exclude: frozenset[int]
    frames: list[Any]
    prefer: int = 0
    cells: int = 0
    queued: float = field(default_factory=time.monotonic)


class WorkerBroker(threading.Thread):
    """Owns the worker endpoint; routes batches to live workers and results back."""

    def __init__(self, context: zmq.Context[Any], endpoint: str, *,
                 heartbeat: float = 1.0, liveness: int = 3, batch_timeout: float = 10.0,
                 max_payload: int = protocol.MAX_PAYLOAD_BYTES,
                 keys: ServerKeys | None = None,
                 admits: Callable[[bytes | None], bool] = lambda key: True,
                 max_credit: int = DEFAULT_MAX_CREDIT,
                 max_io_latency: float = DEFAULT_MAX_IO_LATENCY,
                 guard: MemoryGuard | None = None) -> None:
        super().__init__(name="broker", daemon=True)
        self.context = context
        self.endpoint = endpoint
        self.heartbeat = heartbeat
        self.liveness = liveness
        self.batch_timeout = batch_timeout
        self.max_payload = max_payload
        self.keys = keys
        self.admits = admits  # whether a worker's key may (still) work here
        self.max_credit = max_credit
        self.max_io_latency = max_io_latency
        self.guard = guard or MemoryGuard(None)
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.bound_endpoint = ""
        self.error: BaseException | None = None
        self._workers: dict[bytes, WorkerPeer] = {}
        self._pending: deque[Request] = deque()
        self._next_id = 1
        self._lock = threading.Lock()  # guards the snapshot read by other threads
        self._ids: dict[int, str] = {}  # the live workers' names by id
        self._held: dict[int, int] = {}
        self._rates: dict[int, float | None] = {}
        self._quarantined: set[bytes] = set()  # keys, or identities without keys
        # The suspects that left, by mark: one that comes back is as suspect as it left.
        self._standing: OrderedDict[bytes, tuple[int, float]] = OrderedDict()
        self.dropped_workers = 0
        self.bad_messages = 0
        self._odd = LogLimiter(log)  # what peers do wrong: a few lines, and a count

    # -- read from other threads ---------------------------------------------------

    def worker_names(self) -> list[str]:
        with self._lock:
            return list(self._ids.values())

    def worker_ids(self) -> dict[int, str]:
        """Each live worker's name by its id."""
        with self._lock:
            return dict(self._ids)

    def worker_count(self) -> int:
        with self._lock:
            return len(self._ids)

    def rates(self) -> dict[int, float | None]:
        """Each live worker's measured speed (cells a second), by worker id; not the
        suspects' (they get no share of the world)."""
        with self._lock:
            return dict(self._rates)

    def held_by(self, worker_id: int) -> int:
        """How many batches the worker ``worker_id`` holds (its credit in use), as of
        the broker's last answer, drop or timeout."""
        with self._lock:
            return self._held.get(worker_id, 0)

    def quarantined(self) -> int:
        """How many workers (keys, or connections without keys) were caught lying."""
        with self._lock:
            return len(self._quarantined)

    def stop(self) -> None:
        self.stop_event.set()

    # -- the loop --------------------------------------------------------------------

    def _socket(self) -> zmq.Socket[Any]:
        workers: zmq.Socket[Any] = self.context.socket(zmq.ROUTER)
        workers.setsockopt(zmq.LINGER, 0)
        workers.setsockopt(zmq.ROUTER_MANDATORY, 1)
        workers.setsockopt(zmq.MAXMSGSIZE, self.max_payload + protocol.MAX_HEADER_BYTES)
        apply_heartbeats(workers, self.guard.handshake_ms)
        serve_curve(workers, self.keys, WORKERS)
        return workers

    def run(self) -> None:
        workers = self._socket()
        dispatch = self.context.socket(zmq.ROUTER)
        try:
            dispatch.setsockopt(zmq.LINGER, 0)
            workers.bind(self.endpoint)
            self.bound_endpoint = workers.getsockopt_string(zmq.LAST_ENDPOINT)
            dispatch.bind(DISPATCH_ENDPOINT)
        except zmq.ZMQError as e:
            self.error = e
            workers.close()
            dispatch.close()
            self.ready.set()
            return
        self.ready.set()
        poller = zmq.Poller()
        poller.register(workers, zmq.POLLIN)
        poller.register(dispatch, zmq.POLLIN)
        next_beat = time.monotonic() + self.heartbeat
        try:
            while not self.stop_event.is_set():
                if self.guard.due("workers"):
                    # Every worker dropped: their batches go back to the dispatchers,
                    # and they reconnect and say READY again.
                    poller.unregister(workers)
                    for peer in list(self._workers.values()):
                        self._drop(dispatch, peer)
                    try:
                        workers = self.guard.drop_all("workers", workers, self._socket,
                                                      self.bound_endpoint)
                    except zmq.ZMQError as e:  # logged; the server stops on it
                        self.error = e
                        return
                    poller.register(workers, zmq.POLLIN)
                timeout = max(0.0, min(next_beat - time.monotonic(), 0.1))
                events = dict(poller.poll(int(timeout * 1000)))
                if workers in events:
                    for frames in drain(workers):
                        self._on_worker(workers, dispatch, frames)
                if dispatch in events:
                    for frames in drain(dispatch):
                        self._on_dispatcher(workers, dispatch, frames)
                now = time.monotonic()
                if now >= next_beat:
                    self._beat(workers, dispatch, now)
                    next_beat = now + self.heartbeat
                self._assign(workers, dispatch)
        finally:
            for peer in list(self._workers.values()):
                if workers.closed:
                    break
                self._send(workers, peer.identity, protocol.message(Kind.BYE,
                                                                    reason="server stopping"))
            workers.close()
            dispatch.close()

    # -- workers ---------------------------------------------------------------------

    def _on_worker(self, workers: zmq.Socket[Any], dispatch: zmq.Socket[Any],
                   frames: list[Any]) -> None:
        identity = bytes(frames[0].buffer)
        try:
            msg = protocol.decode(frames[1:], self.max_payload)
        except ProtocolError as e:
            self.bad_messages += 1
            self._odd.warning(f"bad:{identity.hex()}", "bad message on the worker endpoint: "
                              "%s", e)
            self._send(workers, identity, protocol.error(ErrorCode(e.code), str(e)))
            return
        peer = self._workers.get(identity)
        shown = peer_key(frames[1]) if self.keys else None  # without keys: no ZAP, no key
        if msg.kind is Kind.READY:
            self._on_ready(workers, dispatch, identity, msg, shown)
            return
        if peer is not None and shown != peer.key:  # cannot happen through ZAP: refuse it
            self._odd.warning(peer.name, "a message on worker %s's connection came with "
                              "another key: ignored", peer.name)
            return
        if peer is None:
            if msg.kind is not Kind.BYE:
                self._send(workers, identity, protocol.error(
                    ErrorCode.UNKNOWN_PEER, "say READY first", str(msg.kind)))
            return
        now = time.monotonic()
        peer.expires = now + self.heartbeat * self.liveness
        if msg.kind is Kind.HEARTBEAT:
            return
        if msg.kind is Kind.RESULT or (msg.kind is Kind.ERROR and "ref" in msg.body
                                       and len(msg["ref"]) == 3):
            key = Key(msg["gen"], msg["batch"], msg["attempt"]) if msg.kind is Kind.RESULT \
                else Key(*msg["ref"])
            dispatcher = peer.in_flight.pop(key, None)
            if dispatcher is None:
                if msg.kind is Kind.RESULT and key in peer.timed_out:  # late, but here
                    self._answered(peer, key, now)
                else:
                    log.debug("dropping a result nobody waits for: %s from %s", key,
                              peer.name)
                return
            peer.served += 1
            if msg.kind is Kind.RESULT:
                peer.measure(key, now)
                self._answered(peer, key, now)
            else:
                peer.sent_at.pop(key, None)
            # The frames as received (validated above): passing zmq Frames on shares their
            # buffers, where re-encoded memoryviews would be tracked by pyzmq's gc thread.
            envelope.send(dispatch, Envelope(Verb.REPLY, key, peer.id, frames=frames[1:],
                                             mark=peer.mark), to=dispatcher)
            return
        if msg.kind is Kind.BYE:
            log.info("worker %s left: %s", peer.name, msg["reason"])
            self._drop(dispatch, peer)
            return
        if msg.kind is Kind.ERROR:
            self._odd.warning(f"error:{peer.name}", "worker %s reports error %s: %s",
                              peer.name, msg["code"], msg["reason"])
            return
        self._send(workers, identity, protocol.error(
            ErrorCode.NOT_ALLOWED, f"{msg.kind} is not taken on the worker endpoint",
            str(msg.kind)))

    def _answered(self, peer: WorkerPeer, key: Key, now: float) -> None:
        was = peer.suspect
        peer.answered(key, now)
        if was:
            log.info("worker %s answered again: it gets work again", peer.name)
        self._publish_names()

    def _on_ready(self, workers: zmq.Socket[Any], dispatch: zmq.Socket[Any],
                  identity: bytes, msg: Message, key: bytes | None) -> None:
        try:
            protocol.check_version(msg)
        except ProtocolError as e:
            self._send(workers, identity, protocol.error(ErrorCode(e.code), str(e), "ready"))
            return
        if not self.admits(key):  # its key left the allow-list since its handshake
            self._send(workers, identity, protocol.error(
                ErrorCode.NOT_ALLOWED, "this worker's key is not on the server's "
                "allow-list", "ready"))
            return
        if (key or identity) in self._quarantined:
            self._send(workers, identity, protocol.error(
                ErrorCode.NOT_ALLOWED, "this worker was quarantined: it answered a batch "
                "wrongly", "ready"))
            return
        if identity in self._workers:  # workers say it once a connection
            self._send(workers, identity, protocol.error(
                ErrorCode.NOT_ALLOWED, "this connection is a worker already", "ready"))
            return
        credit = min(msg["credit"], self.max_credit)
        io_latency = min(msg["io_latency"], self.max_io_latency)
        peer = WorkerPeer(identity, self._next_id, msg["name"] or f"worker-{self._next_id}",
                          credit, io_latency,
                          time.monotonic() + self.heartbeat * self.liveness, key)
        self._next_id += 1
        standing = self._standing.pop(peer.mark, None)
        if standing is not None:  # it left suspect: it comes back so
            peer.suspect, (peer.strikes, peer.probe_at) = True, standing
        self._workers[identity] = peer
        self._publish_names()
        capped = "" if (credit, io_latency) == (msg["credit"], msg["io_latency"]) else \
            f" (asked for credit {msg['credit']}, io_latency {msg['io_latency']:g}: capped)"
        log.info("worker %s joined (id %d, credit %d)%s", peer.name, peer.id, peer.credit,
                 capped, extra={"worker": peer.id})
        self._send(workers, identity, protocol.message(
            Kind.WELCOME, version=protocol.PROTOCOL_VERSION, worker=peer.id,
            heartbeat=self.heartbeat))

    def _drop(self, dispatch: zmq.Socket[Any], peer: WorkerPeer) -> None:
        self._workers.pop(peer.identity, None)
        if peer.suspect:
            self._standing[peer.mark] = (peer.strikes, peer.probe_at)
            self._standing.move_to_end(peer.mark)
            while len(self._standing) > REMEMBERED:
                self._standing.popitem(last=False)
        self.dropped_workers += 1
        for key, dispatcher in peer.in_flight.items():
            envelope.send(dispatch, Envelope(Verb.LOST, key, peer.id), to=dispatcher)
        peer.in_flight.clear()
        self._publish_names()

    def _quarantine(self, workers: zmq.Socket[Any], dispatch: zmq.Socket[Any],
                    worker_id: int, mark: bytes) -> None:
        """No more work for the worker ``worker_id``'s key (without keys, its
        connection): refused for the server's lifetime, whether it is still here or not,
        and every live connection with it dropped."""
        with self._lock:
            fresh = mark not in self._quarantined
            self._quarantined.add(mark)
        if fresh:
            log.warning("worker %d answered a batch wrongly: quarantined, no more work "
                        "for its %s", worker_id,
                        f"key {mark.decode(errors='replace')}" if self.keys
                        else "connection")
        self._drop_quarantined(workers, dispatch)

    def _drop_quarantined(self, workers: zmq.Socket[Any], dispatch: zmq.Socket[Any]) -> None:
        """Drop every live worker whose key (or connection) is quarantined."""
        for peer in list(self._workers.values()):
            if peer.mark in self._quarantined:
                log.warning("worker %s (id %d) is quarantined: dropped", peer.name, peer.id)
                self._send(workers, peer.identity, protocol.message(
                    Kind.BYE, reason="quarantined: a batch was answered wrongly"))
                self._drop(dispatch, peer)

    def _beat(self, workers: zmq.Socket[Any], dispatch: zmq.Socket[Any], now: float) -> None:
        for peer in list(self._workers.values()):
            if not self.admits(peer.key):
                log.warning("worker %s: its key was taken off the allow-list: dropped, %d "
                            "batches re-sent", peer.name, len(peer.in_flight))
                self._send(workers, peer.identity, protocol.message(
                    Kind.BYE, reason="this worker's key is no longer on the allow-list"))
                self._drop(dispatch, peer)
            elif now > peer.expires:
                log.warning("worker %s missed %d heartbeats: dropped, %d batches re-sent",
                            peer.name, self.liveness, len(peer.in_flight))
                self._drop(dispatch, peer)
            elif not self._send(workers, peer.identity, protocol.message(Kind.HEARTBEAT)):
                log.warning("worker %s is unreachable: dropped", peer.name)
                self._drop(dispatch, peer)

    def _publish_names(self) -> None:
        with self._lock:
            self._ids = {p.id: p.name for p in self._workers.values()}
            self._held = {p.id: len(p.in_flight) for p in self._workers.values()}
            self._rates = {p.id: p.rate for p in self._workers.values() if not p.suspect}

    # -- dispatchers -----------------------------------------------------------------

    def _on_dispatcher(self, workers: zmq.Socket[Any], dispatch: zmq.Socket[Any],
                       frames: list[Any]) -> None:
        dispatcher = bytes(frames[0].buffer)
        got = envelope.decode(frames[1:])
        if got.verb is Verb.SEND:
            self._pending.append(Request(dispatcher, got.key, got.exclude, got.frames,
                                         got.prefer, got.cells))
        elif got.verb is Verb.CANCEL:
            self._pending = deque(r for r in self._pending if r.key != got.key)
            if got.worker:  # it timed out there: its credit back, and it is suspect
                self._timed_out(got.worker, got.key)
        elif got.verb is Verb.QUARANTINE:
            self._quarantine(workers, dispatch, got.worker, got.mark)
        else:
            log.error("a dispatcher sent %s, which only the broker sends", got.verb)

    def _timed_out(self, worker_id: int, key: Key) -> None:
        peer = next((p for p in self._workers.values() if p.id == worker_id), None)
        if peer is None:
            return
        was = peer.suspect
        if not peer.time_out(key, time.monotonic()):
            return
        if not was:
            log.warning("worker %s let batch %d of generation %d time out: suspect, no "
                        "work but a probe now and then until it answers", peer.name,
                        key.batch, key.gen)
        self._publish_names()

    def _candidates(self, request: Request, free: list[WorkerPeer],
                    now: float) -> list[WorkerPeer]:
        """The workers with credit that may take ``request`` now: never one it must
        avoid, nor a suspect but for its probe; only the one chosen for it (and a
        suspect due a probe: no share is chosen for a suspect), while that one may take
        work and the request is younger than ``PREFER_WAIT``."""
        allowed = [p for p in free if p.id not in request.exclude and p.may_take(now)]
        if request.prefer and now - request.queued < PREFER_WAIT and any(
                p.id == request.prefer and not p.suspect for p in self._workers.values()):
            return [p for p in allowed if p.id == request.prefer or p.suspect]
        return allowed

    def _assign(self, workers: zmq.Socket[Any], dispatch: zmq.Socket[Any]) -> None:
        """Hand waiting requests to the workers that may take them, oldest first; a
        request no worker may take now waits without holding up the ones behind it."""
        waiting: deque[Request] = deque()
        now = time.monotonic()
        while self._pending:
            free = [p for p in self._workers.values() if p.free > 0]
            if not free:
                break
            request = self._pending.popleft()
            choices = self._candidates(request, free, now)
            if not choices:
                waiting.append(request)
                continue
            # A suspect due its probe first (or it would wait for the others to be
            # busy); then the most credit free; then a worker not measured yet (so
            # that it gets measured), then the fastest.
            peer = max(choices, key=lambda p: (p.suspect, p.free, p.rate is None,
                                               p.rate or 0.0, -p.served))
            if not self._forward(workers, dispatch, peer, request):
                waiting.append(request)
                break
        waiting.extend(self._pending)
        self._pending = waiting

    def _forward(self, workers: zmq.Socket[Any], dispatch: zmq.Socket[Any],
                 peer: WorkerPeer, request: Request) -> bool:
        """Send one request to ``peer``; False when it could not be sent now."""
        try:
            workers.send_multipart([peer.identity, *request.frames], zmq.NOBLOCK, copy=False)
        except zmq.Again:  # the worker's queue is full: try again on the next turn
            return False
        except zmq.ZMQError:  # EHOSTUNREACH: the worker vanished between beats
            self._drop(dispatch, peer)
            return False
        now = time.monotonic()
        peer.in_flight[request.key] = request.dispatcher
        peer.sent_at[request.key] = (now, request.cells)
        # The deadline is the server's: its batch timeout, and the worker's declared
        # I/O latency only as far as the server's cap on it.
        timeout = self.batch_timeout + 2 * peer.io_latency
        envelope.send(dispatch, Envelope(Verb.SENT, request.key, peer.id, timeout),
                      to=request.dispatcher)
        return True

    @staticmethod
    def _send(sock: zmq.Socket[Any], identity: bytes, msg: Message) -> bool:
        try:
            sock.send_multipart([identity, *protocol.encode(msg)], zmq.NOBLOCK, copy=False)
            return True
        except zmq.ZMQError:
            return False
