"""The client side of the player protocol: a ``PlayerSession``.

A ``PlayerSession`` owns one DEALER socket to the player endpoint (so it belongs to one
thread). Requests (``join``, ``place``, ``ping``, ``leave``) wait for their reply; the
server's pushes (``GAME_LOGIC`` requests, ``DECIDED`` results) that arrive meanwhile are
kept, in order, for ``poll``. The world itself comes from the frame publisher, through
``shared.frames.FrameView``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import zmq

from shared import protocol
from shared.errors import HandshakeError, PeerGone, ProtocolError, RemoteError
from shared.keys import Credentials
from shared.protocol import Kind, Message
from shared.remote import Handshake, Outgoing, player_endpoint, secure, send_now
from shared.rules import Rule, parse_rule


class PlayerSession:
    """One player's connection to a lifenet server."""

    def __init__(self, connect: str, name: str, *, timeout: float = 5.0,
                 context: zmq.Context[Any] | None = None,
                 credentials: Credentials | None = None) -> None:
        self.endpoint = player_endpoint(connect)
        self.name = name
        self.timeout = timeout
        self.context = context or zmq.Context.instance()
        self.credentials = credentials
        self.handshake: Handshake | None = None
        self.sock = self._socket()
        self.inbox: deque[Message] = deque()
        self.player = 0
        self.token = ""
        self.code = 0
        self.energy = 0
        self.welcome: dict[str, Any] = {}
        self.rule: Rule | None = None
        self.unsent = 0  # messages ``send`` dropped: the socket had no room for them

    def _socket(self) -> zmq.Socket[Any]:
        """A new connection, its handshake watched until the first reply comes."""
        sock: zmq.Socket[Any] = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IPV6, 1)  # tcp://[::1]:PORT as well as IPv4
        secure(sock, self.credentials)
        if self.handshake is not None:
            self.handshake.close()
        self.handshake = Handshake(sock, self.endpoint, self.credentials is not None)
        sock.connect(self.endpoint)
        return sock

    @property
    def frame_endpoint(self) -> str:
        host = self.endpoint.rsplit(":", 1)[0]
        return f"{host}:{self.welcome['frame_port']}"

    @property
    def view_endpoint(self) -> str | None:
        """The view publisher's (``None``: this server tells none)."""
        port = self.welcome.get("view_port")
        if not port:
            return None
        host = self.endpoint.rsplit(":", 1)[0]
        return f"{host}:{port}"

    # -- requests ----------------------------------------------------------------------

    def join(self, token: str | None = None) -> dict[str, Any]:
        """Join (or rejoin with ``token``); returns the server's ``JOINED`` body."""
        body: dict[str, Any] = {"version": protocol.PROTOCOL_VERSION, "name": self.name}
        if token:
            body["token"] = token
        reply = self._request(protocol.message(Kind.JOIN, **body), Kind.JOINED)
        self.welcome = reply.body
        self.player, self.token, self.code = reply["player"], reply["token"], reply["code"]
        self.energy = reply["energy"]
        self.rule = parse_rule(reply["rule"])
        return reply.body

    def reconnect(self, fresh: bool = False) -> dict[str, Any]:
        """A new connection that rejoins as the same player, with the token (and the
        same key: the session is bound to it); or, ``fresh``, joins as a new player
        under the same name (the server no longer knows the token)."""
        self._close_socket()
        self.sock = self._socket()
        self.inbox.clear()
        return self.join(None if fresh else self.token)

    def place_message(self, y: int, x: int, *, rle: str | None = None,
                      cells: Sequence[tuple[int, int]] | None = None, rotate: int = 0,
                      flip: bool = False) -> Message:
        """The ``PLACE`` request for a pattern with its top-left corner at ``(y, x)``."""
        body: dict[str, Any] = dict(player=self.player, token=self.token, y=y, x=x,
                                    rotate=rotate, flip=flip)
        if rle is not None:
            body["rle"] = rle
        if cells is not None:
            body["cells"] = [[int(cy), int(cx)] for cy, cx in cells]
        return protocol.message(Kind.PLACE, **body)

    def place(self, y: int, x: int, *, rle: str | None = None,
              cells: Sequence[tuple[int, int]] | None = None, rotate: int = 0,
              flip: bool = False) -> dict[str, Any]:
        """Place a pattern at the next generation boundary; ``RemoteError`` if refused."""
        reply = self._request(self.place_message(y, x, rle=rle, cells=cells, rotate=rotate,
                                                 flip=flip), Kind.PLACED)
        self.energy = reply["energy"]
        return reply.body

    def ping_message(self) -> Message:
        return protocol.message(Kind.PING, player=self.player, token=self.token)

    def ping(self) -> dict[str, Any]:
        """A heartbeat that waits for its ``PONG``; the reply refreshes ``energy``."""
        reply = self._request(self.ping_message(), Kind.PONG)
        self.energy = reply["energy"]
        return reply.body

    def leave(self) -> None:
        self._request(protocol.message(Kind.LEAVE, player=self.player, token=self.token),
                      Kind.BYE)

    def decide(self, gen: int, keep: Sequence[int] = (), let_die: Sequence[int] = ()) -> bool:
        """Answer a ``GAME_LOGIC`` request (indices into its cells); no reply awaited.
        Whether the socket took the answer (``send``)."""
        return self.send(protocol.built(Kind.DECIDE, player=self.player, token=self.token,
                                        gen=gen, keep=[int(i) for i in keep],
                                        let_die=[int(i) for i in let_die]))

    def send(self, msg: Message) -> bool:
        """Send ``msg`` without waiting for a reply; whether the socket took it (queued
        it to go: not that the server has it). It never waits for room: with its server
        gone, or with a server that does not read what it is sent, the socket's queue
        fills (``SNDHWM`` messages) and a blocking send would hold this thread, its
        heartbeats and its answers, for ever. What the socket does not take is dropped
        and counted (``unsent``): a late answer or heartbeat is worth nothing."""
        if send_now(self.sock, protocol.encode(msg)):
            return True
        self.unsent += 1
        return False

    # -- receiving ---------------------------------------------------------------------

    def _request(self, msg: Message, expect: Kind) -> Message:
        outgoing = Outgoing(self.sock, protocol.encode(msg))
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            wait = outgoing.poll_for(left, watching=self.handshake is not None)
            if left <= 0 or not self.sock.poll(int(max(0.0, wait) * 1000)):
                if self.handshake is not None:
                    why = self.handshake.failure()
                    if why is not None:
                        raise HandshakeError(why)
                if left <= 0:
                    raise PeerGone(f"no answer to {msg.kind} from {self.endpoint} "
                                   f"within {self.timeout:g} s" if outgoing.sent else
                                   f"could not send {msg.kind} to {self.endpoint} within "
                                   f"{self.timeout:g} s (no connection)")
                continue
            if self.handshake is not None:  # an answer: the handshake went through
                self.handshake.close()
                self.handshake = None
            for reply in self._recv():
                if reply.kind is expect:
                    return reply  # a reply is never folded with others
                if reply.kind is Kind.ERROR and \
                        reply.body.get("about") in (None, str(msg.kind)):
                    raise RemoteError(reply["code"], reply["reason"])
                self.inbox.append(reply)

    def _recv(self) -> list[Message]:
        """The messages the next one received stands for (``protocol.unfold``: a
        request with the news before it), noted; none when it did not decode."""
        try:
            # Copied: a player's messages are small, and bytes cost less than a Frame.
            msgs = protocol.unfold(protocol.decode(self.sock.recv_multipart()))
        except ProtocolError:
            return []
        for msg in msgs:
            self._note(msg)
        return msgs

    def poll(self, timeout: float = 0.0) -> Message | None:
        """The next message the server pushed (``GAME_LOGIC``, ``DECIDED``...), or None."""
        # A message that does not decode is skipped for the next: one is read until
        # none waits (what an edge-triggered ``zmq.FD`` watcher relies on).
        while not self.inbox and self._readable(timeout):
            self.inbox.extend(self._recv())
            timeout = 0.0
        return self.inbox.popleft() if self.inbox else None

    def _readable(self, timeout: float) -> bool:
        """Whether a message waits (for up to ``timeout`` seconds); without waiting,
        the socket's ``EVENTS`` alone (no poller made: bots ask this a thousand times
        a generation)."""
        if timeout <= 0:
            events = self.sock.getsockopt(zmq.EVENTS)
            return isinstance(events, int) and bool(events & zmq.POLLIN)
        return bool(self.sock.poll(int(timeout * 1000)))

    def _note(self, msg: Message) -> None:
        """Keep ``energy`` current from every message that reports it."""
        if msg.kind in (Kind.DECIDED, Kind.PONG, Kind.PLACED, Kind.LANDED):
            self.energy = msg["energy"]

    def _close_socket(self) -> None:
        if self.handshake is not None:
            self.handshake.close()
            self.handshake = None
        self.sock.close()

    def close(self) -> None:
        self._close_socket()
