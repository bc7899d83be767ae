"""The snapshot file format: the state inside, and the public header around it.

File layout (``.lns``), integers big-endian::

    offset  size  field
    0       8     magic b"\\x89LNS\\r\\n\\x1a\\n"
    8       2     format version (2; files of version 1 are still read)
    10      1     KDF: 1 = PBKDF2-HMAC-SHA256
    11      1     cipher: 1 = AES-256-CBC, ``openssl enc -pbkdf2 -md sha256``
    12      4     KDF iterations (both keys)
    16      8     encryption salt (``openssl enc -S``)
    24      16    MAC salt
    40      8     key check
    48      8     ciphertext length n
    56      2     meta length m (at most 1 KiB)
    58      m     meta, msgpack map: generation, height, width, rule, created
    58+m    n     ciphertext
    +n      32    SHA-256 of the ciphertext (``openssl dgst``): a keyless checksum
    +32     32    tag: HMAC-SHA256 over every byte before it

The state inside (the plaintext) is one msgpack map: ``generation``, ``height``,
``width``, ``rule`` (text), ``players`` (a list of maps), ``rng`` (a map: the soup's
``seed`` and ``fill``), ``codes`` (bytes, the cell codes row by row) and, from format 2,
``wide`` (bool): whether ``codes`` holds two bytes a cell, little-endian ``uint16``
(some code is above 255: a player id above 254), or one byte a cell as in format 1. A
world whose codes all fit a byte is always written narrow, however its array is held,
so a world of fewer than 255 players costs one byte a cell, as before. The version is
the header's, and the header is authenticated with the rest: a version-1 file's state
has no ``wide`` and ``uint8`` codes, and is read as it always was.

Everything here is pure: no key, no ``openssl``, no file. ``parse_header`` checks the
limits of a header (magic, version, a KDF iteration count below ``MIN_ITERATIONS`` is
refused, lengths in range) and the file's exact size before anything else reads it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import msgpack

from shared.errors import RuleError, SnapshotError
from shared.grid import (
    MAX_CELLS,
    MAX_CODE,
    Codes,
    Grid,
    check_size,
    codes_from,
    codes_payload,
    narrowest,
)
from shared.rules import Rule, parse_rule

MAGIC = b"\x89LNS\r\n\x1a\n"
FORMAT_VERSION = 2
READS_VERSIONS = (1, 2)  # 1: one byte a cell, no "wide" in the state
KDF_PBKDF2_SHA256 = 1
CIPHER_AES_256_CBC = 1
DEFAULT_ITERATIONS = 600_000
MIN_ITERATIONS = 200_000
MAX_ITERATIONS = 20_000_000  # a crafted file must not make verification run for hours
SUFFIX = ".lns"

HEADER_STRUCT = struct.Struct(">8sHBBI8s16s8sQH")
DIGEST_BYTES = 32
MAX_META = 1024
MAX_CODES_BYTES = 2 * MAX_CELLS  # a wide world of MAX_CELLS cells
MAX_PLAINTEXT = MAX_CODES_BYTES + (1 << 20)  # the codes, plus players and the rest
MAX_CIPHERTEXT = (MAX_PLAINTEXT // 16 + 1) * 16
MAX_FILE_BYTES = MAX_CIPHERTEXT + HEADER_STRUCT.size + MAX_META + 2 * DIGEST_BYTES


@dataclass
class WorldState:
    """Everything a server needs to go on from a generation: copied, never shared."""

    codes: Codes
    generation: int
    rule: Rule
    players: list[dict[str, Any]] = field(default_factory=list)
    rng: dict[str, Any] = field(default_factory=dict)  # the soup: {"seed", "fill"}

    @property
    def height(self) -> int:
        return int(self.codes.shape[0])

    @property
    def width(self) -> int:
        return int(self.codes.shape[1])

    def grid(self) -> Grid:
        return Grid(self.height, self.width, self.codes)


def pack_state(state: WorldState) -> bytes:
    """The state as the current format's msgpack map (``wide`` and the codes as
    ``codes_payload`` puts them on the wire: little-endian when wide). Codes held wide
    that all fit a byte are written narrow."""
    wide, codes = codes_payload(narrowest(state.codes))
    packed: bytes = msgpack.packb({
        "generation": state.generation, "height": state.height, "width": state.width,
        "rule": str(state.rule), "wide": wide, "codes": codes,
        "players": state.players, "rng": state.rng,
    }, use_bin_type=True)
    return packed


_FIELDS: dict[str, type] = {"generation": int, "height": int, "width": int, "rule": str,
                            "codes": bytes, "players": list, "rng": dict}
_FIELDS_OF = {1: _FIELDS, 2: {**_FIELDS, "wide": bool}}  # by format version


def unpack_state(data: bytes | bytearray, version: int = FORMAT_VERSION) -> WorldState:
    """Decode and check a decrypted state written in format ``version`` (the file
    header's); ``SnapshotError`` for anything unexpected. The codes come back as narrow
    as they fit (``uint8``, or ``uint16`` when some code is above 255)."""
    fields = _FIELDS_OF.get(version)
    if fields is None:
        raise SnapshotError(f"the state is of an unknown format version {version}")
    try:
        body = msgpack.unpackb(bytes(data), raw=False, strict_map_key=True,
                               max_bin_len=MAX_CODES_BYTES, max_str_len=1 << 16,
                               max_array_len=1 << 16, max_map_len=1 << 16, max_ext_len=0)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as e:
        raise SnapshotError(f"the decrypted state is not valid msgpack: {e}") from e
    if type(body) is not dict or set(body) != set(fields):
        raise SnapshotError("the decrypted state does not have the fields of a lifenet "
                            f"world (format {version})")
    for name, kind in fields.items():
        if type(body[name]) is not kind:
            raise SnapshotError(f"the state's {name!r} is not {kind.__name__}")
    height, width, generation = body["height"], body["width"], body["generation"]
    try:
        check_size(height, width)
        rule = parse_rule(body["rule"])
    except RuleError as e:
        raise SnapshotError(f"the state's rule: {e}") from e
    except ValueError as e:
        raise SnapshotError(f"the state's size: {e}") from e
    if generation < 0:
        raise SnapshotError("the state's generation is out of range")
    wide = bool(body.get("wide", False))
    cell_bytes = 2 if wide else 1
    if len(body["codes"]) != height * width * cell_bytes:
        raise SnapshotError(f"the state's codes are {len(body['codes'])} bytes, not "
                            f"{height * width * cell_bytes} ({height}x{width} cells, "
                            f"{'two bytes' if wide else 'one byte'} a cell)")
    codes = codes_from(body["codes"], wide, (height, width)).copy()
    # Two bytes cannot hold more than the last player's code today; the check stays for
    # whatever width comes next.
    if int(codes.max(initial=0)) > MAX_CODE:
        raise SnapshotError("the state has a cell code beyond the last player")
    return WorldState(narrowest(codes), generation, rule, body["players"], body["rng"])


@dataclass(frozen=True)
class Header:
    """A snapshot's public header: readable without the key, trusted only once verified."""

    version: int
    kdf: int
    cipher: int
    iterations: int
    enc_salt: bytes
    mac_salt: bytes
    key_check: bytes
    ciphertext_len: int
    meta: dict[str, Any]
    size: int  # bytes of the header itself

    @property
    def generation(self) -> int:
        return int(self.meta["generation"])

    @property
    def file_size(self) -> int:
        return self.size + self.ciphertext_len + 2 * DIGEST_BYTES

    def pack(self) -> bytes:
        meta: bytes = msgpack.packb(self.meta, use_bin_type=True)
        return HEADER_STRUCT.pack(MAGIC, self.version, self.kdf, self.cipher, self.iterations,
                           self.enc_salt, self.mac_salt, self.key_check,
                           self.ciphertext_len, len(meta)) + meta

    def describe(self) -> dict[str, Any]:
        return {"format": self.version, "kdf": "pbkdf2-hmac-sha256",
                "cipher": "aes-256-cbc (openssl enc)", "iterations": self.iterations,
                **self.meta, "ciphertext_bytes": self.ciphertext_len,
                "file_bytes": self.file_size}


def parse_header(data: bytes | memoryview, name: str = "snapshot") -> Header:
    """Check the header's limits and the file's exact size; no key needed."""
    if len(data) == 0:
        raise SnapshotError(f"{name} is empty")
    if len(data) < len(MAGIC) or bytes(data[:len(MAGIC)]) != MAGIC:
        raise SnapshotError(f"{name} is not a lifenet snapshot (wrong magic)")
    if len(data) < HEADER_STRUCT.size:
        raise SnapshotError(f"{name} is truncated: {len(data)} bytes, shorter than a header")
    (_, version, kdf, cipher, iterations, enc_salt, mac_salt, key_check, ct_len,
     meta_len) = HEADER_STRUCT.unpack_from(data)
    if version > FORMAT_VERSION:
        raise SnapshotError(f"{name} has format version {version}, newer than this lifenet "
                            f"reads ({FORMAT_VERSION}): upgrade lifenet")
    if version not in READS_VERSIONS:
        raise SnapshotError(f"{name} has an unknown format version {version} (this lifenet "
                            f"reads {', '.join(map(str, READS_VERSIONS))})")
    if kdf != KDF_PBKDF2_SHA256 or cipher != CIPHER_AES_256_CBC:
        raise SnapshotError(f"{name} names an unknown KDF ({kdf}) or cipher ({cipher})")
    if iterations < MIN_ITERATIONS:
        raise SnapshotError(f"{name} asks for {iterations} KDF iterations, fewer than the "
                            f"minimum {MIN_ITERATIONS}: refused (a lowered count weakens "
                            "the key)")
    if iterations > MAX_ITERATIONS:
        raise SnapshotError(f"{name} asks for {iterations} KDF iterations, more than "
                            f"{MAX_ITERATIONS}: refused")
    if meta_len > MAX_META or not 0 < ct_len <= MAX_CIPHERTEXT or ct_len % 16:
        raise SnapshotError(f"{name} has a malformed header (lengths out of range)")
    size = HEADER_STRUCT.size + meta_len
    if len(data) < size:
        raise SnapshotError(f"{name} is truncated inside its header")
    try:
        meta = msgpack.unpackb(bytes(data[HEADER_STRUCT.size:size]), raw=False,
                               strict_map_key=True, max_str_len=256, max_bin_len=0,
                               max_array_len=16, max_map_len=16, max_ext_len=0)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as e:
        raise SnapshotError(f"{name} has a malformed header: {e}") from e
    if (type(meta) is not dict or type(meta.get("generation")) is not int
            or type(meta.get("height")) is not int or type(meta.get("width")) is not int
            or type(meta.get("rule")) is not str):
        raise SnapshotError(f"{name} has a malformed header (meta)")
    header = Header(version, kdf, cipher, iterations, enc_salt, mac_salt, key_check,
                    ct_len, meta, size)
    if len(data) < header.file_size:
        raise SnapshotError(f"{name} is truncated: {len(data)} bytes of "
                            f"{header.file_size}")
    if len(data) > header.file_size:
        raise SnapshotError(f"{name} has {len(data) - header.file_size} bytes after its "
                            "end")
    return header

