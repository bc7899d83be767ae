"""The lifenet wire format: every message, its fields and its limits, in one place.

A message is a ZeroMQ multipart message::

    frame 0      msgpack array [kind, body]: kind is a ``Kind`` value (text), body a map
    frame 1..n   binary payloads, only for the kinds that carry them (tiles, frames)

A ROUTER socket adds the peer's identity frame in front; the transport strips it before
``decode`` sees the frames. Decoding is strict: the header's size is capped, the body's
fields are checked by type (a ``bool`` is not an ``int``) and range, unknown kinds and
unknown fields are refused, and a payload must have exactly the size its header says.
Every failure is one ``ProtocolError`` carrying an ``ErrorCode``, which the receiver
sends back in an ``ERROR`` reply (or drops, when no reply is possible).

The protocol version is checked once, at the handshake (``READY`` from a worker,
``STATUS`` and later ``JOIN`` from a player); see ``docs/protocol.md`` for the exchanges.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

import msgpack
import numpy as np

from shared.errors import ProtocolError, RemoteError, VersionMismatch
from shared.grid import MAX_PLAYER

PROTOCOL_VERSION = 3  # 2: cell codes may be wide (two bytes, owners above 254);
#                       3: a GAME_LOGIC may carry the player's news (DECIDED, LANDED),
#                          its cells one payload of records (GAME_LOGIC_CELL); BATCH
#                          and RESULT may be ``rows`` of a packed world's words

MAX_HEADER_BYTES = 64 << 10
MAX_PAYLOAD_BYTES = 136 << 20  # a padded 8192 x 8192 tile of wide codes, with room to spare
MAX_FRAMES = 3
MAX_SIDE = 8192
MAX_NAME = 64
MAX_REASON = 512
MAX_INT = (1 << 53) - 1
MAX_TOKEN = 64
MAX_PLACE_CELLS = 4096     # cells in one placement
MAX_PLACE_RLE = 16 << 10   # characters of RLE in one placement
MAX_DECISIONS = 1 << 16    # overrides in one DECIDE
MAX_PATH = 4096
MAX_SHIELDS = 256          # live shields of fresh placements in a frame (and a world)
MAX_ROUND_RESULTS = 5      # the last rounds' results a frame and a status report carry
CHUNK = 64                 # side of a viewport chunk (the last row and column may be less)
MAX_VIEW_CHUNKS = 1024     # chunks named in one VIEW
MAX_NEWS = 16              # LANDED reports one GAME_LOGIC carries

# Topics: the first frame of every message the frame publisher sends (a SUB socket
# subscribes to a prefix: each topic here is a whole one, never the prefix of another).
WORLD_TOPIC = b"w"   # FRAME and DELTA of the whole world
INFO_TOPIC = b"i"    # INFO: a generation's scoreboard and counts, no cells
CHUNK_TOPIC = b"c"   # + the chunk's index (2 bytes, big-endian): CHUNK_FRAME, CHUNK_DELTA


class ErrorCode(IntEnum):
    """Numbered error codes carried by ``ERROR`` replies."""

    MALFORMED = 1      # not msgpack, not [kind, body], wrong number of frames
    TOO_LARGE = 2      # a frame is larger than the limit
    UNKNOWN_KIND = 3   # the kind is not one lifenet knows
    BAD_FIELD = 4      # a missing, unknown, mistyped or out-of-range field
    VERSION = 5        # the handshake's protocol version is not ours
    UNKNOWN_PEER = 6   # the sender has not done the handshake (say READY first)
    NOT_ALLOWED = 7    # a valid message this endpoint does not take
    BUSY = 8           # the server cannot take the request now
    FAILED = 9         # the request was taken but failed (a snapshot could not be written)


class Kind(StrEnum):
    """Every message kind. Each one's body is described by ``SCHEMAS`` below."""

    READY = "ready"          # worker -> server: handshake, then ready for batches
    WELCOME = "welcome"      # server -> worker: handshake accepted
    HEARTBEAT = "heartbeat"  # both ways on the worker endpoint: still alive
    BATCH = "batch"          # server -> worker: a tile (with halo) of generation `gen`
    RESULT = "result"        # worker -> server: the tile's next generation
    BYE = "bye"              # either way: leaving now, do not wait for heartbeats
    ERROR = "error"          # either way: the request was refused; code and reason
    STATUS = "status"        # anyone -> server (player endpoint): one status report
    STATUS_REPLY = "status_reply"  # server -> asker: the report
    FRAME = "frame"          # server -> subscribers (PUB): one generation, every cell
    DELTA = "delta"          # server -> subscribers (PUB): the cells that changed
    INFO = "info"            # server -> subscribers (PUB): a generation, without cells
    CHUNK_FRAME = "chunk_frame"  # server -> subscribers (PUB): every cell of one chunk
    CHUNK_DELTA = "chunk_delta"  # server -> subscribers (PUB): one chunk's changed cells
    VIEW = "view"            # anyone -> server (player endpoint): the chunks it watches
    VIEWING = "viewing"      # server -> viewer: taken, for how long
    # The player endpoint. Every request after JOIN carries the session token.
    JOIN = "join"            # player -> server: handshake, or rejoin with a token
    JOINED = "joined"        # server -> player: id, colour code, token, the world
    LEAVE = "leave"          # player -> server: leaving; cells stay
    PING = "ping"            # player -> server: heartbeat (answered with PONG)
    PONG = "pong"            # server -> player: heartbeat, with energy and generation
    PLACE = "place"          # player -> server: put a pattern at the next boundary
    PLACED = "placed"        # server -> player: queued, with its cost
    LANDED = "landed"        # server -> player: how much of a placement landed
    GAME_LOGIC = "game_logic"  # server -> player: the cells it owns in this generation
    DECIDE = "decide"        # player -> server: overrides for some of those cells
    DECIDED = "decided"      # server -> player: what was applied
    SNAPSHOT = "snapshot"    # operator -> server (player endpoint): write a snapshot now
    SNAPSHOT_REPLY = "snapshot_reply"  # server -> operator: written (path, generation, bytes)


