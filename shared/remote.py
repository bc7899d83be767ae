"""The client side of the player endpoint: one request, one reply, with a timeout.

Anything that asks a server something (``lifenet status``, ``snapshot save``, a
player joining) first has to get through the connection's handshake. ZeroMQ hides a
failed handshake behind silence: a client without the server's key, or with a wrong
one, just never gets an answer. ``Handshake`` watches the socket's monitor instead, so
that such a client hears in one line what went wrong, at once, and what to pass.

Before that, ``player_endpoint`` is the one parser of a player's ``--connect``
(``HOST``, ``HOST:PORT``, ``[IPv6]:PORT``, ``tcp://HOST:PORT``): anything else is one
line of ``ConfigError`` before a socket is made. And a request that reaches the wrong
port says so: a worker port answers ``UNKNOWN_PEER`` ("say READY first"), a frame port
(PUB) hangs up on a DEALER (a failed handshake, or none) but completes one with a SUB
(``_publishes``, tried when a handshake failed), and a ``lifenet up`` running here
records its three ports (``record_local_ports``), so that its worker or frame port is
named as such even where its keys would make the handshake fail first.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from shared import protocol
from shared.errors import (
    ConfigError,
    HandshakeError,
    KeyFileError,
    PeerGone,
    RemoteError,
    WrongEndpoint,
)
from shared.keys import PUBLIC_SUFFIX, SECRET_SUFFIX, Credentials, KeyPair, load_public, load_secret
from shared.local import embedded_keys_dir, find_embedded, state_dir
from shared.protocol import ErrorCode, Kind, Message

DEFAULT_WORKER_PORT = 5555
DEFAULT_PLAYER_PORT = 5556
DEFAULT_FRAME_PORT = 5557
PROBE_TIMEOUT = 0.5  # how long a failed request's SUB probe waits for a frame port
PORTS_FILE = "ports.json"  # in a running ``lifenet up``'s keys directory: its three ports

_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
           | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
_HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")
_FORMS = "give HOST, HOST:PORT, [IPv6]:PORT or tcp://HOST:PORT"


def player_endpoint(connect: str, port: int = DEFAULT_PLAYER_PORT) -> str:
    """``HOST``, ``HOST:PORT``, ``[IPv6]:PORT`` or ``tcp://HOST:PORT`` as a ZeroMQ
    endpoint, ``tcp://HOST:PORT`` (``port`` when none is given); ``ConfigError`` in one
    line for anything else: another scheme, a port that is not a number in 1..65535, an
    empty or malformed host. The one parser of every ``--connect`` of a player's side,
    and idempotent: an endpoint it made parses to itself."""
    text = connect.strip()
    scheme, sep, address = text.rpartition("://")
    if sep and scheme.lower() != "tcp":
        raise ConfigError(f"{connect!r}: lifenet speaks tcp:// only, not {scheme}://; "
                          f"{_FORMS}")
    if sep and ";" in address:  # ZeroMQ's tcp://SOURCE;HOST:PORT: connect from SOURCE
        source, _, target = address.partition(";")
        host, colon, any_port = source.rpartition(":")
        if colon and not host.endswith(":") and any_port in ("0", "*"):
            source = host  # the source's port: any (what a port of 0 or * says)
        source = player_endpoint(f"tcp://{source}", 1).removeprefix("tcp://").rsplit(":", 1)[0]
        return f"tcp://{source}:0;{player_endpoint(target, port).removeprefix('tcp://')}"
    port_text: str | None = None
    v6 = False
    if address.startswith("["):
        host, closed, rest = address[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ConfigError(f"{connect!r} is not an address: {_FORMS}")
        port_text = rest[1:] if rest else None
        v6 = True
    elif address.count(":") > 1:  # a bare IPv6 address, without a port
        host, v6 = address, True
    else:
        host, colon, rest = address.partition(":")
        port_text = rest if colon else None
    if not host:
        raise ConfigError(f"{connect!r} names no host: {_FORMS}")
    if v6:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"{connect!r}: {host!r} is not an IPv6 address (a host "
                              "name or IPv4 address goes without brackets)") from None
    elif not _HOST_NAME.fullmatch(host) or _not_ipv4(host):
        raise ConfigError(f"{connect!r}: {host!r} is not a host name or address; {_FORMS}")
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit()):
            raise ConfigError(f"{connect!r}: the port {port_text!r} is not a number; {_FORMS}")
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise ConfigError(f"{connect!r}: the port {port} is outside 1..65535")
    return f"tcp://[{host}]:{port}" if v6 else f"tcp://{host}:{port}"


def _not_ipv4(host: str) -> bool:
    """Whether ``host`` looks like an IPv4 address (digits and dots) but is none."""
    if not all(ch.isdigit() or ch == "." for ch in host):
        return False
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return True
    return False


def host_and_port(endpoint: str) -> tuple[str, int | None]:
    """The host and port of a ``tcp://HOST:PORT`` endpoint (port ``None`` if absent)."""
    address = endpoint.split("://", 1)[-1]
    host, _, port = address.rpartition(":")
    if not host or host.endswith(":"):  # no port, or a bare IPv6 address
        return address.strip("[]"), None
    return host.strip("[]"), int(port) if port.isdigit() else None


