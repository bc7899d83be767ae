"""The player endpoint: the ROUTER socket players, bots and ``lifenet status`` talk to.

One thread owns the socket. Requests are looked up in a table of handlers by kind; a
message that does not decode, or a kind this endpoint does not take, gets an ``ERROR``
reply with a code, and the loop goes on (circus's dispatcher never raises). Answers are
built from a status snapshot that the stepping thread publishes, so a slow or hostile
player never touches the world or delays a generation.

Other threads never touch the socket: they hand a message for a peer to ``send``, the
one way to reach a player from outside this thread (the generation's ``game_logic``
requests and results, the snapshot writer's late answers). ``send`` queues it and wakes
this thread's poll through a pipe, so a request leaves within a poll, not a timeout.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from server.auth import PLAYERS, ServerKeys, serve_curve
from server.direct import Direct
from server.players.placing import placement_cells
from server.players.registry import PlayerRegistry
from server.players.rounds import goal
from server.transport import (
    DRAIN_LIMIT,
    MemoryGuard,
    Wakeup,
    apply_heartbeats,
)
from server.viewports import WANT_SECONDS, Interest
from shared import protocol
from shared.errors import LateAnswer, ProtocolError, RequestError
from shared.protocol import ErrorCode, Kind, Message
from shared.ratelimit import LogLimiter, TokenBucket

log = logging.getLogger("lifenet.lobby")

MAX_PLAYER_MESSAGE = 1 << 20
OUTBOX_LIMIT = 1 << 16  # messages other threads may have waiting for this one to send



class Idle:
    """When the lobby last found nothing waiting on its socket: every request that came
    before then has been read. The generation waits for such a moment after a round
    closed before it asks the next (``DecisionRound.catch_up``): a lobby behind on
    its reading is given the time to read, instead of a new round of requests whose
    answers would wait behind the old ones and come late in their turn."""

    def __init__(self) -> None:
        self.at = 0.0  # monotonic
        self._changed = threading.Condition()
        self._waiting = 0  # threads in ``wait_since``: the lobby notifies only then
        # Wakes the lobby's poll (its ``Wakeup``, set when it runs): an idle lobby looks
        # at its socket again at once, not when its poll times out.
        self.wake: Callable[[], None] = lambda: None

    def mark(self, at: float) -> None:
        """Nothing waited on the socket at ``at`` (monotonic; the lobby thread)."""
        self.at = at
        if self._waiting:
            with self._changed:
                self._changed.notify_all()

    def wait_since(self, since: float, timeout: float) -> bool:
        """Wait until nothing waited at some moment after ``since`` (monotonic), for
        ``timeout`` seconds at most; whether it did."""
        if self.at >= since:
            return True
        self.wake()
        with self._changed:
            self._waiting += 1
            try:
                return self._changed.wait_for(lambda: self.at >= since, timeout)
            finally:
                self._waiting -= 1


@dataclass(frozen=True)
class Peer:
    """Who sent a request: its connection (the ROUTER identity, where replies go), the
    CURVE public key the gatekeeper accepted for it (``None`` without keys), and its
    network address (``""`` where there is none, as over inproc, and for the requests
    that need none: ``UNADDRESSED``, a thousand DECIDEs a generation)."""

    identity: bytes
    key: bytes | None = None
    address: str = ""


REQUESTS_PER_SECOND = 200.0  # what one connection may ask; an answer to game_logic
DECIDE_COST = 0.1            # costs a tenth (one a generation, and generations are fast)
MAX_CONNECTIONS_TRACKED = 8192
LATE_NOTICE_SECONDS = 5.0  # a player hears that its answers come late once in so long


Handler = Callable[[Peer, Message], Message | None]
Status = Callable[[bool], dict[str, Any]]  # the report; True: in full, for an operator


@dataclass
class WorldInfo:
    """What a joining player is told about the world (fixed for the server's life)."""

    height: int
    width: int
    rule: str
    frame_port: int
    view_port: int = 0  # the view publisher's (viewports)
    round: int = 0    # generations a round lasts (0: no rounds)
    protect: int = 0  # generations a fresh placement is shielded (0: never)


_DECIDE = protocol.head(Kind.DECIDE)
# A thousand of these a generation and none needs its sender's address (joins do).
UNADDRESSED = (_DECIDE, protocol.head(Kind.PING))


class PlayerEndpoint(threading.Thread):
    """Owns the player endpoint and answers requests through a table of handlers."""

    def __init__(self, context: zmq.Context[Any], endpoint: str,
                 status: Status, registry: PlayerRegistry, world: WorldInfo,
                 generation: Callable[[], int], *, keys: ServerKeys | None = None,
                 is_operator: Callable[[bytes | None], bool] = lambda key: True,
                 guard: MemoryGuard | None = None) -> None:
        super().__init__(name="lobby", daemon=True)
        self.context = context
        self.endpoint = endpoint
        self.status = status
        self.registry = registry
        self.world = world
        self.generation = generation
        # a player's own place on the scoreboard, for its PONG (the server sets it)
        self.standing: Callable[[int], dict[str, Any]] = lambda player_id: {}
        self.keys = keys
        self.is_operator = is_operator
        self.guard = guard or MemoryGuard(None)
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.bound_endpoint = ""
        self.error: BaseException | None = None
        self.bad_messages = 0
        self.handlers: dict[Kind, Handler] = {
            Kind.STATUS: self._on_status,
            Kind.JOIN: self._on_join,
            Kind.LEAVE: self._on_leave,
            Kind.PING: self._on_ping,
            Kind.PLACE: self._on_place,
            Kind.DECIDE: self._on_decide,
            Kind.VIEW: self._on_view,
        }
        # the chunks viewers want (the server sets it: it owns the world's size)
        self.interest: Interest | None = None
        # Messages other threads hand over (``send``, ``send_all``), a list at a time:
        # sent by this thread, which owns the socket. ``_queued`` counts the messages
        # in it, which ``OUTBOX_LIMIT`` bounds.
        self.outbox: queue.SimpleQueue[tuple[list[tuple[bytes, list[protocol.Payload]]],
                                             Callable[[], None] | None]] = queue.SimpleQueue()
        self._queued = 0
        self._queued_lock = threading.Lock()
        self.wakeup: Wakeup | None = None  # this thread's, while it runs
        self.idle = Idle()  # when it last found nothing to read
        self.dropped = 0  # messages for players dropped: the outbox was full
        self.sent_bytes = 0  # to the players (frames handed to libzmq): replies and pushes
        self.throttled = 0  # requests dropped: their connection asked too fast
        self._buckets: OrderedDict[bytes, TokenBucket] = OrderedDict()
        # Late answers: all counted (``on_late``: the metrics' counter), a player told
        # once every LATE_NOTICE_SECONDS at most (when it may be told next, by session).
        self.late_answers = 0
        self.on_late: Callable[[], None] = lambda: None
        self._late_told: OrderedDict[str, float] = OrderedDict()  # by session token
        self.clock: Callable[[], float] = time.monotonic
        self._odd = LogLimiter(log)

    def send(self, identity: bytes, msg: Message) -> None:
        """Send ``msg`` to the peer ``identity`` from the lobby thread; any thread may
        call. Encoded here, in the caller's thread; dropped (and counted) when the
        outbox is full, rather than block the caller."""
        self.send_all([(identity, msg)])

    def send_all(self, messages: list[tuple[bytes, Message]],
                 then: Callable[[], None] | None = None) -> bool:
        """``send`` each of ``messages`` (to its peer), handed over at once: a
        generation's thousand requests are one hand-over and one wake-up; ``then`` is
        called (in the lobby thread) once they have left. False: dropped whole (and
        counted), the outbox could not take them all; ``then`` is never called."""
        if not messages:
            if then is not None:
                then()
            return True
        # Encoded before room is taken: a message that cannot be encoded takes none.
        batch = [(identity, protocol.encode(msg)) for identity, msg in messages]
        with self._queued_lock:
            room = self._queued + len(messages) <= OUTBOX_LIMIT
            if room:
                self._queued += len(messages)
        if not room:
            self.dropped += len(messages)
            self._odd.warning("outbox", "lobby outbox full: %d %s dropped (%d so far)",
                              len(messages), messages[0][1].kind, self.dropped)
            return False
        self.outbox.put((batch, then))
        wakeup = self.wakeup
        if wakeup is not None:  # not yet running: the loop's first turn sends it
            wakeup.set()
        return True

    def stop(self) -> None:
        self.stop_event.set()

    def _socket(self) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = self.context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_PLAYER_MESSAGE)
        sock.setsockopt(zmq.SNDHWM, 64)
        # Requests a peer sent that this thread has not read yet, at most: beyond them
        # libzmq stops reading that connection (its sender's queue fills), instead of
        # queueing in the server's memory for a thousand peers at once.
        sock.setsockopt(zmq.RCVHWM, 64)
        apply_heartbeats(sock, self.guard.handshake_ms)
        serve_curve(sock, self.keys, PLAYERS)
        return sock

    def run(self) -> None:
        wakeup = self.wakeup = Wakeup()
        self.idle.wake = wakeup.set
        sock = self._socket()
        try:
            sock.bind(self.endpoint)
            self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        except zmq.ZMQError as e:
            self.error = e
            sock.close()
            wakeup.close()
            self.ready.set()
            return
        self.ready.set()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(wakeup.fileno(), zmq.POLLIN)
        direct = self._direct(sock)
        try:
            while not self.stop_event.is_set():
                if self.guard.due("players"):
                    # Players reconnect by themselves; their sessions stay.
                    poller.unregister(sock)
                    try:
                        sock = self.guard.drop_all("players", sock, self._socket,
                                                   self.bound_endpoint)
                    except zmq.ZMQError as e:  # logged; the server stops on it
                        self.error = e
                        return
                    poller.register(sock, zmq.POLLIN)
                    direct = self._direct(sock)
                events = dict(poller.poll(self.guard.poll_ms))
                if wakeup.fileno() in events:
                    wakeup.clear()
                polled = time.monotonic()  # after the clear: a wake-up since is kept
                self._send_outbox(direct)
                read = 0
                # Nothing waiting when the poll returned, nor at ``polled`` (taken before
                # this second look): every request that came before then was read.
                if sock not in events and not int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                    self.idle.mark(polled)
                else:
                    while read < DRAIN_LIMIT and (got := direct.recv()) is not None:
                        read += 1
                        frames = got.frames
                        identity = frames[0]
                        if len(frames) < 2 or not self._may_ask(identity, frames[1]):
                            continue
                        reply = self.handle(Peer(identity, got.key, got.address),
                                            frames[1:])
                        if reply is not None:
                            # An asker that is gone or not reading loses its reply.
                            with contextlib.suppress(zmq.ZMQError):
                                self.sent_bytes += direct.send(identity,
                                                               protocol.encode(reply))
                    if read < DRAIN_LIMIT:  # the drain ended on an empty socket
                        self.idle.mark(time.monotonic())
        finally:
            if not sock.closed:
                self._send_outbox(direct)  # best effort: replies finished while stopping
            sock.close()
            wakeup.close()

    def _direct(self, sock: zmq.Socket[Any]) -> Direct:
        """The calls this thread reads and writes ``sock`` with. Without keys there is
        no ZAP, and a peer could name itself: its key is then nothing at all."""
        return Direct(sock, keyed=self.keys is not None, unaddressed=UNADDRESSED)

    def _may_ask(self, identity: bytes, head: bytes) -> bool:
        """Whether this connection may ask something now (a token bucket each, the
        least recently heard forgotten first); a request over the limit is dropped
        unanswered and counted: answering a flood is what the flood wants."""
        bucket = self._buckets.get(identity)
        if bucket is None:
            bucket = self._buckets[identity] = TokenBucket(REQUESTS_PER_SECOND,
                                                           2 * REQUESTS_PER_SECOND)
            while len(self._buckets) > MAX_CONNECTIONS_TRACKED:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(identity)
        cost = DECIDE_COST if head.startswith(_DECIDE) else 1.0
        if bucket.take(cost):
            return True
        self.throttled += 1
        self._odd.warning(identity.hex(), "a connection asks faster than %g requests a "
                          "second: dropping its requests (%d so far)", REQUESTS_PER_SECOND,
                          self.throttled)
        return False

    def _send_outbox(self, direct: Direct) -> None:
        """Send what other threads handed over, as much as waits now."""
        while True:
            try:
                batch, then = self.outbox.get_nowait()
            except queue.Empty:
                return
            with self._queued_lock:
                self._queued -= len(batch)
            for identity, frames in batch:
                with contextlib.suppress(zmq.ZMQError):
                    self.sent_bytes += direct.send(identity, frames)
            if then is not None:
                then()

    def handle(self, peer: Peer, frames: list[Any]) -> Message | None:
        """The reply to one request; never raises."""
        try:
            msg = protocol.decode(frames, MAX_PLAYER_MESSAGE)
        except ProtocolError as e:
            self.bad_messages += 1
            return protocol.error(ErrorCode(e.code), str(e))
        handler = self.handlers.get(msg.kind)
        if handler is None:
            self.bad_messages += 1
            return protocol.error(ErrorCode.NOT_ALLOWED,
                                  f"{msg.kind} is not taken on the player endpoint",
                                  str(msg.kind))
        try:
            return handler(peer, msg)
        except RequestError as e:
            self.bad_messages += 1
            return protocol.error(ErrorCode(e.code), str(e), str(msg.kind))
        except Exception as e:  # a bug in a handler must not kill the endpoint
            self._odd.error(f"bug:{msg.kind}", "handler for %s failed: %r", msg.kind, e,
                            exc_info=True)
            return protocol.error(ErrorCode.BUSY, f"internal error: {type(e).__name__}",
                                  str(msg.kind))

    def _on_status(self, peer: Peer, msg: Message) -> Message:
        protocol.check_version(msg)
        return protocol.message(Kind.STATUS_REPLY, **self.status(self.is_operator(peer.key)))

    def _on_join(self, peer: Peer, msg: Message) -> Message:
        protocol.check_version(msg)
        player, rejoined = self.registry.join(peer.identity, msg["name"],
                                              msg.body.get("token"), peer.key, peer.address)
        config = self.registry.config
        self._odd.log(logging.INFO, f"join:{peer.address}", "player %d %r %s", player.id,
                      player.name, "rejoined" if rejoined else "joined")
        return protocol.message(
            Kind.JOINED, player=player.id, code=player.code, token=player.token,
            name=player.name, size=[self.world.height, self.world.width],
            rule=self.world.rule, frame_port=self.world.frame_port,
            view_port=self.world.view_port, energy=player.energy,
            energy_cap=config.energy_cap, energy_regen=config.energy_regen,
            heartbeat=config.heartbeat, generation=self.generation(), rejoined=rejoined,
            round=self.world.round, protect=self.world.protect,
            goal=goal(self.world.round), grace=float(config.grace))

    def _on_view(self, peer: Peer, msg: Message) -> Message:
        """The chunks a viewer shows (anyone who may ask STATUS may say it); checked
        whole, refused whole (a chunk outside the world), and costs one request of the
        connection's bucket like any other."""
        protocol.check_version(msg)
        if self.interest is None:
            raise RequestError("this server publishes no viewports", ErrorCode.NOT_ALLOWED)
        count = self.interest.want(msg["chunks"], msg.body.get("fresh"))
        return protocol.message(Kind.VIEWING, chunks=count, expires=WANT_SECONDS,
                                generation=self.generation())

    def _on_leave(self, peer: Peer, msg: Message) -> Message:
        player = self.registry.auth(msg["player"], msg["token"], peer.identity, peer.key)
        self.registry.leave(player)
        self._odd.log(logging.INFO, f"leave:{peer.address}", "player %d %r left", player.id,
                      player.name)
        return protocol.message(Kind.BYE, reason="left; cells stay until the grace ends")

    def _on_ping(self, peer: Peer, msg: Message) -> Message:
        player = self.registry.auth(msg["player"], msg["token"], peer.identity, peer.key)
        return protocol.built(Kind.PONG, generation=self.generation(),
                              energy=self.registry.energy_of(player.id),
                              **self.standing(player.id))

    def _on_place(self, peer: Peer, msg: Message) -> Message:
        player = self.registry.auth(msg["player"], msg["token"], peer.identity, peer.key)
        self.registry.may_place(player)
        if msg["y"] >= self.world.height or msg["x"] >= self.world.width:
            raise ProtocolError(f"({msg['y']}, {msg['x']}) is outside the world "
                                f"{self.world.height}x{self.world.width}", ErrorCode.BAD_FIELD)
        cells = placement_cells(msg.body.get("rle"), msg.body.get("cells"), msg["y"],
                                msg["x"], msg["rotate"], msg["flip"], self.world.height,
                                self.world.width)
        cost, landing = self.registry.place(player, cells)
        return protocol.built(Kind.PLACED, cells=cost, cost=cost,
                              energy=self.registry.energy_of(player.id),
                              generation=landing)

    def _on_decide(self, peer: Peer, msg: Message) -> Message | None:
        player = self.registry.auth(msg["player"], msg["token"], peer.identity, peer.key)
        try:
            self.registry.post_decision(player, msg["gen"], msg["keep"], msg["let_die"])
        except LateAnswer:
            self.late_answers += 1
            self.on_late()
            if not self._tell_late(player.token):
                return None  # told lately: counted, not answered
            raise
        return None  # DECIDED follows when the generation is applied

    def _tell_late(self, session: str) -> bool:
        """Whether a late answer of the player with this session (its token: a new
        player given a departed one's id is another session) gets its error reply:
        the first, and then one every ``LATE_NOTICE_SECONDS``. An overloaded server (or
        a slow player) sees late answers by the hundred a generation, and a reply to
        each would double the messages of the load that made them late."""
        now = self.clock()
        told = self._late_told.get(session)
        if told is not None:
            self._late_told.move_to_end(session)  # the least recently late go first
            if now < told:
                return False
        self._late_told[session] = now + LATE_NOTICE_SECONDS
        while len(self._late_told) > MAX_CONNECTIONS_TRACKED:
            self._late_told.popitem(last=False)
        return True

