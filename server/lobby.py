"""The player endpoint: the ROUTER socket players, bots and ``lifenet status`` talk to.

One thread owns the socket. Requests are looked up in a table of handlers by kind; a
message that does not decode, or a kind this endpoint does not take, gets an ``ERROR``
reply with a code, and the loop goes on (circus's dispatcher never raises). Answers are
built from a status snapshot that the stepping thread publishes, so a slow or hostile
player never touches the world or delays a generation.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import zmq

from shared import protocol
from shared.errors import ProtocolError
from shared.protocol import ErrorCode, Kind, Message

log = logging.getLogger("lifenet.lobby")

MAX_PLAYER_MESSAGE = 1 << 20

Handler = Callable[[bytes, Message], Message | None]


class PlayerEndpoint(threading.Thread):
    """Owns the player endpoint and answers requests through a table of handlers."""

    def __init__(self, context: zmq.Context[Any], endpoint: str,
                 status: Callable[[], dict[str, Any]]) -> None:
        super().__init__(name="lobby", daemon=True)
        self.context = context
        self.endpoint = endpoint
        self.status = status
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.bound_endpoint = ""
        self.error: BaseException | None = None
        self.bad_messages = 0
        self.handlers: dict[Kind, Handler] = {Kind.STATUS: self._on_status}
        # Replies that other threads finish later (a handler returned None): sent by
        # this thread, which owns the socket.
        self.outbox: queue.SimpleQueue[tuple[bytes, Message]] = queue.SimpleQueue()

    def reply_later(self, identity: bytes, reply: Message) -> None:
        """Send ``reply`` to ``identity`` from the lobby thread (any thread may call)."""
        self.outbox.put((identity, reply))

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        sock = self.context.socket(zmq.ROUTER)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_PLAYER_MESSAGE)
            sock.bind(self.endpoint)
            self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        except zmq.ZMQError as e:
            self.error = e
            sock.close()
            self.ready.set()
            return
        self.ready.set()
        try:
            while not self.stop_event.is_set():
                self._send_outbox(sock)
                if not sock.poll(100):
                    continue
                frames = sock.recv_multipart(copy=False)
                identity = frames[0].bytes
                reply = self.handle(identity, frames[1:])
                if reply is not None:
                    # An asker that is gone or not reading loses its reply, nothing more.
                    with contextlib.suppress(zmq.ZMQError):
                        sock.send_multipart([identity, *protocol.encode(reply)], zmq.NOBLOCK)
        finally:
            self._send_outbox(sock)  # best effort: replies finished while stopping
            sock.close()

    def _send_outbox(self, sock: zmq.Socket[Any]) -> None:
        while True:
            try:
                identity, reply = self.outbox.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(zmq.ZMQError):
                sock.send_multipart([identity, *protocol.encode(reply)], zmq.NOBLOCK)

    def handle(self, identity: bytes, frames: list[Any]) -> Message | None:
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
            return handler(identity, msg)
        except ProtocolError as e:
            self.bad_messages += 1
            return protocol.error(ErrorCode(e.code), str(e), str(msg.kind))
        except Exception as e:  # a bug in a handler must not kill the endpoint
            log.exception("handler for %s failed", msg.kind)
            return protocol.error(ErrorCode.BUSY, f"internal error: {type(e).__name__}",
                                  str(msg.kind))

    def _on_status(self, identity: bytes, msg: Message) -> Message:
        protocol.check_version(msg)
        return protocol.message(Kind.STATUS_REPLY, **self.status())
