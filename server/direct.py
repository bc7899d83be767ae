"""Receive and send on a socket without letting the GIL go: libzmq's own functions,
called directly, for a thread that handles a thousand small messages a generation.

Every pyzmq call that may touch the network (``recv``, ``send``, even with ``NOBLOCK``)
releases the GIL around libzmq and must take it back afterwards. When another thread
of the process is busy in Python (the server stepping its world), taking it back waits
for that thread to be made to drop it, up to the switch interval (5 ms): the convoy
David Beazley described for I/O threads beside CPU-bound ones. The player endpoint
makes five such calls a message (two frames in, three out), a thousand players a
generation, and measured beside one pure-Python thread a message took 23 ms instead of
28 us (``docs/benchmarks.md``, issue 13): its socket calls, not its work, were what
kept players' answers waiting.

A non-blocking call returns in microseconds and has nothing to wait for, so holding the
GIL through it costs the other threads nothing. ``Direct`` makes those calls through
``ctypes.PyDLL`` (which keeps the GIL), on the same libzmq pyzmq uses: the functions
are looked up from pyzmq's own extension module, whose dependencies are searched first,
so they are the library the socket belongs to, and its version must be pyzmq's. Where
that cannot be done (another platform, another backend), it falls back to pyzmq's
calls: the same results, with the GIL let go.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import zmq

from server.auth import peer_key

_DONTWAIT = 1  # ZMQ_DONTWAIT
_SNDMORE = 2   # ZMQ_SNDMORE


class _Msg(ctypes.Union):
    """``zmq_msg_t``: 64 bytes on every platform, aligned as a pointer."""

    _fields_ = [("_", ctypes.c_ubyte * 64), ("align", ctypes.c_void_p)]


assert ctypes.sizeof(_Msg) == 64


class _Lib:
    """libzmq's functions the direct calls need, bound with ctypes."""

    def __init__(self, dll: ctypes.PyDLL) -> None:
        vp, cint, size = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t

        def bind(name: str, args: list[Any], result: Any) -> Any:
            fn = getattr(dll, name)
            fn.argtypes = args
            fn.restype = result
            return fn

        self.version = bind("zmq_version", [ctypes.POINTER(cint)] * 3, None)
        self.msg_init = bind("zmq_msg_init", [vp], cint)
        self.msg_recv = bind("zmq_msg_recv", [vp, vp, cint], cint)
        self.msg_data = bind("zmq_msg_data", [vp], vp)
        self.msg_more = bind("zmq_msg_more", [vp], cint)
        self.msg_gets = bind("zmq_msg_gets", [vp, ctypes.c_char_p], ctypes.c_char_p)
        self.msg_close = bind("zmq_msg_close", [vp], cint)
        self.send = bind("zmq_send", [vp, ctypes.c_char_p, size, cint], cint)

    def version_info(self) -> tuple[int, int, int]:
        parts = [ctypes.c_int() for _ in range(3)]
        self.version(*(ctypes.byref(p) for p in parts))
        return parts[0].value, parts[1].value, parts[2].value


def _load() -> _Lib | None:
    """pyzmq's libzmq, bound to keep the GIL; ``None`` where it cannot be had."""
    with contextlib.suppress(ImportError, OSError, AttributeError, TypeError):
        extension = importlib.import_module("zmq.backend.cython._zmq")
        # use_errno: ctypes keeps errno as the call left it, before any Python runs
        lib = _Lib(ctypes.PyDLL(extension.__file__, use_errno=True))
        if lib.version_info() == zmq.zmq_version_info():
            return lib
    return None


_LIB = _load()


def available() -> bool:
    """Whether sockets are read and written without letting the GIL go here."""
    return _LIB is not None


@dataclass(slots=True)
class Received:
    """One message: its frames (the ROUTER's identity first), the CURVE key the
    gatekeeper accepted for its sender (``None`` without CURVE, or when not asked),
    and the sender's network address (``""`` unless asked for this message)."""

    frames: list[bytes]
    key: bytes | None = None
    address: str = ""


