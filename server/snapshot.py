"""Snapshots: encrypted, authenticated, crash-safe server state (Effective Python item 52).

The state (world with owners, generation, rule, players, the soup's seed) is packed with
msgpack, then piped through ``openssl`` children started with ``subprocess.Popen``,
run side by side like a UNIX pipeline::

    plaintext --> [openssl enc -aes-256-cbc -pbkdf2] --> ciphertext --+--> temp file
                                                                      +--> HMAC-SHA256 (here)
                                                                      +--> [openssl dgst -sha256]

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

Keys: ``openssl enc`` derives the AES key and IV from the password and the encryption
salt; the MAC key comes from a separate PBKDF2 here, over the MAC salt, so the two keys
are independent (encrypt-then-MAC; ``enc`` has no authenticated mode). The key check is
an HMAC of the MAC master key: it tells a wrong key from an altered file. The password
reaches ``openssl`` through a pipe (``-pass fd:N``), never its command line, which every
user can read in ``/proc/PID/cmdline``.

Reading verifies before anything is decrypted: header limits (magic, version, a KDF
iteration count below ``MIN_ITERATIONS`` is refused), exact file size, the checksum,
then the tag. Only an authentic ciphertext is handed to ``openssl enc -d``, whose output
is kept in memory and used only if it exits 0 (a failed decryption still writes output).

Every child is in its own process group and watched by a deadline: a hung child (and
anything it started) is killed with SIGKILL and reaped; every return code is checked (a
failed stage in a pipeline lets the next one exit 0 on empty input).
``Popen.communicate(timeout=...)`` is not used: it leaves the child running on timeout.

Writing goes to a temporary file in the same directory, fsync, rename, fsync of the
directory: a crash at any point leaves the previous snapshot whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import logging
import os
import queue
import re
import shutil
import signal
import stat
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgpack
import numpy as np

from shared.errors import RuleError, SnapshotError
from shared.files import fsync_dir, write_atomically
from shared.grid import MAX_CELLS, MAX_PLAYER, Codes, Grid, check_size
from shared.rules import Rule, parse_rule

log = logging.getLogger("lifenet.snapshot")

MAGIC = b"\x89LNS\r\n\x1a\n"
FORMAT_VERSION = 1
KDF_PBKDF2_SHA256 = 1
CIPHER_AES_256_CBC = 1
DEFAULT_ITERATIONS = 600_000
MIN_ITERATIONS = 200_000
MAX_ITERATIONS = 20_000_000  # a crafted file must not make verification run for hours
DEFAULT_TIMEOUT = 60.0
KEY_ENV = "LIFENET_SNAPSHOT_KEY"
MAX_KEY_BYTES = 1000  # openssl reads at most 1 KiB of a -pass fd: line
SUFFIX = ".lns"

_FIXED = struct.Struct(">8sHBBI8s16s8sQH")
_DIGEST = 32
_MAX_META = 1024
_MAX_PLAINTEXT = MAX_CELLS + (1 << 20)  # the codes, plus players and the rest
_MAX_CIPHERTEXT = (_MAX_PLAINTEXT // 16 + 1) * 16
_CHUNK = 1 << 20
_NAME = re.compile(r"^world-(\d+)\.lns$")
_LEFTOVER = re.compile(r"^\.world-\d+\.lns\..+\.tmp$")  # a write killed midway


# --- the key ------------------------------------------------------------------------


class SnapshotKey:
    """The snapshot password; its repr never shows it (configs and tracebacks get logged)."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise SnapshotError("the snapshot key is empty")
        if len(secret) > MAX_KEY_BYTES:
            raise SnapshotError(f"the snapshot key is longer than {MAX_KEY_BYTES} bytes")
        if any(c in secret for c in b"\n\r\0"):
            raise SnapshotError("the snapshot key must be one line (no newline or NUL "
                                "inside)")
        self._secret = secret

    @property
    def secret(self) -> bytes:
        return self._secret

    def __repr__(self) -> str:
        return "SnapshotKey(<hidden>)"