# --- field checks -------------------------------------------------------------------

Check = Callable[[str, Any], None]


def _bad(name: str, why: str) -> ProtocolError:
    return ProtocolError(f"field {name!r} {why}", ErrorCode.BAD_FIELD)


def Int(lo: int = 0, hi: int = MAX_INT) -> Check:
    """An integer (never a bool) in ``lo..hi``."""
    def check(name: str, value: Any) -> None:
        if type(value) is not int:
            raise _bad(name, f"must be an integer, not {type(value).__name__}")
        if not lo <= value <= hi:
            raise _bad(name, f"is {value}, outside {lo}..{hi}")
    _INT_RANGES[check] = (lo, hi)
    return check


# The range of each check ``Int`` made: ``ListOf`` checks a list of them at once.
_INT_RANGES: dict[Check, tuple[int, int]] = {}
_JUST_INT = {int}  # the types in a list of integers (never a bool: its type is bool)


def Float(lo: float = 0.0, hi: float = 1e9) -> Check:
    """A finite number (an int is accepted) in ``lo..hi``."""
    def check(name: str, value: Any) -> None:
        if type(value) not in (int, float) or not math.isfinite(value):
            raise _bad(name, f"must be a finite number, not {type(value).__name__}")
        if not lo <= value <= hi:
            raise _bad(name, f"is {value}, outside {lo}..{hi}")
    return check


def Str(max_len: int = MAX_NAME, min_len: int = 0) -> Check:
    """A text of ``min_len..max_len`` characters."""
    def check(name: str, value: Any) -> None:
        if type(value) is not str:
            raise _bad(name, f"must be text, not {type(value).__name__}")
        if not min_len <= len(value) <= max_len:
            raise _bad(name, f"has {len(value)} characters, outside {min_len}..{max_len}")
    return check


def Tuple(*items: Check) -> Check:
    """A list of exactly ``len(items)`` values, each checked by its own check."""
    def check(name: str, value: Any) -> None:
        if type(value) is not list or len(value) != len(items):
            raise _bad(name, f"must be a list of {len(items)} values")
        for i, (item, v) in enumerate(zip(items, value, strict=True)):
            try:
                item(name, v)
            except ProtocolError:  # checked again to name the item (no text otherwise)
                item(f"{name}[{i}]", v)
    return check


