"""Who may talk to the server: CURVE on every endpoint, and the gatekeeper (ZAP).

With ``--keys DIR`` every endpoint is a CURVE server (``serve_curve``): traffic is
encrypted, and every peer proves it holds the secret half of the public key it shows.
Whether that key may connect is decided by the ``Gatekeeper``, a thread that answers
libzmq's ZAP requests (ZeroMQ's authentication protocol, RFC 27) for the server's
context, by the domain each socket names:

    domain      endpoint          who may connect
    workers     worker (ROUTER)   keys on DIR/authorized/workers/ only
    players     player (ROUTER)   any key: players are anonymous, but encrypted
    viewers     frames (PUB)      any key

Every accepted peer's messages carry its public key (Z85) as their ``User-Id``
(``peer_key``): the broker checks a worker's on ``READY`` and on every heartbeat round,
the lobby binds a player's session to the key it joined with and takes operator
requests only from keys on ``DIR/authorized/operators/``. The allow-lists are read again
whenever their directory changes (checked once a second), so adding a key lets a worker
in and removing one drops it, without a restart.

Without keys (loopback only, or ``--insecure``) there is no CURVE, no ZAP, no key on any
message: ``peer_key`` is ``None``, every peer counts as an operator, and a session is
bound to nothing. The server refuses to listen beyond loopback that way unless told.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
from zmq.utils import z85

from shared.errors import ConfigError, KeyFileError
from shared.keys import PUBLIC_SUFFIX, SECRET_SUFFIX, KeyPair, load_allow_list, load_secret
from shared.ratelimit import LogLimiter
from shared.remote import is_loopback

log = logging.getLogger("lifenet.auth")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
WORKERS, PLAYERS, VIEWERS = "workers", "players", "viewers"
RELOAD_EVERY = 1.0
REFUSAL_LOG_EVERY = 60.0  # one line per refused key per minute, at most


@dataclass(frozen=True)
class ServerKeys:
    """The server's key pair and where its allow-lists are."""

    pair: KeyPair
    workers: Path
    operators: Path

    @classmethod
    def load(cls, directory: Path) -> ServerKeys:
        """From a keys directory (``lifenet keys init``): ``server.key_secret`` and
        ``authorized/workers`` and ``authorized/operators`` (which must exist)."""
        if not directory.is_dir():
            raise KeyFileError(f"no keys directory {directory}: make one with "
                               f"`lifenet keys init {directory}`")
        pair = load_secret(directory / f"server{SECRET_SUFFIX}")
        keys = cls(pair, directory / "authorized" / "workers",
                   directory / "authorized" / "operators")
        for allow_list in (keys.workers, keys.operators):
            load_allow_list(allow_list)  # refused now, with the reason, if unreadable
        return keys


def check_exposure(host: str, keys: Path | None, insecure: bool) -> None:
    """Refuse to listen beyond loopback without keys, unless ``--insecure``."""
    if keys is None and not insecure and not is_loopback(host):
        raise ConfigError(
            f"--host {host} without --keys would let anyone who reaches it compute the "
            "world, play as anyone and ask for snapshots: give --keys DIR (make one with "
            "`lifenet keys init DIR`), or --insecure to do it anyway")


def serve_curve(sock: zmq.Socket[Any], keys: ServerKeys | None, domain: str) -> None:
    """Make ``sock`` (before it binds) a CURVE server whose peers the gatekeeper
    admits by ``domain``; nothing without keys."""
    if keys is None:
        return
    assert keys.pair.secret is not None
    sock.curve_server = True
    sock.curve_publickey = keys.pair.public
    sock.curve_secretkey = keys.pair.secret
    sock.zap_domain = domain.encode()
    # With no ZAP handler answering, libzmq would otherwise admit any key: fail closed.
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)


def peer_key(frame: Any) -> bytes | None:
    """The CURVE public key (Z85) the gatekeeper accepted for the peer that sent the
    message ``frame`` belongs to; ``None`` without CURVE."""
    try:
        user: str | None = frame.get("User-Id")
    except (zmq.ZMQError, AttributeError, TypeError):
        return None
    return user.encode() if user else None


