"""The client side of the player endpoint: one request, one reply, with a timeout."""

from __future__ import annotations

from typing import Any

import zmq

from shared import protocol
from shared.errors import PeerGone
from shared.protocol import Kind, Message

DEFAULT_PLAYER_PORT = 5556


def player_endpoint(connect: str, port: int = DEFAULT_PLAYER_PORT) -> str:
    """``HOST``, ``HOST:PORT`` or ``tcp://HOST:PORT`` as a ZeroMQ endpoint."""
    if "://" in connect:
        return connect
    if ":" in connect.rsplit("]", 1)[-1]:
        return f"tcp://{connect}"
    return f"tcp://{connect}:{port}"


def request(endpoint: str, msg: Message, timeout: float = 5.0,
            context: zmq.Context[Any] | None = None) -> Message:
    """Send ``msg`` and return the reply; ``RemoteError`` for an error reply,
    ``PeerGone`` when nothing answers within ``timeout`` seconds."""
    ctx = context or zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send_multipart(protocol.encode(msg))
        if not sock.poll(timeout * 1000):
            raise PeerGone(f"no answer from {endpoint} within {timeout:g} s")
        reply = protocol.decode(sock.recv_multipart())
    finally:
        sock.close()
    return protocol.raise_if_error(reply)


def status(endpoint: str, timeout: float = 5.0) -> dict[str, Any]:
    """The server's status report."""
    reply = request(endpoint, protocol.message(Kind.STATUS, version=protocol.PROTOCOL_VERSION),
                    timeout)
    if reply.kind is not Kind.STATUS_REPLY:
        raise PeerGone(f"{endpoint} answered {reply.kind}, not a status report")
    return reply.body