def Bool() -> Check:
    def check(name: str, value: Any) -> None:
        if type(value) is not bool:
            raise _bad(name, f"must be true or false, not {type(value).__name__}")
    return check


def ListOf(item: Check, max_len: int) -> Check:
    """A list of at most ``max_len`` items, each passing ``item``. A list of integers
    in range passes at once (the builtins ``min`` and ``max``, not a call a number:
    a thousand players' ``decide`` lists every generation); one that does not is
    checked item by item, for the text that names the first bad one."""
    ints = _INT_RANGES.get(item)

    def check(name: str, value: Any) -> None:
        if type(value) is not list:
            raise _bad(name, f"must be a list, not {type(value).__name__}")
        if len(value) > max_len:
            raise _bad(name, f"has {len(value)} items, more than {max_len}")
        if ints is not None and (not value or (set(map(type, value)) == _JUST_INT
                                               and ints[0] <= min(value)
                                               and max(value) <= ints[1])):
            return
        for i, v in enumerate(value):
            try:
                item(name, v)
            except ProtocolError:  # checked again to name the item (no text otherwise)
                item(f"{name}[{i}]", v)
    return check


def MapOf(key: Check, value: Check, max_len: int) -> Check:
    """A map of at most ``max_len`` entries."""
    def check(name: str, v: Any) -> None:
        if type(v) is not dict:
            raise _bad(name, f"must be a map, not {type(v).__name__}")
        if len(v) > max_len:
            raise _bad(name, f"has {len(v)} entries, more than {max_len}")
        for k, item in v.items():
            key(f"{name} key", k)
            value(f"{name}[{k!r}]", item)
    return check


def Record(fields: dict[str, Check], optional: dict[str, Check] | None = None) -> Check:
    """A map with exactly these keys (text), and any of the ``optional`` ones, each
    value checked by its own check (a key added later is optional: a client of
    either version reads the other's)."""
    extra = optional or {}

    def check(name: str, value: Any) -> None:
        if type(value) is not dict:
            raise _bad(name, f"must be a map, not {type(value).__name__}")
        if not set(fields) <= set(value) <= set(fields) | set(extra):
            raise _bad(name, f"must have the keys {sorted(fields)}"
                       + (f" and may have {sorted(extra)}" if extra else ""))
        for key, item in fields.items():
            item(f"{name}.{key}", value[key])
        for key, item in extra.items():
            if key in value:
                item(f"{name}.{key}", value[key])
    return check


def Body(kind: str) -> Check:
    """A map that is a whole body of a message of ``kind`` (no payloads): one message
    carried inside another, checked as if it came alone."""
    def check(name: str, value: Any) -> None:
        if type(value) is not dict:
            raise _bad(name, f"must be a map, not {type(value).__name__}")
        try:
            validate(Message(Kind(kind), value))
        except ProtocolError as e:
            raise _bad(name, str(e)) from None
    return check


def Nullable(item: Check) -> Check:
    """Nothing (msgpack nil), or a value passing ``item``."""
    def check(name: str, value: Any) -> None:
        if value is not None:
            item(name, value)
    return check


@dataclass(frozen=True)
class Schema:
    """A kind's body fields, and its payload frames: how many and how large."""

    fields: dict[str, Check]
    optional: dict[str, Check] = field(default_factory=dict)
    payloads: tuple[int, int] = (0, 0)
    payload_sizes: Callable[[dict[str, Any]], Sequence[int]] | None = None


_GEN = Int()
_SIDE = Int(1, MAX_SIDE)
_POS = Int(0, MAX_SIDE - 1)


def code_bytes(body: dict[str, Any]) -> int:
    """Bytes a cell code takes in a message: two when its body says ``wide`` (codes
    above 255: little-endian ``uint16``), else one."""
    return 2 if body.get("wide", False) else 1


def tile_bytes(cells: int, packed: bool, wide: bool = False) -> int:
    """Bytes of a tile's codes on the wire: one a cell (two when wide), or one bit a
    cell when packed."""
    return (cells + 7) // 8 if packed else cells * (2 if wide else 1)


