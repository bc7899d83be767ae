"""The client side of the player endpoint: one request, one reply, with a timeout.

Anything that asks a server something (``lifenet status``, ``snapshot save``, a
player joining) first has to get through the connection's handshake. ZeroMQ hides a
failed handshake behind silence: a client without the server's key, or with a wrong
one, just never gets an answer. ``Handshake`` watches the socket's monitor instead, so
that such a client hears in one line what went wrong, at once, and what to pass.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from shared import protocol
from shared.errors import HandshakeError, KeyFileError, PeerGone
from shared.keys import PUBLIC_SUFFIX, SECRET_SUFFIX, Credentials, KeyPair, load_public, load_secret
from shared.local import find_embedded
from shared.protocol import Kind, Message

DEFAULT_PLAYER_PORT = 5556

_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
           | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


def player_endpoint(connect: str, port: int = DEFAULT_PLAYER_PORT) -> str:
    """``HOST``, ``HOST:PORT`` or ``tcp://HOST:PORT`` as a ZeroMQ endpoint."""
    if "://" in connect:
        return connect
    if ":" in connect.rsplit("]", 1)[-1]:
        return f"tcp://{connect}"
    return f"tcp://{connect}:{port}"


def host_and_port(endpoint: str) -> tuple[str, int | None]:
    """The host and port of a ``tcp://HOST:PORT`` endpoint (port ``None`` if absent)."""
    address = endpoint.split("://", 1)[-1]
    host, _, port = address.rpartition(":")
    if not host:
        return address.strip("[]"), None
    return host.strip("[]"), int(port) if port.isdigit() else None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def credentials_for(endpoint: str, server_key: Path | None = None, key: Path | None = None,
                    *, keys: Path | None = None, role: str = "player") -> Credentials | None:
    """The CURVE credentials to reach ``endpoint`` with, from the options given:

    - ``keys`` (a keys directory): its ``server.key`` and ``ROLE.key_secret``;
    - ``server_key`` (and ``key``, else a throwaway pair);
    - no ``server_key``, and ``endpoint`` is a local ``lifenet up``'s: the keys it made
      (``key``, else its operator's pair for ``role="operator"``, else a throwaway pair;
      ``shared.local``);
    - else ``None``: a plain connection (a server without keys).
    """
    if keys is not None:
        return Credentials.in_dir(keys, role)
    if server_key is not None:
        return Credentials.of(server_key, key)
    host, port = host_and_port(endpoint)
    directory = find_embedded(port) if port is not None and is_loopback(host) else None
    if directory is None:
        if key is not None:
            raise KeyFileError("--key FILE needs --server-key FILE (the server's "
                               "server.key)")
        return None
    if key is not None:
        own = load_secret(key)
    elif role == "operator":
        own = load_secret(directory / f"operator{SECRET_SUFFIX}")
    else:
        own = KeyPair.generate()
    return Credentials(load_public(directory / f"server{PUBLIC_SUFFIX}").public, own)


def secure(sock: zmq.Socket[Any], credentials: Credentials | None) -> None:
    """Make ``sock`` (before it connects) a CURVE client with ``credentials``, if any."""
    if credentials is not None:
        credentials.apply(sock)


class Handshake:
    """Watches one connecting socket until its first handshake succeeds or fails.

    ``failure()`` reads the monitor's events without blocking and returns why the
    server refused the handshake, in words a user can act on, or ``None``. ``fileno``
    lets a poller wait on it beside the socket. ``close`` stops watching (after the
    first reply there is nothing left to watch).
    """

    def __init__(self, sock: zmq.Socket[Any], endpoint: str, curve: bool,
                 hint: str = "--server-key FILE") -> None:
        self.sock = sock
        self.endpoint = endpoint
        self.curve = curve
        self.hint = hint  # the options that give this program its keys
        self.monitor: zmq.Socket[Any] | None = sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | _FAILED)
        self.succeeded = False

    def failure(self) -> str | None:
        while self.monitor is not None and self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)
            kind, value = event["event"], event["value"]
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.succeeded = True
            elif kind & _FAILED:
                return self._explain(kind, value)
        return None

    def _explain(self, kind: int, value: int) -> str:
        # Which side notices a mismatch first is a race: the client sees a protocol
        # error, or the server hanging up mid-handshake (no detail). A plain client is
        # refused only by a server that wants CURVE.
        where = f"the server at {self.endpoint}"
        if not self.curve:
            return (f"{where} encrypts its connections (CURVE): pass {self.hint} (its "
                    "keys directory's server.key)")
        if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return (f"{where} refused this key (ZAP status {value}): it is not on the "
                    "server's allow-list for this endpoint")
        if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL \
                and value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            return (f"{where} does not use CURVE keys (or is not a lifenet server): "
                    "connect without keys")
        return (f"{where} did not accept the handshake: the server key used is not this "
                f"server's (check {self.hint}), or the server uses no keys")

    def close(self) -> None:
        if self.monitor is not None:
            self.sock.disable_monitor()
            self.monitor.close()
            self.monitor = None


def request(endpoint: str, msg: Message, timeout: float = 5.0,
            context: zmq.Context[Any] | None = None,
            credentials: Credentials | None = None) -> Message:
    """Send ``msg`` and return the reply; ``RemoteError`` for an error reply,
    ``HandshakeError`` when the server refuses the connection's handshake, ``PeerGone``
    when nothing answers within ``timeout`` seconds."""
    ctx = context or zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    watch: Handshake | None = None
    try:
        secure(sock, credentials)
        watch = Handshake(sock, endpoint, credentials is not None)
        sock.connect(endpoint)
        sock.send_multipart(protocol.encode(msg))
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        assert watch.monitor is not None
        poller.register(watch.monitor, zmq.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            ready = dict(poller.poll(max(0, int(left * 1000)))) if left > 0 else {}
            if sock in ready:
                reply = protocol.decode(sock.recv_multipart())
                break
            why = watch.failure()
            if why is not None:
                raise HandshakeError(why)
            if left <= 0:
                raise PeerGone(f"no answer from {endpoint} within {timeout:g} s")
    finally:
        if watch is not None:
            watch.close()
        sock.close()
    return protocol.raise_if_error(reply)


def status(endpoint: str, timeout: float = 5.0,
           credentials: Credentials | None = None) -> dict[str, Any]:
    """The server's status report."""
    reply = request(endpoint, protocol.message(Kind.STATUS, version=protocol.PROTOCOL_VERSION),
                    timeout, credentials=credentials)
    if reply.kind is not Kind.STATUS_REPLY:
        raise PeerGone(f"{endpoint} answered {reply.kind}, not a status report")
    return reply.body