def load_key(key_file: Path | None = None,
             environ: dict[str, str] | None = None) -> SnapshotKey:
    """The key from ``key_file`` (one line; a final newline is dropped), else from the
    ``LIFENET_SNAPSHOT_KEY`` environment variable."""
    if key_file is not None:
        try:
            data = key_file.read_bytes()
        except OSError as e:
            raise SnapshotError(f"cannot read the key file {key_file}: {e.strerror}") from e
        if data.endswith(b"\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n"):
            data = data[:-1]
        return SnapshotKey(data)
    env = os.environ if environ is None else environ
    value = env.get(KEY_ENV)
    if value is None:
        raise SnapshotError(f"no snapshot key: set {KEY_ENV} or pass --key-file FILE")
    return SnapshotKey(value.encode())


@dataclass(frozen=True)
class _Keys:
    mac: bytes
    check: bytes


def _derive(key: SnapshotKey, mac_salt: bytes, iterations: int) -> _Keys:
    # hashlib releases the GIL here, so this runs beside openssl's own derivation.
    master = hashlib.pbkdf2_hmac("sha256", key.secret, b"lifenet snapshot mac\0" + mac_salt,
                                 iterations)
    return _Keys(hmac.digest(master, b"mac", "sha256"),
                 hmac.digest(master, b"key check", "sha256")[:8])


def _derive_within(key: SnapshotKey, header: Header, children: Children) -> _Keys:
    """``_derive`` for a file being read, under the operation's deadline: the file
    chooses the iteration count (up to ``MAX_ITERATIONS``, seconds of work), and a
    timeout must bound it like it bounds the ``openssl`` children. A derivation past the
    deadline is abandoned to its thread, which ends by itself."""
    result: list[_Keys] = []
    worker = threading.Thread(target=lambda: result.append(
        _derive(key, header.mac_salt, header.iterations)), name="pbkdf2", daemon=True)
    worker.start()
    worker.join(max(0.0, children.deadline - time.monotonic()))
    if not result:
        raise SnapshotError(f"{children.what}: deriving the key ({header.iterations} "
                            f"iterations) took longer than {children.timeout:g} s")
    return result[0]


# --- the state ----------------------------------------------------------------------


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


