"""Small pieces the socket-owning threads share."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import zmq

log = logging.getLogger("lifenet.guard")

DRAIN_LIMIT = 256
HEARTBEAT_IVL_MS = 5_000      # ZMTP PING to every peer this often ...
HEARTBEAT_TIMEOUT_MS = 15_000  # ... and the connection closed if nothing comes back
HANDSHAKE_IVL_MS = 10_000     # a connection that does not finish its handshake: closed


def apply_heartbeats(sock: zmq.Socket[Any], handshake_ms: int = HANDSHAKE_IVL_MS) -> None:
    """ZMTP heartbeats and a handshake deadline on a server socket (before it binds): a
    peer that vanished, or never finished saying hello, gives its connection and its
    file descriptor back instead of holding them for ever."""
    sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
    sock.setsockopt(zmq.HANDSHAKE_IVL, handshake_ms)


def bind(sock: zmq.Socket[Any], endpoint: str) -> tuple[str, int]:
    """Bind ``sock`` to ``endpoint`` (closing it if that fails, and raising the
    ``ZMQError``); the endpoint it is bound to, and its port (what port 0 became)."""
    try:
        sock.bind(endpoint)
    except zmq.ZMQError:
        sock.close(linger=0)
        raise
    bound = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    return bound, int(bound.rsplit(":", 1)[1])


def raise_open_files_limit() -> tuple[int, int]:
    """Raise this process's soft limit on open files to its hard limit (every peer is a
    file descriptor); returns (soft, hard) as they are now."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def drain(sock: zmq.Socket[Any], limit: int = DRAIN_LIMIT) -> Iterator[list[Any]]:
    """The messages waiting on ``sock`` (frames, not copied), at most ``limit`` of them,
    so one busy socket cannot starve the others a loop serves, nor its timers."""
    for _ in range(limit):
        try:
            yield sock.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return


