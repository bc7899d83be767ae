"""The worker broker: the one thread that owns the worker endpoint (a ROUTER socket).

Dispatcher threads never touch the worker endpoint; each owns an ``inproc`` DEALER
socket to the broker's second ROUTER. The broker is a Paranoid Pirate queue between the
two:

- Workers announce themselves with ``READY`` (protocol version checked; on a server
  with keys, only from a key the gatekeeper admits), get a ``WELCOME``, and heartbeat
  both ways. A worker whose key is taken off the allow-list is dropped at the next
  heartbeat round, its batches re-sent. A worker silent for ``liveness`` heartbeats, or
  one that says ``BYE``, is dropped, and every dispatcher whose batch it held is told so
  (``LOST``) at once, so the batch is re-sent elsewhere without waiting for a timeout.
- A dispatcher's ``SEND`` waits in a FIFO until a live worker has credit (a worker takes
  up to ``credit`` batches at once, so it never waits for the server). With no worker
  at all, requests simply wait: nothing spins and nothing is lost.
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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from server import envelope
from server.auth import WORKERS, ServerKeys, peer_key, serve_curve
from server.envelope import DISPATCH_ENDPOINT, Envelope, Key, Verb
from server.transport import drain
from shared import protocol
from shared.errors import ProtocolError
from shared.protocol import ErrorCode, Kind, Message

log = logging.getLogger("lifenet.broker")


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
    served: int = 0

    @property
    def free(self) -> int:
        return self.credit - len(self.in_flight)


@dataclass
class Request:
    dispatcher: bytes
    key: Key
    exclude: frozenset[int]
    frames: list[Any]


class WorkerBroker(threading.Thread):
    """Owns the worker endpoint; routes batches to live workers and results back."""

    def __init__(self, context: zmq.Context[Any], endpoint: str, *,
                 heartbeat: float = 1.0, liveness: int = 3, batch_timeout: float = 10.0,
                 max_payload: int = protocol.MAX_PAYLOAD_BYTES,
                 keys: ServerKeys | None = None,
                 admits: Callable[[bytes | None], bool] = lambda key: True) -> None:
        super().__init__(name="broker", daemon=True)
        self.context = context
        self.endpoint = endpoint
        self.heartbeat = heartbeat
        self.liveness = liveness
        self.batch_timeout = batch_timeout
        self.max_payload = max_payload
        self.keys = keys
        self.admits = admits  # whether a worker's key may (still) work here
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.bound_endpoint = ""
        self.error: BaseException | None = None
        self._workers: dict[bytes, WorkerPeer] = {}
        self._pending: deque[Request] = deque()
        self._next_id = 1
        self._lock = threading.Lock()  # guards the snapshot read by other threads
        self._names: list[str] = []
        self.dropped_workers = 0
        self.bad_messages = 0

    # -- read from other threads ---------------------------------------------------

    def worker_names(self) -> list[str]:
        with self._lock:
            return list(self._names)

    def worker_count(self) -> int:
        with self._lock:
            return len(self._names)

    def stop(self) -> None:
        self.stop_event.set()

    # -- the loop --------------------------------------------------------------------

    def run(self) -> None:
        workers = self.context.socket(zmq.ROUTER)
        dispatch = self.context.socket(zmq.ROUTER)
        try:
            workers.setsockopt(zmq.LINGER, 0)
            workers.setsockopt(zmq.ROUTER_MANDATORY, 1)
            workers.setsockopt(zmq.MAXMSGSIZE, self.max_payload + protocol.MAX_HEADER_BYTES)
            serve_curve(workers, self.keys, WORKERS)
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
                timeout = max(0.0, min(next_beat - time.monotonic(), 0.1))
                events = dict(poller.poll(int(timeout * 1000)))
                if workers in events:
                    for frames in drain(workers):
                        self._on_worker(workers, dispatch, frames)
                if dispatch in events:
                    for frames in drain(dispatch):
                        self._on_dispatcher(frames)
                now = time.monotonic()
                if now >= next_beat:
                    self._beat(workers, dispatch, now)
                    next_beat = now + self.heartbeat
                self._assign(workers, dispatch)
        finally:
            for peer in list(self._workers.values()):
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
            log.warning("bad message on the worker endpoint: %s", e)
            self._send(workers, identity, protocol.error(ErrorCode(e.code), str(e)))
            return
        peer = self._workers.get(identity)
        if msg.kind is Kind.READY:
            self._on_ready(workers, dispatch, identity, msg, peer_key(frames[1]))
            return
        if peer is None:
            if msg.kind is not Kind.BYE:
                self._send(workers, identity, protocol.error(
                    ErrorCode.UNKNOWN_PEER, "say READY first", str(msg.kind)))
            return
        peer.expires = time.monotonic() + self.heartbeat * self.liveness
        if msg.kind is Kind.HEARTBEAT:
            return
        if msg.kind is Kind.RESULT or (msg.kind is Kind.ERROR and "ref" in msg.body
                                       and len(msg["ref"]) == 3):
            key = Key(msg["gen"], msg["batch"], msg["attempt"]) if msg.kind is Kind.RESULT \
                else Key(*msg["ref"])
            dispatcher = peer.in_flight.pop(key, None)
            if dispatcher is None:
                log.debug("dropping a result nobody waits for: %s from %s", key, peer.name)
                return
            peer.served += 1
            # The frames as received (validated above): passing zmq Frames on shares their
            # buffers, where re-encoded memoryviews would be tracked by pyzmq's gc thread.
            envelope.send(dispatch, Envelope(Verb.REPLY, key, peer.id, frames=frames[1:]),
                          to=dispatcher)
            return
        if msg.kind is Kind.BYE:
            log.info("worker %s left: %s", peer.name, msg["reason"])
            self._drop(dispatch, peer)
            return
        if msg.kind is Kind.ERROR:
            log.warning("worker %s reports error %s: %s", peer.name, msg["code"], msg["reason"])
            return
        self._send(workers, identity, protocol.error(
            ErrorCode.NOT_ALLOWED, f"{msg.kind} is not taken on the worker endpoint",
            str(msg.kind)))

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
        old = self._workers.get(identity)
        if old is not None:  # a worker that reconnected on the same identity
            self._drop(dispatch, old)
        peer = WorkerPeer(identity, self._next_id, msg["name"] or f"worker-{self._next_id}",
                          msg["credit"], msg["io_latency"],
                          time.monotonic() + self.heartbeat * self.liveness, key)
        self._next_id += 1
        self._workers[identity] = peer
        self._publish_names()
        log.info("worker %s joined (id %d, credit %d)", peer.name, peer.id, peer.credit)
        self._send(workers, identity, protocol.message(
            Kind.WELCOME, version=protocol.PROTOCOL_VERSION, worker=peer.id,
            heartbeat=self.heartbeat))

    def _drop(self, dispatch: zmq.Socket[Any], peer: WorkerPeer) -> None:
        self._workers.pop(peer.identity, None)
        self.dropped_workers += 1
        for key, dispatcher in peer.in_flight.items():
            envelope.send(dispatch, Envelope(Verb.LOST, key, peer.id), to=dispatcher)
        peer.in_flight.clear()
        self._publish_names()

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
            self._names = [p.name for p in self._workers.values()]

    # -- dispatchers -----------------------------------------------------------------

    def _on_dispatcher(self, frames: list[Any]) -> None:
        dispatcher = bytes(frames[0].buffer)
        got = envelope.decode(frames[1:])
        if got.verb is Verb.SEND:
            self._pending.append(Request(dispatcher, got.key, got.exclude, got.frames))
        else:
            log.error("a dispatcher sent %s, which only the broker sends", got.verb)

    def _assign(self, workers: zmq.Socket[Any], dispatch: zmq.Socket[Any]) -> None:
        """Hand waiting requests to live workers with free credit, oldest first."""
        while self._pending:
            free = [p for p in self._workers.values() if p.free > 0]
            if not free:
                return
            request = self._pending[0]
            preferred = [p for p in free if p.id not in request.exclude]
            if not preferred:
                others_alive = any(p.id not in request.exclude for p in self._workers.values())
                if others_alive:
                    # Another worker will have credit soon; let newer requests go first.
                    if not self._assign_other(workers, dispatch, free):
                        return
                    continue
                preferred = free
            peer = max(preferred, key=lambda p: (p.free, -p.served))
            self._pending.popleft()
            if not self._forward(workers, dispatch, peer, request):
                return

    def _assign_other(self, workers: zmq.Socket[Any], dispatch: zmq.Socket[Any],
                      free: list[WorkerPeer]) -> bool:
        for i, request in enumerate(self._pending):
            choices = [p for p in free if p.id not in request.exclude]
            if choices:
                del self._pending[i]
                return self._forward(workers, dispatch, max(choices, key=lambda p: p.free),
                                     request)
        return False

    def _forward(self, workers: zmq.Socket[Any], dispatch: zmq.Socket[Any],
                 peer: WorkerPeer, request: Request) -> bool:
        """Send one request to ``peer``; False when it could not be sent now."""
        try:
            workers.send_multipart([peer.identity, *request.frames], zmq.NOBLOCK, copy=False)
        except zmq.Again:  # the worker's queue is full: try again on the next turn
            self._pending.appendleft(request)
            return False
        except zmq.ZMQError:  # EHOSTUNREACH: the worker vanished between beats
            self._pending.appendleft(request)
            self._drop(dispatch, peer)
            return False
        peer.in_flight[request.key] = request.dispatcher
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

