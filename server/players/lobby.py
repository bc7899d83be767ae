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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from server.auth import PLAYERS, ServerKeys, peer_key, serve_curve
from server.players.placing import placement_cells
from server.players.registry import PlayerRegistry
from server.transport import Wakeup, drain
from shared import protocol
from shared.errors import ProtocolError, RequestError
from shared.protocol import ErrorCode, Kind, Message

log = logging.getLogger("lifenet.lobby")

MAX_PLAYER_MESSAGE = 1 << 20
OUTBOX_LIMIT = 1 << 16  # messages other threads may have waiting for this one to send



@dataclass(frozen=True)
class Peer:
    """Who sent a request: its connection (the ROUTER identity, where replies go) and
    the CURVE public key the gatekeeper accepted for it (``None`` without keys)."""

    identity: bytes
    key: bytes | None = None


Handler = Callable[[Peer, Message], Message | None]
Status = Callable[[bool], dict[str, Any]]  # the report; True: in full, for an operator


@dataclass
class WorldInfo:
    """What a joining player is told about the world (fixed for the server's life)."""

    height: int
    width: int
    rule: str
    frame_port: int


class PlayerEndpoint(threading.Thread):
    """Owns the player endpoint and answers requests through a table of handlers."""

    def __init__(self, context: zmq.Context[Any], endpoint: str,
                 status: Status, registry: PlayerRegistry, world: WorldInfo,
                 generation: Callable[[], int], *, keys: ServerKeys | None = None,
                 is_operator: Callable[[bytes | None], bool] = lambda key: True) -> None:
        super().__init__(name="lobby", daemon=True)
        self.context = context
        self.endpoint = endpoint
        self.status = status
        self.registry = registry
        self.world = world
        self.generation = generation
        self.keys = keys
        self.is_operator = is_operator
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
        }
        # Messages other threads hand over (``send``): sent by this thread, which owns
        # the socket.
        self.outbox: queue.Queue[tuple[bytes, list[protocol.Payload]]] = queue.Queue(
            OUTBOX_LIMIT)
        self.wakeup: Wakeup | None = None  # this thread's, while it runs
        self.dropped = 0  # messages for players dropped: the outbox was full

    def send(self, identity: bytes, msg: Message) -> None:
        """Send ``msg`` to the peer ``identity`` from the lobby thread; any thread may
        call. Encoded here, in the caller's thread; dropped (and counted) when the
        outbox is full, rather than block the caller."""
        try:
            self.outbox.put_nowait((identity, protocol.encode(msg)))
        except queue.Full:
            self.dropped += 1
            log.warning("lobby outbox full: a %s was dropped", msg.kind)
            return
        wakeup = self.wakeup
        if wakeup is not None:  # not yet running: the loop's first turn sends it
            wakeup.set()

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        wakeup = self.wakeup = Wakeup()
        sock = self.context.socket(zmq.ROUTER)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_PLAYER_MESSAGE)
            sock.setsockopt(zmq.SNDHWM, 64)
            serve_curve(sock, self.keys, PLAYERS)
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
        try:
            while not self.stop_event.is_set():
                events = dict(poller.poll(100))
                if wakeup.fileno() in events:
                    wakeup.clear()
                self._send_outbox(sock)
                if sock in events:
                    for frames in drain(sock):
                        identity = frames[0].bytes
                        # Without keys there is no ZAP, and a peer could name itself:
                        # its key is then nothing at all.
                        key = peer_key(frames[1]) if self.keys and len(frames) > 1 \
                            else None
                        reply = self.handle(Peer(identity, key), frames[1:])
                        if reply is not None:
                            # An asker that is gone or not reading loses its reply.
                            with contextlib.suppress(zmq.ZMQError):
                                sock.send_multipart([identity, *protocol.encode(reply)],
                                                    zmq.NOBLOCK)
        finally:
            self._send_outbox(sock)  # best effort: replies finished while stopping
            sock.close()
            wakeup.close()

    def _send_outbox(self, sock: zmq.Socket[Any]) -> None:
        """Send what other threads handed over, as much as waits now."""
        for _ in range(OUTBOX_LIMIT):
            try:
                identity, frames = self.outbox.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(zmq.ZMQError):
                sock.send_multipart([identity, *frames], zmq.NOBLOCK, copy=False)

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
            log.exception("handler for %s failed", msg.kind)
            return protocol.error(ErrorCode.BUSY, f"internal error: {type(e).__name__}",
                                  str(msg.kind))

    def _on_status(self, peer: Peer, msg: Message) -> Message:
        protocol.check_version(msg)
        return protocol.message(Kind.STATUS_REPLY, **self.status(self.is_operator(peer.key)))

    def _on_join(self, peer: Peer, msg: Message) -> Message:
        protocol.check_version(msg)
        player, rejoined = self.registry.join(peer.identity, msg["name"],
                                              msg.body.get("token"), peer.key)
        config = self.registry.config
        log.info("player %d %r %s", player.id, player.name, "rejoined" if rejoined else "joined")
        return protocol.message(
            Kind.JOINED, player=player.id, code=player.code, token=player.token,
            name=player.name, size=[self.world.height, self.world.width],
            rule=self.world.rule, frame_port=self.world.frame_port, energy=player.energy,
            energy_cap=config.energy_cap, energy_regen=config.energy_regen,
            heartbeat=config.heartbeat, generation=self.generation(), rejoined=rejoined)

    def _on_leave(self, peer: Peer, msg: Message) -> Message:
        player = self.registry.auth(msg["player"], msg["token"], peer.identity, peer.key)
        self.registry.leave(player)
        log.info("player %d %r left", player.id, player.name)
        return protocol.message(Kind.BYE, reason="left; cells stay until the grace ends")

    def _on_ping(self, peer: Peer, msg: Message) -> Message:
        player = self.registry.auth(msg["player"], msg["token"], peer.identity, peer.key)
        return protocol.message(Kind.PONG, generation=self.generation(),
                                energy=self.registry.energy_of(player.id))

    def _on_place(self, peer: Peer, msg: Message) -> Message:
        player = self.registry.auth(msg["player"], msg["token"], peer.identity, peer.key)
        if msg["y"] >= self.world.height or msg["x"] >= self.world.width:
            raise ProtocolError(f"({msg['y']}, {msg['x']}) is outside the world "
                                f"{self.world.height}x{self.world.width}", ErrorCode.BAD_FIELD)
        cells = placement_cells(msg.body.get("rle"), msg.body.get("cells"), msg["y"],
                                msg["x"], msg["rotate"], msg["flip"], self.world.height,
                                self.world.width)
        cost, landing = self.registry.place(player, cells)
        return protocol.message(Kind.PLACED, cells=cost, cost=cost,
                                energy=self.registry.energy_of(player.id),
                                generation=landing)

    def _on_decide(self, peer: Peer, msg: Message) -> Message | None:
        player = self.registry.auth(msg["player"], msg["token"], peer.identity, peer.key)
        self.registry.post_decision(player, msg["gen"], msg["keep"], msg["let_die"])
        return None  # DECIDED follows when the generation is applied