class Wakeup:
    """A file descriptor other threads make readable to wake a thread's ``zmq.Poller``.

    ZeroMQ sockets belong to one thread, so a thread that wants another to act (send a
    message it queued) cannot write to that thread's socket; it calls ``set``, which
    writes a byte into a non-blocking pipe the owning thread polls beside its sockets.
    The owner calls ``clear`` and then looks at its queue. A full pipe is already set.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._lock = threading.Lock()  # no write after close: the number may be reused
        self._closed = False
        self._pending = False  # a byte written and not cleared yet: no need for another

    def fileno(self) -> int:
        return self._read

    def set(self) -> None:
        """Wake the owner (any thread; never blocks)."""
        with self._lock, contextlib.suppress(OSError):
            if not self._closed and not self._pending:
                os.write(self._write, b"\0")  # once until cleared: a thousand messages
                self._pending = True           # a generation are one wake-up

    def clear(self) -> None:
        """Read every wake-up byte (the owner's thread); a ``set`` after this wakes it
        again. The bytes go first: a ``set`` between the two writes nothing, and what
        it announced is in the queue the owner looks at next."""
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._read, 4096):
                pass
        with self._lock:
            self._pending = False

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._read, self._write):
                with contextlib.suppress(OSError):
                    os.close(fd)


def rebind(sock: zmq.Socket[Any], make: Callable[[], zmq.Socket[Any]], endpoint: str,
           timeout: float = 2.0) -> zmq.Socket[Any]:
    """Close ``sock`` (dropping every connection and whatever they left half received)
    and bind a new one from ``make`` to the same ``endpoint``, retrying while the old
    listener's port is being let go."""
    sock.close(linger=0)
    deadline = time.monotonic() + timeout
    while True:
        fresh = make()
        try:
            fresh.bind(endpoint)
            return fresh
        except zmq.ZMQError:
            fresh.close(linger=0)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallinfo2
        fn.restype = _MallInfo2
        found: Callable[[], _MallInfo2] = fn
        return found
    return None


_MALLINFO2 = _mallinfo2()


def allocated_mb() -> float:
    """Heap memory in use in this process, in MiB: what libzmq's buffers and everything
    else hold now (glibc's ``mallinfo2``: it drops as soon as they are freed, where the
    resident size may not), or the resident size where that is not available."""
    if _MALLINFO2 is not None:
        info = _MALLINFO2()
        used: int = info.uordblks + info.hblkhd
        return used / (1 << 20)
    return resident_mb()


def resident_mb() -> float:
    """This process's resident memory, in MiB (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def release_freed_memory() -> None:
    """Give freed heap back to the system now (glibc's ``malloc_trim``; nothing
    elsewhere): after dropping connections, so that the drop shows."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)


class MemoryGuard:
    """Contains what libzmq cannot: a peer that never finishes a multipart message.

    libzmq keeps every frame of an unfinished message (its ``MAXMSGSIZE`` limits one
    frame, not their number), so a peer that sends frames with MORE set and never the
    last one makes the server hold them all, and no socket option bounds it. The only
    place such a message can be let go is its connection, and the only sign of it is
    memory: when the process has grown by more than ``limit_mb`` since ``arm``, the
    endpoints drop all their connections, one endpoint at a time in ``ORDER`` (the
    player endpoint, open to any key, first), each closing and binding its socket again
    (see ``due``), until memory is back under the limit. Legitimate peers reconnect by
    themselves (ZeroMQ does), and the server's heartbeats and re-sends do the rest.

    Grown means the heap in use grew (``allocated_mb``, which drops as soon as the
    frames are freed, where the resident size may not). It is walked when the resident
    size (``resident_mb``, a few microseconds to read) is past the limit, and once a
    second whatever that says (a machine with swap may page the growth out), not at
    every look: glibc's ``mallinfo2`` visits every free chunk of every arena, under
    each arena's lock, and in a server with a thousand players that took 0.1 to 3 ms a
    call, 48 ms at worst (measured in ``lifenet loadtest --bots 1000``).
    """

    ORDER = ("players", "frames", "views", "workers")
    handshake_ms = HANDSHAKE_IVL_MS  # the server's setting, for every socket it makes

    @property
    def poll_ms(self) -> int:
        """How long an endpoint's loop may wait between two looks (ms)."""
        return int(self.CHECK_EVERY * 1000) if self.limit_mb else 100

    CHECK_EVERY = 0.02  # seconds between looks at the heap (~20 MB at loopback speed)
    WALK_EVERY = 1.0    # ... and between two walks of it, whatever the resident size
    SETTLE = 0.1        # seconds between two endpoints' drops

    def __init__(self, limit_mb: float | None, slack_mb: float = 0.0) -> None:
        # The working set of a step (next boards, batches, frames) comes on top: the
        # growth allowed is both, and only the slack is forgiven at ``rebase``.
        self.limit_mb = limit_mb + slack_mb if limit_mb else None
        self.slack_mb = slack_mb
        self.baseline = 0.0
        self.resident = 0.0  # the resident size's baseline
        self.trips = 0
        self._lock = threading.Lock()
        self._turn = 0      # the endpoint (index in ORDER) to drop next
        self._culprit = 0   # the last one whose drop freed the memory: first suspect
        self._next_check = 0.0
        self._next_walk = 0.0
        self._not_before = 0.0
        self._over = False

    def arm(self) -> None:
        """Measure the baseline (the server with its world, before any peer)."""
        self.baseline = allocated_mb()
        self.resident = resident_mb()
        self._next_walk = time.monotonic() + self.WALK_EVERY

    def rebase(self) -> None:
        """Measure the baseline again once the first generations have made the
        working set (the next boards, the batches, the frames): at ``arm`` none of it
        was there yet. Not after a trip (an attacker's growth is not a baseline), and
        no more than the slack is forgiven: the growth allowed stays what it was, at
        most the slack more."""
        with self._lock:
            if self.limit_mb and self.baseline and not self.trips:
                self.baseline = min(allocated_mb(), self.baseline + self.slack_mb)
                self.resident = min(resident_mb(), self.resident + self.slack_mb)

    def due(self, endpoint: str) -> bool:
        """Whether ``endpoint`` (one of ``ORDER``) must drop its connections now; call
        often from the thread that owns its socket."""
        if not self.limit_mb or not self.baseline:
            return False
        now = time.monotonic()
        with self._lock:
            if now >= self._next_check:
                self._next_check = now + self.CHECK_EVERY
                over = False
                # (and while the last walk found it over: the endpoints take turns)
                if self._over or now >= self._next_walk \
                        or resident_mb() - self.resident > self.limit_mb:
                    self._next_walk = now + self.WALK_EVERY
                    over = allocated_mb() - self.baseline > self.limit_mb
                if not over:
                    self._turn = self._culprit
                self._over = over
            if not self._over or now < self._not_before \
                    or self.ORDER[self._turn % len(self.ORDER)] != endpoint:
                return False
            self._turn += 1
            self._not_before = now + self.SETTLE
            self.trips += 1
            return True

    def drop_all(self, endpoint: str, sock: zmq.Socket[Any],
                 make: Callable[[], zmq.Socket[Any]], address: str) -> zmq.Socket[Any]:
        """The remedy, on ``endpoint`` (one of ``ORDER``): close ``sock`` (every
        connection, and what they left half received), bind a fresh one from ``make``
        to ``address``, give the freed heap back and note what that freed. A
        ``zmq.ZMQError`` (logged) when the address cannot be bound again: the port was
        taken meanwhile, and the endpoint cannot go on."""
        log.error("memory grew by more than %g MiB: the %s endpoint drops every connection "
                  "(a peer holding the server's memory in an unfinished message?)",
                  self.limit_mb, endpoint)
        before = allocated_mb()
        try:
            fresh = rebind(sock, make, address)
        except zmq.ZMQError as e:
            log.error("the %s endpoint cannot listen again on %s: %s", endpoint, address, e)
            raise
        release_freed_memory()
        self.dropped(endpoint, before)
        return fresh

    def dropped(self, endpoint: str, before_mb: float) -> None:
        """``endpoint`` has dropped its connections (``before_mb`` allocated before): if
        that freed the excess, it is the first suspect next time (the attacker comes
        back to the same door) and it may go again at once."""
        freed = before_mb - allocated_mb()
        with self._lock:
            if self.limit_mb and freed >= self.limit_mb / 2:
                self._culprit = self._turn = self.ORDER.index(endpoint)
                self._over = False
                self._not_before = 0.0