class AllowList:
    """The public keys in one allow-list directory, read again when it changes.

    It fails closed: a file that cannot be read is skipped (and named once in the log),
    a directory that is gone or unreadable admits no one, never the keys it had.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._stamp: tuple[int, ...] = ()
        self._keys: frozenset[bytes] = frozenset()
        self.reload()

    def _signature(self) -> tuple[int, ...]:
        try:
            info = self.directory.stat()
            files = sorted(self.directory.glob(f"*{PUBLIC_SUFFIX}"))
            return (info.st_mtime_ns, len(files),
                    *(p.stat().st_mtime_ns for p in files))
        except OSError:
            return (-1,)

    def reload(self) -> bool:
        """Read the directory again if it changed; whether the keys changed."""
        stamp = self._signature()
        if stamp == self._stamp:
            return False
        bad: list[str] = []
        try:
            keys = frozenset(load_allow_list(self.directory, bad))
        except Exception as e:  # gone, unreadable...: nobody on this list for now
            log.error("allow-list %s cannot be read, so it admits no one: %s",
                      self.directory, e)
            keys = frozenset()
        for why in bad:
            log.error("allow-list %s: a file is skipped: %s", self.directory, why)
        with self._lock:
            changed = keys != self._keys
            self._stamp, self._keys = stamp, keys
        if changed:
            log.info("allow-list %s: %d keys", self.directory, len(keys))
        return changed

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._keys


class Gatekeeper(threading.Thread):
    """Answers ZAP requests for the server's context: the one place keys are admitted.

    Runs before any CURVE socket binds, and owns the ZAP socket. A refused key gets one
    log line a minute at most, and all refusals together a few lines a minute (a flood
    of throwaway keys cannot flood the log); every one is counted in ``refused``.

    It fails closed: every socket it serves insists on an answer
    (``ZAP_ENFORCE_DOMAIN``), so while it is not running no handshake succeeds, and
    ``admits``/``is_operator`` say no. Nothing a peer or a key file does can end its
    loop; the server stops if it ever ends anyway (``Server.run``).
    """

    def __init__(self, context: zmq.Context[Any], keys: ServerKeys) -> None:
        super().__init__(name="gatekeeper", daemon=True)
        self.context = context
        self.keys = keys
        self.workers = AllowList(keys.workers)
        self.operators = AllowList(keys.operators)
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.endpoint = ZAP_ENDPOINT
        self.refused = 0
        self.admitted = 0
        self._refusals = LogLimiter(log, REFUSAL_LOG_EVERY, overall=10)

    def stop(self) -> None:
        self.stop_event.set()

    def admits(self, domain: str, key: bytes) -> bool:
        """Whether a peer showing ``key`` may connect to the endpoint of ``domain``."""
        if not self.is_alive():
            return False
        if domain == WORKERS:
            return key in self.workers
        return domain in (PLAYERS, VIEWERS)

    def is_operator(self, key: bytes | None) -> bool:
        return key is not None and self.is_alive() and key in self.operators

    def run(self) -> None:
        sock: zmq.Socket[Any] | None = None
        try:
            sock = self.context.socket(zmq.REP)
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(ZAP_ENDPOINT)
        except zmq.ZMQError as e:
            self.error = e
            if sock is not None:
                sock.close()
            self.ready.set()
            return
        self.ready.set()
        next_reload = time.monotonic() + RELOAD_EVERY
        try:
            while not self.stop_event.is_set():
                if sock.poll(100):
                    request = sock.recv_multipart()
                    try:
                        reply = self._answer(request)
                    except Exception:  # a bug here must refuse, never end the loop
                        log.exception("ZAP request failed: refused")
                        reply = [b"1.0", request[1] if len(request) > 1 else b"", b"500",
                                 b"internal error", b"", b""]
                    sock.send_multipart(reply)
                if time.monotonic() >= next_reload:
                    self.workers.reload()
                    self.operators.reload()
                    next_reload = time.monotonic() + RELOAD_EVERY
        finally:
            sock.close()

    def _answer(self, request: list[bytes]) -> list[bytes]:
        """The ZAP reply: ``[version, request id, status, text, user id, metadata]``."""
        if len(request) < 6:
            return [b"1.0", request[1] if len(request) > 1 else b"", b"500",
                    b"malformed ZAP request", b"", b""]
        version, request_id, domain, address, _identity, mechanism = request[:6]
        credentials = request[6:]
        if version != b"1.0":
            return [b"1.0", request_id, b"500", b"unknown ZAP version", b"", b""]
        if mechanism != b"CURVE" or len(credentials) != 1 or len(credentials[0]) != 32:
            return self._refuse(request_id, domain, address, b"", "not CURVE")
        key = z85.encode(credentials[0])
        if not self.admits(domain.decode(errors="replace"), key):
            return self._refuse(request_id, domain, address, key, "not on the allow-list")
        self.admitted += 1
        return [b"1.0", request_id, b"200", b"OK", key, b""]

    def _refuse(self, request_id: bytes, domain: bytes, address: bytes, key: bytes,
                why: str) -> list[bytes]:
        self.refused += 1
        self._refusals.warning(key.decode() or "-",
                               "refused a %s key %s from %s: %s (%d refusals so far)",
                               domain.decode(errors="replace"), key.decode() or "-",
                               address.decode(errors="replace"), why, self.refused)
        return [b"1.0", request_id, b"400", why.encode(), b"", b""]
