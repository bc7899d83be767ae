"""The envelope between the dispatcher threads and the broker thread (``inproc``).

The dispatchers never touch the worker endpoint: each owns an ``inproc`` DEALER socket
to the broker's second ROUTER, and they speak in envelopes around the wire messages of
``shared.protocol`` (a ``BATCH`` going out, a ``RESULT`` or ``ERROR`` coming back). The
envelope says which attempt of which batch a message is about, and what happened to it.
It stays inside one process, between threads that trust each other, so it is not part
of the wire format; it is written down here, in one place, and in ``docs/protocol.md``.

::

    dispatcher -> broker   [SEND,  key, how, *batch frames]   send it to a live worker
                           [CANCEL, key, worker]             no longer: computed here, or
                                                             timed out at that worker
                           [QUARANTINE, key, worker]         that worker's key lied: no
                                                             more work for it
    broker -> dispatcher   [SENT,  key, worker]              the batch left for a worker
                           [LOST,  key, worker]              that worker is gone
                           [REPLY, key, worker, *frames]     the worker's answer, with
                                                             the key it came with

``key`` is ``msgpack([gen, batch, attempt])``; ``how`` is ``msgpack([exclude, prefer,
cells])``: the worker ids the batch must avoid (those that failed it or lied), the
worker the engine chose for it (0: any), and its number of cells (for the broker's
measure of each worker's speed); ``worker`` is ``msgpack([id, timeout, mark])``: who
took it, how long the dispatcher should wait for its answer (``SENT`` only), and the
worker's key (its connection's identity without keys; ``REPLY`` and ``QUARANTINE``), so
that a quarantine names the key that lied even if its worker has left meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

import msgpack
import zmq

DISPATCH_ENDPOINT = "inproc://lifenet-dispatch"


class Verb(Enum):
    """What an envelope says."""

    SEND = b"SEND"    # dispatcher -> broker: send this batch to a live worker
    CANCEL = b"CANCEL"  # dispatcher -> broker: forget it (the server computed it)
    QUARANTINE = b"QUARANTINE"  # dispatcher -> broker: that worker lied: no more work
    SENT = b"SENT"    # broker -> dispatcher: it left for this worker
    LOST = b"LOST"    # broker -> dispatcher: that worker is gone, with the batch
    REPLY = b"REPLY"  # broker -> dispatcher: the worker's answer


class Key(NamedTuple):
    """One attempt of one batch of one generation."""

    gen: int
    batch: int
    attempt: int


@dataclass
class Envelope:
    """A decoded envelope; ``frames`` are the wire message it carries (not copied)."""

    verb: Verb
    key: Key
    worker: int = 0                 # SENT, LOST, REPLY, CANCEL, QUARANTINE: a worker
    timeout: float = 0.0            # SENT: seconds to wait for the answer
    exclude: frozenset[int] = frozenset()  # SEND: workers to avoid
    prefer: int = 0                 # SEND: the worker chosen for it (0: any)
    cells: int = 0                  # SEND: how many cells it has
    mark: bytes = b""               # REPLY, QUARANTINE: the worker's key (or identity)
    frames: list[Any] = field(default_factory=list)


def _pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value)
    return packed


def encode(envelope: Envelope) -> list[Any]:
    """The frames of an envelope (after the peer's identity, which the caller adds)."""
    key = _pack(list(envelope.key))
    if envelope.verb is Verb.SEND:
        how = _pack([sorted(envelope.exclude), envelope.prefer, envelope.cells])
        return [Verb.SEND.value, key, how, *envelope.frames]
    return [envelope.verb.value, key,
            _pack([envelope.worker, envelope.timeout, envelope.mark]), *envelope.frames]


def decode(frames: Sequence[Any]) -> Envelope:
    """An envelope from its frames (``zmq.Frame`` or bytes); trusted: same process."""
    verb = Verb(_bytes(frames[0]))
    key = Key(*msgpack.unpackb(_buffer(frames[1])))
    if verb is Verb.SEND:
        exclude, prefer, cells = msgpack.unpackb(_buffer(frames[2]))
        return Envelope(verb, key, exclude=frozenset(exclude), prefer=prefer, cells=cells,
                        frames=list(frames[3:]))
    worker, timeout, mark = msgpack.unpackb(_buffer(frames[2]))
    return Envelope(verb, key, worker, timeout, mark=mark, frames=list(frames[3:]))


def send(sock: zmq.Socket[Any], envelope: Envelope, to: bytes | None = None,
         flags: int = 0) -> None:
    """Send ``envelope`` (to the ROUTER peer ``to``, from the broker's side)."""
    head: Iterable[Any] = [to] if to is not None else []
    sock.send_multipart([*head, *encode(envelope)], flags, copy=False)


def _buffer(frame: Any) -> Any:
    return frame.buffer if hasattr(frame, "buffer") else frame


def _bytes(frame: Any) -> bytes:
    return frame.bytes if hasattr(frame, "bytes") else bytes(frame)