def band_bytes(rows: int, width: int) -> int:
    """Bytes of a ``rows`` payload: whole rows of a packed torus, each ``width`` cells in
    little-endian 64-bit words (``shared.bitlife``: the first cell is a word's top bit)."""
    return rows * ((width + 63) // 64) * 8


def _batch_sizes(body: dict[str, Any]) -> Sequence[int]:
    if body.get("rows", False):  # whole rows of a packed torus, and the rows around them
        return [band_bytes(body["h"] + 2, body["w"])]
    return [tile_bytes((body["h"] + 2) * (body["w"] + 2), body.get("packed", False),
                       body.get("wide", False))]


def _result_sizes(body: dict[str, Any]) -> Sequence[int]:
    cells = body["h"] * body["w"]
    if body.get("rows", False):
        return [band_bytes(body["h"], body["w"]), 4 * cells]
    # codes, then (optional) float32 per-cell I/O waits
    return [tile_bytes(cells, body.get("packed", False), body.get("wide", False)), 4 * cells]


def _frame_sizes(body: dict[str, Any]) -> Sequence[int]:
    return [body["h"] * body["w"] * code_bytes(body)]


def _delta_sizes(body: dict[str, Any]) -> Sequence[int]:
    # uint32 flat indices, new codes
    return [4 * body["count"], body["count"] * code_bytes(body)]


def _chunk_delta_sizes(body: dict[str, Any]) -> Sequence[int]:
    # uint16 indices in the chunk, new codes
    return [2 * body["count"], body["count"] * code_bytes(body)]


GAME_LOGIC_CELL = np.dtype([("y", "<u2"), ("x", "<u2"), ("n", "u1")])
"""A ``GAME_LOGIC`` payload's record, one a cell: its position and live neighbours
(one frame a request: a player's cells are a slice of the generation's records)."""


def _game_logic_sizes(body: dict[str, Any]) -> Sequence[int]:
    return [GAME_LOGIC_CELL.itemsize * body["count"]]


_HEX = re.compile(r"[0-9a-f]+")


def Token() -> Check:
    """A session token: 1..``MAX_TOKEN`` lowercase hex digits (what the server hands out),
    so that nothing else reaches the constant-time comparison."""
    def check(name: str, value: Any) -> None:
        Str(MAX_TOKEN, 1)(name, value)
        if _HEX.fullmatch(value) is None:
            raise _bad(name, "must be hex digits (a token the server gave)")
    return check


_TOKEN = Token()
_PLAYER = Int(1, MAX_PLAYER)
_BOARD = ListOf(Tuple(Int(0, MAX_PLAYER), Str(32), Int()), 256)  # [[player, name, cells]]
# The game's rounds (``--round``): the last rounds' results, newest first ...
_ROUND_RESULTS = ListOf(Record({
    "round": Int(1), "winner": Nullable(Str(MAX_NAME)), "player": Nullable(_PLAYER),
    "points": Int(), "ended_at": _GEN}), MAX_ROUND_RESULTS)
# ... and the round in progress: in frames its points by player id, [[player, points]] ...
_ROUND_FRAME = Record({
    "number": Int(1), "length": Int(1), "ends_at": _GEN,
    "points": ListOf(Tuple(_PLAYER, Int()), 256), "last": _ROUND_RESULTS})
# ... in a status report by player name.
_ROUND_STATUS = Record({
    "number": Int(1), "length": Int(1), "ends_at": _GEN,
    "points": MapOf(Str(MAX_NAME), Int(), 256), "last": _ROUND_RESULTS})
_AWAY = ListOf(_PLAYER, 256)  # players in their grace: disconnected, cells still theirs
# Shields of fresh placements: [[y, x, h, w, until, player]], a zone on the torus.
_SHIELDS = ListOf(Tuple(_POS, _POS, _SIDE, _SIDE, _GEN, _PLAYER), MAX_SHIELDS)


SCHEMAS: dict[Kind, Schema] = {
    Kind.READY: Schema({
        "version": Int(0, 1 << 16),
        "name": Str(MAX_NAME),
        "pid": Int(0, 1 << 32),
        "credit": Int(1, 256),
        "io_latency": Float(0.0, 60.0),
    }),
    Kind.WELCOME: Schema({
        "version": Int(0, 1 << 16),
        "worker": Int(),
        "heartbeat": Float(0.01, 60.0),
    }),
    Kind.HEARTBEAT: Schema({}),
    Kind.BATCH: Schema({
        "gen": _GEN, "batch": Int(), "attempt": Int(0, 1 << 16),
        "y": _POS, "x": _POS, "h": _SIDE, "w": _SIDE,
        "rule": Str(32, 1),
    }, optional={"packed": Bool(), "wide": Bool(), "rows": Bool()}, payloads=(1, 1),
        payload_sizes=_batch_sizes),
    Kind.RESULT: Schema({
        "gen": _GEN, "batch": Int(), "attempt": Int(0, 1 << 16),
        "h": _SIDE, "w": _SIDE,
    }, optional={"compute_ms": Float(0.0, 1e7), "packed": Bool(), "wide": Bool(),
                 "rows": Bool()},
        payloads=(1, 2), payload_sizes=_result_sizes),
    Kind.BYE: Schema({"reason": Str(MAX_REASON)}),
    Kind.ERROR: Schema({
        "code": Int(0, 1 << 16),
        "reason": Str(MAX_REASON),
    }, optional={"about": Str(32), "ref": ListOf(Int(), 3)}),
    Kind.STATUS: Schema({"version": Int(0, 1 << 16)}),
    Kind.STATUS_REPLY: Schema({
        "generation": _GEN,
        "players": Int(),
        "workers": Int(),
        "population": Int(),
        "size": ListOf(_SIDE, 2),
        "rule": Str(32),
        "scores": MapOf(Str(MAX_NAME), Int(), 1024),
        "ms_per_generation": Float(0.0, 1e9),
        "tick": Float(0.0, 1e6),
        "running": Bool(),
    }, optional={"worker_names": ListOf(Str(MAX_NAME), 4096), "computed_locally": Int(),
                 "players_owning": Int(0), "view_port": Int(0, 65535),
                 "player_bytes": Int(0),
                 "decisions": Record({"asked": Int(), "answered": Int()},
                                     optional={"held": Int()}),
                 "stages": Record({"generations": Int(),
                                   "ms": MapOf(Str(16), Float(0.0, 1e13), 16)}),
                 "checked": Int(), "caught": Int(), "quarantined": Int(),
                 "round": _ROUND_STATUS, "away": ListOf(Str(MAX_NAME), 256)}),
    Kind.FRAME: Schema({
        "gen": _GEN, "h": _SIDE, "w": _SIDE,
        "population": Int(),
        "ms": Float(0.0, 1e9),
        "workers": Int(),
        "rule": Str(32),
    }, optional={"board": _BOARD, "round": _ROUND_FRAME, "away": _AWAY, "shields": _SHIELDS,
                 "ranked": Int(0), "players": Int(0), "players_owning": Int(0),
                 "wide": Bool()},
        payloads=(1, 1), payload_sizes=_frame_sizes),
    Kind.DELTA: Schema({
        "gen": _GEN, "h": _SIDE, "w": _SIDE, "count": Int(0, MAX_SIDE * MAX_SIDE),
        "population": Int(), "ms": Float(0.0, 1e9), "workers": Int(), "rule": Str(32),
    }, optional={"board": _BOARD, "round": _ROUND_FRAME, "away": _AWAY, "shields": _SHIELDS,
                 "ranked": Int(0), "players": Int(0), "players_owning": Int(0),
                 "wide": Bool()},
        payloads=(2, 2), payload_sizes=_delta_sizes),
    Kind.INFO: Schema({
        "gen": _GEN, "h": _SIDE, "w": _SIDE, "chunk": Int(1, MAX_SIDE),
        "population": Int(), "ms": Float(0.0, 1e9), "workers": Int(), "rule": Str(32),
    }, optional={"board": _BOARD, "round": _ROUND_FRAME, "away": _AWAY, "shields": _SHIELDS,
                 "ranked": Int(0), "players": Int(0), "players_owning": Int(0)}),
    Kind.CHUNK_FRAME: Schema({
        "gen": _GEN, "cy": _POS, "cx": _POS, "h": Int(1, CHUNK), "w": Int(1, CHUNK),
    }, optional={"wide": Bool()}, payloads=(1, 1), payload_sizes=_frame_sizes),
    Kind.CHUNK_DELTA: Schema({
        "gen": _GEN, "cy": _POS, "cx": _POS, "h": Int(1, CHUNK), "w": Int(1, CHUNK),
        "count": Int(0, CHUNK * CHUNK),
    }, optional={"wide": Bool()}, payloads=(2, 2), payload_sizes=_chunk_delta_sizes),
    Kind.VIEW: Schema({
        "version": Int(0, 1 << 16),
        "chunks": ListOf(Tuple(_POS, _POS), MAX_VIEW_CHUNKS),
    }, optional={"fresh": ListOf(Tuple(_POS, _POS), MAX_VIEW_CHUNKS)}),
    Kind.VIEWING: Schema({"chunks": Int(0), "expires": Float(0.0, 3600.0),
                          "generation": _GEN}),
    Kind.JOIN: Schema({"version": Int(0, 1 << 16), "name": Str(32, 1)},
                      optional={"token": _TOKEN}),
    Kind.JOINED: Schema({
        "player": _PLAYER, "code": Int(2, MAX_PLAYER + 1), "token": _TOKEN, "name": Str(32),
        "size": ListOf(_SIDE, 2), "rule": Str(32), "frame_port": Int(0, 65535),
        "energy": Int(), "energy_cap": Int(), "energy_regen": Int(),
        "heartbeat": Float(0.01, 60.0), "generation": _GEN, "rejoined": Bool(),
    }, optional={"round": Int(), "protect": Int(), "goal": Str(MAX_REASON),
                 "grace": Float(0.0, 86400.0), "view_port": Int(0, 65535)}),
    Kind.LEAVE: Schema({"player": _PLAYER, "token": _TOKEN}),
    Kind.PING: Schema({"player": _PLAYER, "token": _TOKEN}),
    Kind.PONG: Schema({"generation": _GEN, "energy": Int()},
                      optional={"rank": Int(1), "ranked": Int(1), "cells": Int(0),
                                "points": Int(0)}),
    Kind.PLACE: Schema({
        "player": _PLAYER, "token": _TOKEN, "y": _POS, "x": _POS,
        "rotate": Int(0, 3), "flip": Bool(),
    }, optional={"rle": Str(MAX_PLACE_RLE, 1),
                 "cells": ListOf(Tuple(Int(0, 255), Int(0, 255)), MAX_PLACE_CELLS)}),
    Kind.PLACED: Schema({"cells": Int(), "cost": Int(), "energy": Int(), "generation": _GEN}),
    Kind.LANDED: Schema({"generation": _GEN, "cells": Int(), "placed": Int(),
                         "occupied": Int(), "energy": Int()}),
    # A player's news of the generation before (what its answers got, how its
    # placements landed) rides on its next request: one message a player a generation
    # instead of three (``unfold`` gives them back as the messages they stand for).
    Kind.GAME_LOGIC: Schema({
        "gen": _GEN, "count": Int(0, MAX_SIDE * MAX_SIDE), "deadline_ms": Float(0.0, 1e7),
    }, optional={"decided": Body("decided"), "landed": ListOf(Body("landed"), MAX_NEWS)},
        payloads=(1, 1), payload_sizes=_game_logic_sizes),
    Kind.DECIDE: Schema({
        "player": _PLAYER, "token": _TOKEN, "gen": _GEN,
        "keep": ListOf(Int(0, MAX_SIDE * MAX_SIDE), MAX_DECISIONS),
        "let_die": ListOf(Int(0, MAX_SIDE * MAX_SIDE), MAX_DECISIONS),
    }),
    Kind.DECIDED: Schema({
        "gen": _GEN, "kept": Int(), "died": Int(), "refused": Int(), "energy": Int(),
    }, optional={"spent": Int(), "regen": Int()}),
    Kind.SNAPSHOT: Schema({"version": Int(0, 1 << 16)}, optional={"send": Bool()}),
    Kind.SNAPSHOT_REPLY: Schema({
        "path": Str(MAX_PATH, 1),
        "generation": _GEN,
        "bytes": Int(),
    }, payloads=(0, 1), payload_sizes=lambda body: [body["bytes"]]),
}


# --- messages -------------------------------------------------------------------------

Payload = bytes | memoryview


@dataclass
class Message:
    """A decoded message: its kind, its checked body and its payload frames (bytes)."""

    kind: Kind
    body: dict[str, Any] = field(default_factory=dict)
    payloads: list[Payload] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        return self.body[name]


def message(kind: Kind, payloads: Sequence[Payload] = (), **body: Any) -> Message:
    """Build a message and check it against its schema, as the receiver will."""
    msg = Message(kind, dict(body), list(payloads))
    validate(msg)
    return msg


def built(kind: Kind, payloads: Sequence[Payload] = (), **body: Any) -> Message:
    """Build a message a thousand peers get (or send) a generation, from this side's
    own typed values, without checking it: the receiver checks every message it
    decodes, and the tests check each message built so (``message`` checks)."""
    return Message(kind, body, list(payloads))


def error(code: ErrorCode, reason: str, about: str | None = None,
          ref: Sequence[int] | None = None) -> Message:
    """An ``ERROR`` reply; the reason is cut to the limit rather than refused.

    ``ref`` names the request it answers where there is one (a batch's gen, batch and
    attempt), so the error reaches whoever waits for that request.
    """
    body: dict[str, Any] = {"code": int(code), "reason": reason[:MAX_REASON]}
    if about:
        body["about"] = about[:32]
    if ref is not None:
        body["ref"] = list(ref)
    return Message(Kind.ERROR, body)


def encode(msg: Message) -> list[Payload]:
    """The frames of ``msg``: the msgpack header, then its payloads (not copied)."""
    header = msgpack.packb([msg.kind.value, msg.body], use_bin_type=True)
    return [header, *msg.payloads]


_KINDS = {kind.value: kind for kind in Kind}


def head(kind: Kind) -> bytes:
    """The bytes every encoded message of ``kind`` starts with (its header is the
    msgpack array ``[kind, body]``): what a loop may look at to tell a thousand
    DECIDEs from a JOIN before it decodes anything."""
    packed: bytes = msgpack.packb(kind.value)
    return b"\x92" + packed


def decode(frames: Sequence[Any], max_payload: int = MAX_PAYLOAD_BYTES) -> Message:
    """Check and decode frames into a ``Message``, or raise ``ProtocolError``.

    ``frames`` may hold ``bytes`` or ``zmq.Frame`` objects (anything with ``.bytes`` or a
    buffer). This is the one place that catches broadly: any failure of msgpack becomes a
    ``ProtocolError``.
    """
    if not frames:
        raise ProtocolError("empty message", ErrorCode.MALFORMED)
    if len(frames) > MAX_FRAMES:
        raise ProtocolError(f"{len(frames)} frames, at most {MAX_FRAMES}", ErrorCode.MALFORMED)
    raw = [_as_buffer(f) for f in frames]
    if len(raw[0]) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(raw[0])} bytes, at most {MAX_HEADER_BYTES}",
                            ErrorCode.TOO_LARGE)
    for payload in raw[1:]:
        if len(payload) > max_payload:
            raise ProtocolError(f"payload of {len(payload)} bytes, at most {max_payload}",
                                ErrorCode.TOO_LARGE)
    try:
        header = msgpack.unpackb(
            raw[0], raw=False, strict_map_key=True, use_list=True,
            max_str_len=MAX_HEADER_BYTES, max_bin_len=MAX_HEADER_BYTES,
            max_array_len=4096, max_map_len=4096, max_ext_len=0)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as e:
        raise ProtocolError(f"header is not valid msgpack: {e}", ErrorCode.MALFORMED) from e
    if type(header) is not list or len(header) != 2:
        raise ProtocolError("header must be a msgpack array [kind, body]", ErrorCode.MALFORMED)
    kind_text, body = header
    if type(kind_text) is not str:
        raise ProtocolError("message kind must be text", ErrorCode.MALFORMED)
    kind = _KINDS.get(kind_text)  # a dict: ``Kind(text)`` costs a microsecond more
    if kind is None:
        raise ProtocolError(f"unknown message kind {kind_text[:32]!r}",
                            ErrorCode.UNKNOWN_KIND)
    if type(body) is not dict:
        raise ProtocolError(f"body of {kind} must be a map", ErrorCode.MALFORMED)
    msg = Message(kind, body, list(raw[1:]))
    validate(msg)
    return msg