# --- the header ---------------------------------------------------------------------


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
        return self.size + self.ciphertext_len + 2 * _DIGEST

    def pack(self) -> bytes:
        meta: bytes = msgpack.packb(self.meta, use_bin_type=True)
        return _FIXED.pack(MAGIC, self.version, self.kdf, self.cipher, self.iterations,
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
    if len(data) < _FIXED.size:
        raise SnapshotError(f"{name} is truncated: {len(data)} bytes, shorter than a header")
    (_, version, kdf, cipher, iterations, enc_salt, mac_salt, key_check, ct_len,
     meta_len) = _FIXED.unpack_from(data)
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
    if meta_len > _MAX_META or not 0 < ct_len <= _MAX_CIPHERTEXT or ct_len % 16:
        raise SnapshotError(f"{name} has a malformed header (lengths out of range)")
    size = _FIXED.size + meta_len
    if len(data) < size:
        raise SnapshotError(f"{name} is truncated inside its header")
    try:
        meta = msgpack.unpackb(bytes(data[_FIXED.size:size]), raw=False,
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


# --- openssl children ---------------------------------------------------------------


def openssl_path() -> str:
    path = shutil.which("openssl")
    if path is None:
        raise SnapshotError("openssl was not found on PATH: snapshots need the openssl "
                            "command")
    return path


class Children:
    """The ``openssl`` children of one operation, under one deadline.

    A watchdog kills every child's process group when the deadline passes, which also
    unblocks any thread reading or writing their pipes. Leaving the ``with`` block kills
    whatever is still running and reaps every child, on success and failure alike.
    """

    def __init__(self, timeout: float, what: str) -> None:
        self.timeout = timeout
        self.what = what
        self.deadline = time.monotonic() + timeout
        self.procs: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []
        self.timed_out = threading.Event()
        self._lock = threading.Lock()
        self._watchdog = threading.Timer(timeout, self._expire)
        self._watchdog.daemon = True
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        self._env = {k: v for k, v in os.environ.items() if k != KEY_ENV}

    def __enter__(self) -> Children:
        self._watchdog.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._watchdog.cancel()
        self.kill_all()
        for _, proc, errfile in self.procs:
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            proc.wait()
            errfile.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _expire(self) -> None:
        self.timed_out.set()
        self.kill_all()

    def kill_all(self) -> None:
        with self._lock:
            for _, proc, _ in self.procs:
                if proc.returncode is None:
                    # The group: a stand-in script's own children hold our pipes too.
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)

    def start(self, name: str, args: Sequence[str],
              key: SnapshotKey | None = None) -> subprocess.Popen[bytes]:
        """Start ``openssl ARGS``; with ``key``, the password goes through a pipe."""
        if self.timed_out.is_set():
            raise self.timeout_error()
        argv = [openssl_path(), *args]
        fds: tuple[int, ...] = ()
        if key is not None:
            r, w = os.pipe()
            try:
                os.write(w, key.secret + b"\n")  # small: fits the pipe's buffer
            finally:
                os.close(w)
            argv += ["-pass", f"fd:{r}"]
            fds = (r,)
        errfile = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
        try:
            with self._lock:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errfile,
                    pass_fds=fds, env=self._env, process_group=0)
                self.procs.append((name, proc, errfile))
        except OSError as e:
            errfile.close()
            raise SnapshotError(f"{self.what}: cannot start openssl {name}: "
                                f"{e.strerror}") from e
        finally:
            for fd in fds:
                os.close(fd)
        return proc

    def feed(self, proc: subprocess.Popen[bytes], data: bytes | memoryview) -> None:
        """Write ``data`` to the child's stdin from a thread, then close it."""
        def run() -> None:
            assert proc.stdin is not None
            try:
                view = memoryview(data)
                for i in range(0, len(view), _CHUNK):
                    proc.stdin.write(view[i:i + _CHUNK])
                proc.stdin.close()
            except (OSError, ValueError) as e:  # the child died or was killed
                self.errors.append(e)
        thread = threading.Thread(target=run, name="openssl-feed", daemon=True)
        self._threads.append(thread)
        thread.start()

    def read_all(self, proc: subprocess.Popen[bytes]) -> bytes:
        assert proc.stdout is not None
        return proc.stdout.read()

    def check(self, *only: subprocess.Popen[bytes]) -> None:
        """Wait for every child (or ``only`` these) until the deadline; check each
        return code."""
        for name, proc, errfile in self.procs:
            if only and proc not in only:
                continue
            try:
                proc.wait(max(0.0, self.deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._expire()
                raise self.timeout_error() from None
            if self.timed_out.is_set():
                raise self.timeout_error()
            if proc.returncode != 0:
                errfile.seek(0)
                reason = errfile.read(2000).decode(errors="replace").strip().splitlines()
                why = reason[0] if reason else "no message"
                raise SnapshotError(f"{self.what}: openssl {name} failed with status "
                                    f"{proc.returncode}: {why}")
        for e in self.errors:
            raise SnapshotError(f"{self.what}: a pipe to openssl broke: {e}") from e

    def timeout_error(self) -> SnapshotError:
        return SnapshotError(f"{self.what}: openssl did not finish within "
                             f"{self.timeout:g} s; it was killed")


def _enc_args(header: Header, decrypt: bool) -> list[str]:
    return ["enc", "-d" if decrypt else "-e", "-aes-256-cbc", "-pbkdf2", "-md", "sha256",
            "-iter", str(header.iterations), "-S", header.enc_salt.hex()]


_DGST_ARGS = ["dgst", "-sha256", "-binary"]


# --- writing ------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    path: Path
    generation: int
    size: int


def save_snapshot(path: Path, state: WorldState, key: SnapshotKey, *,
                  iterations: int = DEFAULT_ITERATIONS,
                  timeout: float = DEFAULT_TIMEOUT) -> Written:
    """Encrypt and authenticate ``state`` into ``path``, atomically.

    Costs one PBKDF2 here and one in ``openssl enc`` (side by side), then one pass over
    the bytes. ``SnapshotError`` on any failure, and then ``path`` is untouched and no
    temporary file is left.
    """
    if iterations < MIN_ITERATIONS:
        raise SnapshotError(f"{iterations} KDF iterations is below the minimum "
                            f"{MIN_ITERATIONS}")
    what = f"snapshot {path.name}"
    plaintext = pack_state(state)
    ct_len = (len(plaintext) // 16 + 1) * 16  # CBC with PKCS#7 padding
    header = Header(FORMAT_VERSION, KDF_PBKDF2_SHA256, CIPHER_AES_256_CBC, iterations,
                    os.urandom(8), os.urandom(16), b"", ct_len,
                    {"generation": state.generation, "height": state.height,
                     "width": state.width, "rule": str(state.rule),
                     "created": int(time.time())}, 0)
    directory = path.parent
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                        dir=directory)
    except OSError as e:
        raise SnapshotError(f"cannot write in {directory}: {e.strerror}") from e
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, Children(timeout, what) as children:
            enc = children.start("enc", _enc_args(header, decrypt=False), key)
            dgst = children.start("dgst", _DGST_ARGS)
            children.feed(enc, plaintext)
            keys = _derive(key, header.mac_salt, iterations)
            header = dataclasses.replace(header, key_check=keys.check)
            head = header.pack()
            header = dataclasses.replace(header, size=len(head))
            mac = hmac.new(keys.mac, head, "sha256")
            out.write(head)
            assert enc.stdout is not None and dgst.stdin is not None
            written = 0
            try:
                while chunk := os.read(enc.stdout.fileno(), _CHUNK):
                    out.write(chunk)
                    mac.update(chunk)
                    dgst.stdin.write(chunk)
                    written += len(chunk)
                dgst.stdin.close()
            except OSError as e:
                children.check()  # a killed or failed child explains it best
                raise SnapshotError(f"{what}: a pipe to openssl broke: {e}") from e
            checksum = children.read_all(dgst)
            children.check()
            if written != ct_len or len(checksum) != _DIGEST:
                raise SnapshotError(f"{what}: openssl gave {written} bytes of ciphertext "
                                    f"(expected {ct_len}) and a {len(checksum)}-byte "
                                    "digest")
            mac.update(checksum)
            out.write(checksum)
            out.write(mac.digest())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        fsync_dir(directory)
    except SnapshotError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise SnapshotError(f"cannot write {path}: {e.strerror or e}") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Written(path, state.generation, header.file_size)


def write_snapshot_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write a snapshot received whole (``save --out``): atomically, or not at all."""
    try:
        write_atomically(path, data)
    except OSError as e:
        raise SnapshotError(f"cannot write {path}: {e.strerror or e}") from e


# --- reading ------------------------------------------------------------------------


def _read_file(path: Path) -> bytes:
    """The whole file, if it is a regular file no larger than a snapshot can be (a FIFO
    would block, a device or ``/proc`` file would be read without end)."""
    limit = _MAX_CIPHERTEXT + _FIXED.size + _MAX_META + 2 * _DIGEST
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise SnapshotError(f"{path} is not a regular file")
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise SnapshotError(f"cannot read {path}: {e.strerror}") from e
    if len(data) > limit:
        raise SnapshotError(f"{path} is too large to be a lifenet snapshot")
    return data


def _body(data: bytes, header: Header) -> tuple[memoryview, bytes, bytes]:
    view = memoryview(data)
    end = header.size + header.ciphertext_len
    return view[header.size:end], bytes(view[end:end + _DIGEST]), bytes(view[end + _DIGEST:])


def _checksum(children: Children, ciphertext: memoryview) -> bytes:
    dgst = children.start("dgst", _DGST_ARGS)
    children.feed(dgst, ciphertext)
    return children.read_all(dgst)


def check_bytes(data: bytes, name: str = "snapshot") -> Header:
    """The header of a snapshot received whole (``save --out``), once its structure and
    keyless checksum are right: damage in transit is caught, tampering is ``verify``'s."""
    header = parse_header(data, name)
    ciphertext, checksum, _ = _body(data, header)
    if not hmac.compare_digest(hashlib.sha256(ciphertext).digest(), checksum):
        raise SnapshotError(f"{name}: the received snapshot is damaged (checksum)")
    return header


def inspect_snapshot(path: Path, timeout: float = DEFAULT_TIMEOUT) -> tuple[Header, bool]:
    """The header and whether the keyless checksum matches (not authentication)."""
    data = _read_file(path)
    header = parse_header(data, path.name)
    ciphertext, checksum, _ = _body(data, header)
    with Children(timeout, f"inspect {path.name}") as children:
        digest = _checksum(children, ciphertext)
        children.check()
    return header, hmac.compare_digest(digest, checksum)


def _verify(data: bytes, header: Header, key: SnapshotKey, name: str,
            children: Children) -> None:
    ciphertext, checksum, tag = _body(data, header)
    # The digest child hashes the ciphertext while the MAC key is derived here.
    dgst = children.start("dgst", _DGST_ARGS)
    children.feed(dgst, ciphertext)
    keys = _derive_within(key, header, children)
    mac = hmac.new(keys.mac, memoryview(data)[:len(data) - _DIGEST], "sha256")
    digest = children.read_all(dgst)
    children.check(dgst)
    if hmac.compare_digest(mac.digest(), tag):
        if not hmac.compare_digest(digest, checksum):  # authentic, yet openssl disagrees
            raise SnapshotError(f"{name}: openssl dgst does not agree with the checksum")
        return
    if not hmac.compare_digest(digest, checksum):
        raise SnapshotError(f"{name} is damaged or altered: its checksum does not match")
    if not hmac.compare_digest(keys.check, header.key_check):
        raise SnapshotError(f"wrong key for {name} (or its header was altered)")
    raise SnapshotError(f"{name} does not verify: its authentication tag does not match "
                        "(the file was altered)")


def verify_snapshot(path: Path, key: SnapshotKey,
                    timeout: float = DEFAULT_TIMEOUT) -> Header:
    """The header of ``path`` once its tag verifies; ``SnapshotError`` otherwise."""
    data = _read_file(path)
    header = parse_header(data, path.name)
    with Children(timeout, f"verify {path.name}") as children:
        _verify(data, header, key, path.name, children)
    return header


def read_snapshot(path: Path, key: SnapshotKey,
                  timeout: float = DEFAULT_TIMEOUT) -> tuple[Header, WorldState]:
    """Verify, then decrypt, then decode ``path``; nothing is decrypted unverified."""
    data = _read_file(path)
    header = parse_header(data, path.name)
    ciphertext, _, _ = _body(data, header)
    with Children(timeout, f"read {path.name}") as children:
        # openssl derives its key while the tag is checked here; it is given no byte of
        # ciphertext until the tag verifies, and is killed unread otherwise.
        enc = children.start("enc", _enc_args(header, decrypt=True), key)
        _verify(data, header, key, path.name, children)
        children.feed(enc, ciphertext)
        plaintext = children.read_all(enc)
        children.check()  # output of a failed decryption is never used
    state = unpack_state(plaintext)
    meta = header.meta
    if (state.generation, state.height, state.width, str(state.rule)) != (
            meta["generation"], meta["height"], meta["width"], meta["rule"]):
        raise SnapshotError(f"{path.name}: the header and the contents disagree")
    return header, state


# --- a directory of snapshots and the background writer -----------------------------


def snapshot_name(generation: int) -> str:
    """``world-000000000120.lns``: names sort oldest to newest."""
    return f"world-{generation:012d}{SUFFIX}"


def snapshots_in(directory: Path) -> list[Path]:
    """The snapshots of ``directory``, oldest generation first."""
    found = [(int(m.group(1)), p) for p in directory.iterdir()
             if (m := _NAME.match(p.name)) is not None]
    return [p for _, p in sorted(found)]


def prune(directory: Path, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` snapshots; returns the removed ones."""
    old = snapshots_in(directory)[:-keep] if keep > 0 else []
    for p in old:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    return old


def sweep_leftovers(directory: Path, older_than: float) -> list[Path]:
    """Remove the temporary files of snapshot writes killed midway (SIGKILL, a crash),
    once they are ``older_than`` seconds untouched: no live write takes that long, so a
    file still being written (by this server or another on the directory) is left."""
    limit = time.time() - older_than
    removed = []
    for p in directory.iterdir():
        if _LEFTOVER.match(p.name) is None:
            continue
        try:  # one that cannot be removed (gone, a directory...) does not stop the rest
            info = p.lstat()
            if stat.S_ISREG(info.st_mode) and info.st_mtime < limit:
                p.unlink()
                removed.append(p)
        except OSError:
            continue
    return removed


Done = Callable[[Written | None, SnapshotError | None], None]


@dataclass
class _Job:
    state: WorldState
    waiters: list[Done]


class Snapshotter(threading.Thread):
    """Writes snapshots in the background, so the generation loop only copies the state.

    ``submit`` hands over a copied ``WorldState`` and who to tell when it is written. A
    periodic snapshot is skipped (with a warning) while the previous one is still being
    written rather than let copies of a large world pile up.
    """

    def __init__(self, directory: Path, key: SnapshotKey, *, keep: int = 10,
                 iterations: int = DEFAULT_ITERATIONS,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(name="snapshot", daemon=True)
        self.directory = directory
        self.key = key
        self.keep = keep
        self.iterations = iterations
        self.timeout = timeout
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self._busy = threading.Event()
        self.written: list[Written] = []
        self.failures = 0

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def submit(self, state: WorldState, waiters: Sequence[Done] = (),
               periodic: bool = False) -> bool:
        if periodic and self.busy and not waiters:
            log.warning("snapshot of generation %d skipped: the previous one is still "
                        "being written", state.generation)
            return False
        self._busy.set()
        self.jobs.put(_Job(state, list(waiters)))
        return True

    def stop(self) -> None:
        """Finish what was submitted, then end."""
        self.jobs.put(None)

    def run(self) -> None:
        while (job := self.jobs.get()) is not None:
            path = self.directory / snapshot_name(job.state.generation)
            result: Written | None = None
            error: SnapshotError | None = None
            try:
                with contextlib.suppress(OSError):
                    for old in sweep_leftovers(self.directory, 2 * self.timeout):
                        log.info("removed %s, left by a write that was killed", old.name)
                result = save_snapshot(path, job.state, self.key,
                                       iterations=self.iterations, timeout=self.timeout)
                self.written.append(result)
                for old in prune(self.directory, self.keep):
                    log.debug("removed old snapshot %s", old)
                log.info("wrote snapshot %s (%d bytes)", path, result.size)
            except SnapshotError as e:
                error = e
                self.failures += 1
                log.error("%s", e)
            except Exception as e:  # a bug here must not kill the writer
                log.exception("snapshot of generation %d failed", job.state.generation)
                error = SnapshotError(f"snapshot failed: {type(e).__name__}")
            if self.jobs.empty():
                self._busy.clear()
            for done in job.waiters:
                done(result, error)

