"""The snapshot file format: the state inside, and the public header around it.

File layout (``.lns``), integers big-endian::

    offset  size  field
    0       8     magic b"\\x89LNS\\r\\n\\x1a\\n"
    8       2     format version (1)
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

Everything here is pure: no key, no ``openssl``, no file. ``parse_header`` checks the
limits of a header (magic, version, a KDF iteration count below ``MIN_ITERATIONS`` is
refused, lengths in range) and the file's exact size before anything else reads it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from shared.errors import RuleError, SnapshotError
from shared.grid import MAX_CELLS, MAX_PLAYER, Codes, Grid, check_size
from shared.rules import Rule, parse_rule

MAGIC = b"\x89LNS\r\n\x1a\n"
FORMAT_VERSION = 1
KDF_PBKDF2_SHA256 = 1
CIPHER_AES_256_CBC = 1
DEFAULT_ITERATIONS = 600_000
MIN_ITERATIONS = 200_000
MAX_ITERATIONS = 20_000_000  # a crafted file must not make verification run for hours
SUFFIX = ".lns"

HEADER_STRUCT = struct.Struct(">8sHBBI8s16s8sQH")
DIGEST_BYTES = 32
MAX_META = 1024
MAX_PLAINTEXT = MAX_CELLS + (1 << 20)  # the codes, plus players and the rest
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
    packed: bytes = msgpack.packb({
        "generation": state.generation, "height": state.height, "width": state.width,
        "rule": str(state.rule), "codes": np.ascontiguousarray(state.codes).tobytes(),
        "players": state.players, "rng": state.rng,
    }, use_bin_type=True)
    return packed


def unpack_state(data: bytes | bytearray) -> WorldState:
    """Decode and check a decrypted state; ``SnapshotError`` for anything unexpected."""
    try:
        body = msgpack.unpackb(bytes(data), raw=False, strict_map_key=True,
                               max_bin_len=MAX_CELLS, max_str_len=1 << 16,
                               max_array_len=1 << 16, max_map_len=1 << 16, max_ext_len=0)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as e:
        raise SnapshotError(f"the decrypted state is not valid msgpack: {e}") from e
    fields = {"generation": int, "height": int, "width": int, "rule": str, "codes": bytes,
              "players": list, "rng": dict}
    if type(body) is not dict or set(body) != set(fields):
        raise SnapshotError("the decrypted state does not have the fields of a lifenet "
                            "world")
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
    if generation < 0 or len(body["codes"]) != height * width:
        raise SnapshotError("the state's generation or cell count is out of range")
    codes = np.frombuffer(body["codes"], dtype=np.uint8).reshape(height, width).copy()
    if int(codes.max(initial=0)) > MAX_PLAYER + 1:
        raise SnapshotError("the state has a cell code beyond the last player")
    return WorldState(codes, generation, rule, body["players"], body["rng"])


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
    if version != FORMAT_VERSION:
        raise SnapshotError(f"{name} has an unknown format version {version}")
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