def record_local_ports(directory: Path, ports: dict[str, int]) -> None:
    """Write a ``lifenet up``'s three ports (``worker``, ``player``, ``frame``) into its
    keys directory, for ``local_ups`` (removed with the directory when ``up`` ends)."""
    path = directory / PORTS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({**ports, "pid": os.getpid()}, f)


def local_ups() -> list[dict[str, int]]:
    """The ports of every ``lifenet up`` running on this machine for this user (those
    that hold their lock: ``shared.local``), each ``{"worker": P, "player": P, "frame":
    P}``; newest player port last."""
    found = []
    try:
        names = sorted(os.listdir(state_dir() / "up"))
    except (OSError, RuntimeError):  # none, or no home directory to have one in
        return []
    for name in names:
        if not name.isdigit() or find_embedded(int(name)) is None:
            continue
        try:
            ports = json.loads((embedded_keys_dir(int(name)) / PORTS_FILE).read_text())
            found.append({role: int(ports[role]) for role in ("worker", "player", "frame")})
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def _wrong_port(endpoint: str) -> str | None:
    """Why ``endpoint`` is not a player port, when it is a worker or frame port of a
    ``lifenet up`` running here; else ``None``."""
    host, port = host_and_port(endpoint)
    if port is None or not is_loopback(host):
        return None
    for up in local_ups():
        for role in ("worker", "frame"):
            if up[role] == port:
                return (f"{endpoint} is a lifenet {role} port, not the player port: "
                        f"players use {up['player']} (the lifenet up running here)")
    return None


SEND_RETRY = 0.05  # seconds between two tries to send a request that could not leave


def send_now(sock: zmq.Socket[Any], frames: list[protocol.Payload]) -> bool:
    """Send ``frames`` if ``sock`` takes them now; whether it did. Nothing is sent
    blocking: a DEALER whose connection failed its handshake has nowhere to queue a
    request, and one whose server is gone (or does not read) fills its queue, and
    libzmq would wait for ever, past any deadline (seen: one status request in about
    300 against a server with keys). A request's caller tries again, every
    ``SEND_RETRY`` seconds, while it watches the handshake and its deadline; a player
    session drops what it pushes without a reply (``PlayerSession.send``)."""
    try:
        sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
    except zmq.Again:
        return False
    return True


class Outgoing:
    """A request's frames until they leave: tried without blocking (``send_now``) on each
    turn of its caller's wait for the reply, never after the deadline (the caller then
    says no answer came, and a request that left later would still reach the server)."""

    def __init__(self, sock: zmq.Socket[Any], frames: list[protocol.Payload]) -> None:
        self.sock = sock
        self.frames = frames
        self.sent = False

    def poll_for(self, left: float, watching: bool = False) -> float:
        """Send, if not yet sent and ``left`` seconds remain; how long to wait for the
        reply now: ``left``, or ``SEND_RETRY`` at most while the request has not left
        (or while a handshake is ``watching``, to hear a refusal soon)."""
        if not self.sent and left > 0:
            self.sent = send_now(self.sock, self.frames)
        return left if self.sent and not watching else min(left, SEND_RETRY)