class Direct:
    """Non-blocking ``recv`` and ``send`` on ``sock`` (a ROUTER) for the thread that
    owns it. ``keyed``: read each message's ``User-Id`` (the CURVE key). The sender's
    ``Peer-Address`` is read for every message but those whose first frame starts with
    one of ``unaddressed`` (a thousand answers a generation need none): a message is
    told apart by its first bytes before it is decoded, and one whose bytes are not
    recognised (however it is encoded) has its address read."""

    def __init__(self, sock: zmq.Socket[Any], *, keyed: bool = False,
                 unaddressed: tuple[bytes, ...] = (), direct: bool = True) -> None:
        self.sock = sock
        self.keyed = keyed
        self.unaddressed = unaddressed
        self.lib = _LIB if direct else None
        self._handle = sock.underlying
        self._msg = _Msg()
        self._pmsg = ctypes.addressof(self._msg)

    def recv(self) -> Received | None:
        """The next message waiting, or ``None`` when none is. ``zmq.ZMQError`` when
        the socket fails (closed, or its context terminated)."""
        lib = self.lib
        if lib is None:
            return self._recv_pyzmq()
        self._check_open()
        pmsg, handle = self._pmsg, self._handle
        frames: list[bytes] = []
        got = Received(frames)
        while True:
            lib.msg_init(pmsg)
            size = lib.msg_recv(pmsg, handle, _DONTWAIT)
            if size < 0:
                code = ctypes.get_errno()
                lib.msg_close(pmsg)
                if code == errno.EINTR:
                    continue
                if not frames and code == errno.EAGAIN:
                    return None
                raise _error(code)
            frames.append(ctypes.string_at(lib.msg_data(pmsg), size) if size else b"")
            if len(frames) == 2:  # the first frame the sender sent: its properties
                if self.keyed:
                    got.key = lib.msg_gets(pmsg, b"User-Id") or None
                if not frames[1].startswith(self.unaddressed):
                    address = lib.msg_gets(pmsg, b"Peer-Address")
                    got.address = address.decode(errors="replace") if address else ""
            more = lib.msg_more(pmsg)
            lib.msg_close(pmsg)
            if not more:
                return got

    def _recv_pyzmq(self) -> Received | None:
        try:
            parts = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None
        got = Received([part.bytes for part in parts])
        if len(parts) > 1:
            if self.keyed:
                got.key = peer_key(parts[1])
            if not got.frames[1].startswith(self.unaddressed):
                got.address = _address(parts[1])
        return got

    def send(self, identity: bytes, frames: Sequence[bytes | memoryview]) -> int:
        """Send ``frames`` to the peer ``identity`` without blocking; the bytes sent.
        ``zmq.ZMQError`` as a send raises it (for a ROUTER that is the first frame, if
        any: libzmq holds the first parts of a message until the last)."""
        if not frames:  # the identity alone would be sent with MORE, and wait
            raise ValueError("a message has one frame at least")
        lib = self.lib
        if lib is None:
            return self._send_pyzmq(identity, frames)
        self._check_open()
        last = len(frames) - 1
        self._send_frame(lib, identity, _SNDMORE | _DONTWAIT)
        sent = 0
        for i, frame in enumerate(frames):
            data = frame if type(frame) is bytes else bytes(frame)
            self._send_frame(lib, data, _DONTWAIT if i == last else _SNDMORE | _DONTWAIT)
            sent += len(data)
        return sent

    def _send_frame(self, lib: _Lib, data: bytes, flags: int) -> None:
        while lib.send(self._handle, data, len(data), flags) < 0:
            code = ctypes.get_errno()
            if code != errno.EINTR:
                raise _error(code)

    def _check_open(self) -> None:
        """A closed socket's handle is freed by libzmq's reaper soon after: never
        called through (pyzmq's calls refuse a closed socket too)."""
        if self.sock.closed:
            raise zmq.ZMQError(errno.ENOTSOCK)

    def _send_pyzmq(self, identity: bytes, frames: Sequence[bytes | memoryview]) -> int:
        self.sock.send(identity, zmq.SNDMORE | zmq.NOBLOCK)
        for frame in frames[:-1]:
            self.sock.send(frame, zmq.SNDMORE | zmq.NOBLOCK, copy=False)
        self.sock.send(frames[-1], zmq.NOBLOCK, copy=False)
        return sum(len(f) for f in frames)


def _error(code: int) -> zmq.ZMQError:
    """The exception pyzmq raises for ``code``."""
    if code == errno.EAGAIN:
        return zmq.Again(code)
    if code == zmq.ETERM:
        return zmq.ContextTerminated(code)
    return zmq.ZMQError(code)


def _address(frame: zmq.Frame) -> str:
    """The network address of the peer that sent ``frame`` ("" where there is none)."""
    try:
        value = frame.get("Peer-Address")
    except (zmq.ZMQError, AttributeError, TypeError):
        return ""
    return value if isinstance(value, str) else ""