def validate(msg: Message) -> None:
    """Check a message's body and payloads against its kind's schema."""
    schema = SCHEMAS[msg.kind]
    body, fields = msg.body, schema.fields
    for name, check in fields.items():
        if name not in body:
            raise ProtocolError(f"{msg.kind} is missing field {name!r}", ErrorCode.BAD_FIELD)
        check(name, body[name])
    if len(body) != len(fields):  # more than the required fields (each is there once)
        for name, value in body.items():
            if name in fields:
                continue
            check = schema.optional.get(name)  # type: ignore[assignment]
            if check is None:
                raise ProtocolError(f"{msg.kind} has an unknown field {str(name)[:32]!r}",
                                    ErrorCode.BAD_FIELD)
            check(name, value)
    lo, hi = schema.payloads
    if not lo <= len(msg.payloads) <= hi:
        raise ProtocolError(f"{msg.kind} carries {len(msg.payloads)} payload frames, "
                            f"expected {lo}..{hi}", ErrorCode.MALFORMED)
    if schema.payload_sizes is not None:
        for i, (payload, size) in enumerate(
                zip(msg.payloads, schema.payload_sizes(msg.body), strict=False)):
            if len(payload) != size:
                raise ProtocolError(f"{msg.kind} payload {i} has {len(payload)} bytes, "
                                    f"expected {size}", ErrorCode.BAD_FIELD)