def _no_server(endpoint: str, timeout: float) -> str:
    """What to say when nothing answers at ``endpoint``: what to do next, in one line."""
    line = (f"no lifenet server answers at {endpoint} within {timeout:g} s: is one running? "
            f"(`lifenet up` starts one; players connect to the player port, "
            f"{DEFAULT_PLAYER_PORT} by default; {DEFAULT_WORKER_PORT} is for workers)")
    host, port = host_and_port(endpoint)
    if is_loopback(host):
        others = [up["player"] for up in local_ups() if up["player"] != port]
        if others:
            line += (f"; a lifenet up here takes players on port "
                     f"{', '.join(map(str, others))}")
    return line


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

    ``player``: the socket is a player's (or an operator's) reaching for the player
    endpoint, where the server admits any key; a refused key, or a peer that hangs up
    before any handshake (libzmq's answer to a socket type it does not pair with, a
    frame port's PUB: once, without reconnecting, so a request says it when its time is
    up; at once if it happens twice), then means another port than the player port.
    """

    DROPS = 2  # hang-ups before a handshake that make a player's peer no player port

    def __init__(self, sock: zmq.Socket[Any], endpoint: str, curve: bool,
                 hint: str = "--server-key FILE", *, player: bool = False) -> None:
        self.sock = sock
        self.endpoint = endpoint
        self.curve = curve
        self.hint = hint  # the options that give this program its keys
        self.player = player
        events = zmq.EVENT_HANDSHAKE_SUCCEEDED | _FAILED
        if player:
            events |= zmq.EVENT_DISCONNECTED
        self.monitor: zmq.Socket[Any] | None = sock.get_monitor_socket(events)
        self.succeeded = False
        self.drops = 0

    def failure(self) -> str | None:
        while self.monitor is not None and self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)
            kind, value = event["event"], event["value"]
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.succeeded = True
            elif kind & _FAILED:
                return self._explain(kind, value)
            elif kind == zmq.EVENT_DISCONNECTED and not self.succeeded:
                self.drops += 1
                if self.drops >= self.DROPS:
                    return self.dropped()
        return None

    def dropped(self) -> str:
        """What a peer that hung up before any handshake is: not a player port."""
        return (f"{self.endpoint} hangs up before any handshake: it is not a lifenet "
                "player port (a frame port?); players connect to the player port, "
                f"{DEFAULT_PLAYER_PORT} by default")

    def _explain(self, kind: int, value: int) -> str:
        # Which side notices a mismatch first is a race: the client sees a protocol
        # error, or the server hanging up mid-handshake (no detail). A plain client is
        # refused only by a server that wants CURVE.
        where = f"the server at {self.endpoint}"
        if not self.curve:
            return (f"{where} encrypts its connections (CURVE): pass {self.hint} (its "
                    "keys directory's server.key)")
        if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            line = (f"{where} refused this key (ZAP status {value}): it is not on the "
                    "server's allow-list for this endpoint")
            if self.player:  # the player endpoint admits any key: this is another one
                line += (f" (players may use any key on the player port, "
                         f"{DEFAULT_PLAYER_PORT} by default: is this the worker port?)")
            return line
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
    """Send ``msg`` to a player endpoint and return the reply, within ``timeout``
    seconds from the call: ``RemoteError`` for an error reply, ``HandshakeError`` when
    the server refuses the connection's handshake, ``WrongEndpoint`` when the address is
    a worker or frame port, ``PeerGone`` when nothing answers in time (each one line
    that says what to do next)."""
    deadline = time.monotonic() + timeout
    wrong = _wrong_port(endpoint)
    if wrong is not None:
        raise WrongEndpoint(wrong)
    ctx = context or zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IPV6, 1)  # tcp://[::1]:PORT as well as IPv4
    watch: Handshake | None = None
    try:
        secure(sock, credentials)
        watch = Handshake(sock, endpoint, credentials is not None, player=True)
        sock.connect(endpoint)
        outgoing = Outgoing(sock, protocol.encode(msg))
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        assert watch.monitor is not None
        poller.register(watch.monitor, zmq.POLLIN)
        while True:
            left = deadline - time.monotonic()
            wait = outgoing.poll_for(left)  # the monitor on the poller hears a refusal
            ready = dict(poller.poll(max(0, int(wait * 1000)))) if left > 0 else {}
            if sock in ready:
                reply = protocol.decode(sock.recv_multipart())
                break
            why = watch.failure()
            if why is None and left <= 0 and watch.drops and not watch.succeeded:
                why = watch.dropped()
            if why is not None:
                # A failed handshake looks the same from a server with keys and from a
                # frame port (a plain one hangs up on a DEALER): a SUB tells them apart.
                if _publishes(ctx, endpoint, credentials):
                    raise WrongEndpoint(f"{endpoint} is a lifenet frame port, not the player "
                                        f"port: players use {DEFAULT_PLAYER_PORT} unless the "
                                        "server was given another --player-port")
                raise (WrongEndpoint(why) if watch.drops and why == watch.dropped()
                       else HandshakeError(why))
            if left <= 0:
                raise PeerGone(_no_server(endpoint, timeout))
    finally:
        if watch is not None:
            watch.close()
        sock.close()
    try:
        return protocol.raise_if_error(reply)
    except RemoteError as e:
        # Only the worker endpoint answers UNKNOWN_PEER ("say READY first"): a worker
        # must introduce itself; the player endpoint never says it.
        if e.code == ErrorCode.UNKNOWN_PEER:
            raise WrongEndpoint(f"{endpoint} is a lifenet worker port, not the player port: "
                                f"players use {DEFAULT_PLAYER_PORT} unless the server was "
                                "given another --player-port") from e
        raise


def _publishes(ctx: zmq.Context[Any], endpoint: str, credentials: Credentials | None,
               timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether ``endpoint`` completes a handshake with a SUB socket (with the same
    credentials) within ``timeout``: then it is a PUB, a frame port."""
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IPV6, 1)
    monitor: zmq.Socket[Any] | None = None
    try:
        secure(sock, credentials)
        monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | _FAILED
                                          | zmq.EVENT_DISCONNECTED)
        sock.connect(endpoint)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not monitor.poll(max(1, int(left * 1000))):
                continue
            return recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED
        return False
    finally:
        if monitor is not None:
            sock.disable_monitor()
            monitor.close()
        sock.close()


def status(endpoint: str, timeout: float = 5.0,
           credentials: Credentials | None = None) -> dict[str, Any]:
    """The server's status report."""
    reply = request(endpoint, protocol.message(Kind.STATUS, version=protocol.PROTOCOL_VERSION),
                    timeout, credentials=credentials)
    if reply.kind is not Kind.STATUS_REPLY:
        raise WrongEndpoint(f"{endpoint} answered {reply.kind}, not a status report: it is "
                            f"not a lifenet player port ({DEFAULT_PLAYER_PORT} by default)")
    return reply.body
