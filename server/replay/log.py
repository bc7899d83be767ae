"""The replay log's file: hash-chained records, appended crash-safely.

A log is a magic line, then records, each framed as::

    u32 n | u32 crc32(n) | n bytes: the body (a msgpack map) | 32 bytes: sha256(body)

The frame's CRC tells a damaged length from a torn one: a record cut short by a crash
(its frame runs past the end of the file) is a *torn tail*, dropped when the log is
opened again for recording; any other damage is refused. Every body carries ``prev``,
the sha256 of the record before it (32 zero bytes for the first): change, drop or
reorder any record and a link breaks.

Bodies (short keys keep a generation's record small)::

    start  {"t": "start", "v": 1, "g": generation, "rule": "B3/S23", "h": H, "w": W,
            "prev": ..., "world": world hash, and one of
            "cells": zlib of the codes, "wide": bool     (the world itself)
            "snapshot": sha256 of the snapshot file     (restored from it)
            "continues": true                           (the world the chain reached)}
    gen    {"t": "gen", "g": generation, "prev": ..., "in": [inputs], "world": world hash}
    snap   {"t": "snap", "g": generation, "prev": ..., "snapshot": sha256 of the file}
           (a snapshot of generation g was written: a replay may start from it; it comes
           after g's own record, when the file is written)

A world's hash is the sha256 of ``HxW``, the width of its codes (1 or 2 bytes) and the
codes themselves, narrowed first (``shared.grid.narrowest``) and little-endian, so the
same world hashes the same whether it was held narrow or wide.

``Recorder`` writes from a thread of its own, so that the generation loop pays for
handing over a generation, not for its hash or the disk (``QUEUED`` generations at most
wait: a slow disk slows the loop rather than filling the memory). One ``write`` per
record, an ``fsync`` every ``SYNC_EVERY`` records and on close: a killed process loses
at most the generations still queued, a power cut the records since the last sync, as
a missing or torn tail. ``read_log`` reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import struct
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from server.replay.inputs import Input, encode
from shared.errors import ReplayError
from shared.grid import Codes, Grid, check_size, codes_from, is_wide, narrowest
from shared.rules import Rule

log = logging.getLogger("lifenet.replay")

MAGIC = b"LIFENET-REPLAY 1\n"
FRAME = struct.Struct("<II")
DIGEST = 32
GENESIS = bytes(DIGEST)  # the "previous record" of the first
MAX_BODY = 1 << 31       # a body longer than this is a damaged length
SYNC_EVERY = 64          # records between fsyncs
QUEUED = 64              # generations handed over and not written yet, at most


def world_hash(codes: Codes) -> bytes:
    """The sha256 of a world's cells and owners, the same whatever the codes' width."""
    narrow = narrowest(codes)
    data = np.ascontiguousarray(narrow, dtype="<u2" if is_wide(narrow) else np.uint8)
    h, w = data.shape
    digest = hashlib.sha256(b"%dx%d/%d\n" % (h, w, data.itemsize))
    digest.update(data.data)
    return digest.digest()


def file_hash(path: Path) -> bytes:
    """The sha256 of a file's bytes (a snapshot's, named by a start record)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.digest()


def world_cells(codes: Codes) -> dict[str, Any]:
    """A start record's fields holding the world itself."""
    narrow = narrowest(codes)
    wide = is_wide(narrow)
    data = np.ascontiguousarray(narrow, dtype="<u2" if wide else np.uint8)
    return {"cells": zlib.compress(data.tobytes(), 6), "wide": wide}


def cells_world(body: dict[str, Any]) -> Grid:
    """The world a start record holds (``ValueError`` if its cells do not fit its size)."""
    height, width, wide = body["h"], body["w"], bool(body.get("wide"))
    if type(height) is not int or type(width) is not int:
        raise ValueError("the world's size is not two integers")
    check_size(height, width)  # before anything is allocated for it
    size = height * width * (2 if wide else 1)
    try:  # at most the world's bytes and one more: a zlib bomb stops there
        data = zlib.decompressobj().decompress(body["cells"], size + 1)
    except (zlib.error, TypeError) as e:
        raise ValueError(f"the cells are not zlib data: {e}") from e
    if len(data) != size:
        raise ValueError("the cells do not fill the world")
    return Grid(height, width, codes_from(data, wide, (height, width)).copy())


@dataclass
class Record:
    """One whole record: where it is, its body (``None``: not msgpack), its stored
    digest and whether the body matches it."""

    index: int
    offset: int
    body: dict[str, Any] | None
    digest: bytes
    intact: bool

    def where(self) -> str:
        """"record N (generation G)", as far as the body says."""
        g = self.body.get("g") if self.body is not None else None
        return f"record {self.index}" + (f" (generation {g})" if type(g) is int else "")


@dataclass
class LogFile:
    """A log as read: its whole records, where they end, the bytes of a torn tail
    after them, and damage that stopped the reading (a length that is not one)."""

    records: list[Record] = field(default_factory=list)
    end: int = len(MAGIC)
    torn: int = 0
    damage: str = ""


