"""Small pieces the socket-owning threads share."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import zmq

DRAIN_LIMIT = 256


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

    def fileno(self) -> int:
        return self._read

    def set(self) -> None:
        """Wake the owner (any thread; never blocks)."""
        with self._lock, contextlib.suppress(OSError):
            if not self._closed:
                os.write(self._write, b"\0")

    def clear(self) -> None:
        """Read every wake-up byte (the owner's thread)."""
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._read, 4096):
                pass

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._read, self._write):
                with contextlib.suppress(OSError):
                    os.close(fd)