NEWS = ("decided", "landed")  # the fields of a GAME_LOGIC that carry news


def unfold(msg: Message) -> list[Message]:
    """The messages ``msg`` stands for, in the order they happened: a ``GAME_LOGIC``
    carrying news is its ``DECIDED``, its ``LANDED`` reports, then the request itself;
    any other message is itself. The news was checked with ``msg``."""
    if msg.kind is not Kind.GAME_LOGIC or not any(name in msg.body for name in NEWS):
        return [msg]
    body = dict(msg.body)
    decided, landed = body.pop("decided", None), body.pop("landed", ())
    news = [Message(Kind.DECIDED, decided)] if decided is not None else []
    news += [Message(Kind.LANDED, report) for report in landed]
    return [*news, Message(msg.kind, body, msg.payloads)]


def chunk_topic(index: int) -> bytes:
    """The topic of chunk ``index`` (``cy * chunks across + cx``)."""
    return CHUNK_TOPIC + index.to_bytes(2, "big")


def chunks_of(height: int, width: int) -> tuple[int, int]:
    """How many chunks down and across a world of ``height`` x ``width`` has."""
    return -(-height // CHUNK), -(-width // CHUNK)


def topic_of(frames: Sequence[Any]) -> tuple[bytes, Sequence[Any]]:
    """Split a published message into its topic and the frames ``decode`` takes."""
    if len(frames) < 2:
        raise ProtocolError("a published message has a topic and a message",
                            ErrorCode.MALFORMED)
    return bytes(_as_buffer(frames[0])), frames[1:]


def check_version(msg: Message) -> None:
    """Refuse a handshake from another protocol version."""
    if msg.body.get("version") != PROTOCOL_VERSION:
        raise VersionMismatch(
            f"peer speaks protocol version {msg.body.get('version')}, "
            f"this side speaks {PROTOCOL_VERSION}", ErrorCode.VERSION)


def raise_if_error(msg: Message) -> Message:
    """Turn an ``ERROR`` reply into a ``RemoteError``; return any other message."""
    if msg.kind is Kind.ERROR:
        raise RemoteError(msg.body["code"], msg.body["reason"])
    return msg


def _as_buffer(frame: Any) -> bytes | memoryview:
    if isinstance(frame, bytes | memoryview):
        return frame
    buffer = getattr(frame, "buffer", None)  # zmq.Frame: zero-copy view
    if buffer is not None:
        return memoryview(buffer)
    raise ProtocolError(f"a frame must be bytes, not {type(frame).__name__}",
                        ErrorCode.MALFORMED)