def read_log(path: Path) -> LogFile:
    """Every whole record of the log at ``path``; ``ReplayError`` if it is not a log."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ReplayError(f"cannot read {path}: {e.strerror}") from e
    if not data.startswith(MAGIC):
        raise ReplayError(f"{path} is not a lifenet replay log (no {MAGIC!r} line)")
    result = LogFile()
    pos = len(MAGIC)
    while pos < len(data):
        if len(data) - pos < FRAME.size:
            result.torn = len(data) - pos
            break
        n, crc = FRAME.unpack_from(data, pos)
        if crc != zlib.crc32(data[pos:pos + 4]) or n >= MAX_BODY:
            result.damage = (f"record {len(result.records)} at byte {pos}: its length is "
                             "damaged")
            break
        stop = pos + FRAME.size + n + DIGEST
        if stop > len(data):
            result.torn = len(data) - pos
            break
        body_bytes = data[pos + FRAME.size:pos + FRAME.size + n]
        digest = data[stop - DIGEST:stop]
        try:
            body = msgpack.unpackb(body_bytes, raw=False)
        except (ValueError, TypeError, msgpack.ExtraData):
            body = None
        if not isinstance(body, dict):
            body = None
        result.records.append(Record(len(result.records), pos, body, digest,
                                     hashlib.sha256(body_bytes).digest() == digest))
        pos = result.end = stop
    return result


class Recorder:
    """Appends a server's generations to a replay log (``lifenet server --record``).

    Opening an existing log drops its torn tail, refuses one that is damaged, and
    continues its chain with a start record: ``continues`` when the server's world is
    the one the log reached (same generation, same hash), else the world itself (or the
    snapshot the server restored from). ``append`` runs in the generation loop and
    hands the generation to the writer thread; ``error`` says when writing failed (the
    server stops on it: a log with a gap proves nothing).
    """

    def __init__(self, path: Path, rule: Rule, grid: Grid, generation: int, *,
                 snapshot: Path | None = None) -> None:
        self.path = path
        self.prev = GENESIS
        self.unsynced = 0
        self.error: OSError | None = None  # a write failed: the log ends there
        self._queue: queue.Queue[dict[str, Any] | tuple[int, Sequence[Input], Codes]
                                 | None] = queue.Queue(maxsize=QUEUED)
        self._writer = threading.Thread(target=self._write_loop, name="replay-writer",
                                        daemon=True)
        last: dict[str, Any] | None = None
        if path.exists() and path.stat().st_size > 0:
            existing = read_log(path)
            if existing.damage:
                raise ReplayError(f"cannot continue {path}: {existing.damage}")
            bad = next((r for r in existing.records if not r.intact or r.body is None), None)
            if bad is not None:
                raise ReplayError(f"cannot continue {path}: {bad.where()} is damaged")
            if existing.torn:
                log.warning("%s: dropping a torn last record (%d bytes): the server "
                            "stopped while writing it", path, existing.torn)
                os.truncate(path, existing.end)
            if existing.records:
                self.prev = existing.records[-1].digest
                last = existing.records[-1].body
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if self.prev == GENESIS:
                os.ftruncate(self.fd, 0)
                self._write_bytes(MAGIC)
            self._start(rule, grid, generation, snapshot, last)
        except BaseException:
            os.close(self.fd)
            raise
        self._writer.start()

    def _start(self, rule: Rule, grid: Grid, generation: int, snapshot: Path | None,
               last: dict[str, Any] | None) -> None:
        here = world_hash(grid.codes)
        body: dict[str, Any] = {"t": "start", "v": 1, "g": generation, "rule": str(rule),
                                "h": grid.height, "w": grid.width, "world": here}
        if last is not None and last.get("g") == generation and last.get("world") == here:
            body["continues"] = True
        elif snapshot is not None and last is None:
            body["snapshot"] = file_hash(snapshot)
        else:
            body.update(world_cells(grid.codes))
        self.write(body)
        log.info("recording generations to %s from generation %d", self.path, generation)

    def append(self, generation: int, inputs: Sequence[Input], codes: Codes) -> None:
        """Record that ``generation`` was made, by the rule and ``inputs``, as ``codes``
        (which must not change afterwards: a generation's world never does)."""
        self._queue.put((generation, inputs, codes))

    def snapshot_written(self, path: Path, generation: int) -> None:
        """Name the snapshot of ``generation`` just written at ``path`` (the snapshot
        thread): ``lifenet replay --from-snapshot`` may start from it."""
        try:
            digest = file_hash(path)
        except OSError as e:
            log.warning("the replay log does not name %s: %s", path, e.strerror)
            return
        self._queue.put({"t": "snap", "g": generation, "snapshot": digest})

    def _write_loop(self) -> None:
        """The writer thread: each generation handed over, hashed and appended."""
        while (item := self._queue.get()) is not None:
            if self.error is not None:
                continue  # the log ends at the failure; the server is stopping
            if isinstance(item, dict):
                body, generation = item, int(item["g"])
            else:
                generation, inputs, codes = item
                body = {"t": "gen", "g": generation, "in": [encode(op) for op in inputs],
                        "world": world_hash(codes)}
            try:
                self.write(body)
            except OSError as e:
                self.error = e
                log.error("cannot append generation %d to %s: %s", generation, self.path,
                          e.strerror, extra={"generation": generation})

    def write(self, body: dict[str, Any]) -> None:
        """Chain ``body`` to the last record and append it in one write."""
        body["prev"] = self.prev
        data = msgpack.packb(body, use_bin_type=True)
        digest = hashlib.sha256(data).digest()
        n = struct.pack("<I", len(data))
        self._write_bytes(n + struct.pack("<I", zlib.crc32(n)) + data + digest)
        self.prev = digest
        self.unsynced += 1
        if self.unsynced >= SYNC_EVERY:
            os.fsync(self.fd)
            self.unsynced = 0

    def _write_bytes(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def close(self) -> None:
        """Write what was handed over, sync and close (idempotent)."""
        if self.fd >= 0:
            if self._writer.is_alive():
                self._queue.put(None)
                self._writer.join()
            with contextlib.suppress(OSError):
                os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
