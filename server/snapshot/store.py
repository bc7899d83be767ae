"""Snapshot files: written atomically, read only once verified, kept in a directory.

Writing encrypts and authenticates a copied ``WorldState`` into a temporary file in the
same directory, fsyncs it, renames it over the target and fsyncs the directory: a crash
at any point leaves the previous snapshot whole. Reading verifies before anything is
decrypted: header limits, exact file size, the keyless checksum, then the tag. Only an
authentic ciphertext is handed to ``openssl enc -d``, whose output is kept in memory
and used only if it exits 0 (a failed decryption still writes output). A directory keeps
the newest snapshots by generation (``world-<12 digits>.lns``) and sweeps the temporary
files of writes that were killed midway.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import os
import re
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from server.snapshot import format as layout
from server.snapshot.format import (
    CIPHER_AES_256_CBC,
    DEFAULT_ITERATIONS,
    DIGEST_BYTES,
    FORMAT_VERSION,
    KDF_PBKDF2_SHA256,
    MAX_FILE_BYTES,
    SUFFIX,
    Header,
    WorldState,
    pack_state,
    parse_header,
    unpack_state,
)
from server.snapshot.key import MacKeys, SnapshotKey, derive_keys
from server.snapshot.openssl import CHUNK, DEFAULT_TIMEOUT, DGST_ARGS, Children, enc_args
from shared.errors import SnapshotError
from shared.files import fsync_dir, write_atomically

_NAME = re.compile(r"^world-(\d+)\.lns$")
_LEFTOVER = re.compile(r"^\.world-\d+\.lns\..+\.tmp$")  # a write killed midway


@dataclass(frozen=True)
class Written:
    path: Path
    generation: int
    size: int
    data: bytes | None = None  # with ``keep_bytes``: read back from the very file written
    verified: bool = True  # False: found in the directory at start, not checked yet


def save_snapshot(path: Path, state: WorldState, key: SnapshotKey, *,
                  iterations: int = DEFAULT_ITERATIONS,
                  timeout: float = DEFAULT_TIMEOUT, keep_bytes: bool = False) -> Written:
    """Encrypt and authenticate ``state`` into ``path``, atomically.

    Costs one PBKDF2 here and one in ``openssl enc`` (side by side), then one pass over
    the bytes. ``SnapshotError`` on any failure, and then ``path`` is untouched and no
    temporary file is left. ``keep_bytes``: the written file's bytes come back too,
    read through the descriptor it was written with, never by its name (a link swapped
    in at that name cannot change what is sent).
    """
    if iterations < layout.MIN_ITERATIONS:  # read at run time: tests lower it
        raise SnapshotError(f"{iterations} KDF iterations is below the minimum "
                            f"{layout.MIN_ITERATIONS}")
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
        data: bytes | None = None
        with os.fdopen(fd, "w+b") as out, Children(timeout, what) as children:
            enc = children.start("enc", enc_args(header, decrypt=False), key)
            dgst = children.start("dgst", DGST_ARGS)
            children.feed(enc, plaintext)
            keys = derive_keys(key, header.mac_salt, iterations)
            header = dataclasses.replace(header, key_check=keys.check)
            head = header.pack()
            header = dataclasses.replace(header, size=len(head))
            mac = hmac.new(keys.mac, head, "sha256")
            out.write(head)
            assert enc.stdout is not None and dgst.stdin is not None
            written = 0
            try:
                while chunk := os.read(enc.stdout.fileno(), CHUNK):
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
            if written != ct_len or len(checksum) != DIGEST_BYTES:
                raise SnapshotError(f"{what}: openssl gave {written} bytes of ciphertext "
                                    f"(expected {ct_len}) and a {len(checksum)}-byte "
                                    "digest")
            mac.update(checksum)
            out.write(checksum)
            out.write(mac.digest())
            out.flush()
            os.fsync(out.fileno())
            if keep_bytes:
                out.seek(0)
                data = out.read()
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
    return Written(path, state.generation, header.file_size, data)


def write_snapshot_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write a snapshot received whole (``save --out``): atomically, or not at all."""
    try:
        write_atomically(path, data)
    except OSError as e:
        raise SnapshotError(f"cannot write {path}: {e.strerror or e}") from e


def _read_file(path: Path) -> bytes:
    """The whole file, if it is a regular file no larger than a snapshot can be (a FIFO
    would block, a device or ``/proc`` file would be read without end)."""
    limit = MAX_FILE_BYTES
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
    return (view[header.size:end], bytes(view[end:end + DIGEST_BYTES]),
            bytes(view[end + DIGEST_BYTES:]))


def _checksum(children: Children, ciphertext: memoryview) -> bytes:
    dgst = children.start("dgst", DGST_ARGS)
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
    dgst = children.start("dgst", DGST_ARGS)
    children.feed(dgst, ciphertext)
    keys = derive_within(key, header, children)
    mac = hmac.new(keys.mac, memoryview(data)[:len(data) - DIGEST_BYTES], "sha256")
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
        enc = children.start("enc", enc_args(header, decrypt=True), key)
        _verify(data, header, key, path.name, children)
        children.feed(enc, ciphertext)
        plaintext = children.read_all(enc)
        children.check()  # output of a failed decryption is never used
    state = unpack_state(plaintext, header.version)
    meta = header.meta
    if (state.generation, state.height, state.width, str(state.rule)) != (
            meta["generation"], meta["height"], meta["width"], meta["rule"]):
        raise SnapshotError(f"{path.name}: the header and the contents disagree")
    return header, state


def derive_within(key: SnapshotKey, header: Header, children: Children) -> MacKeys:
    """``derive_keys`` for a file being read, under the operation's deadline: the file
    chooses the iteration count (up to ``MAX_ITERATIONS``, seconds of work), and a
    timeout must bound it like it bounds the ``openssl`` children. A derivation past the
    deadline is abandoned to its thread, which ends by itself."""
    result: list[MacKeys] = []
    worker = threading.Thread(target=lambda: result.append(
        derive_keys(key, header.mac_salt, header.iterations)), name="pbkdf2", daemon=True)
    worker.start()
    worker.join(max(0.0, children.deadline - time.monotonic()))
    if not result:
        raise SnapshotError(f"{children.what}: deriving the key ({header.iterations} "
                            f"iterations) took longer than {children.timeout:g} s")
    return result[0]


def snapshot_name(generation: int) -> str:
    """``world-000000000120.lns``: names sort oldest to newest."""
    return f"world-{generation:012d}{SUFFIX}"


def snapshot_generation(name: str) -> int | None:
    """The generation a snapshot's name says (``world-<12 digits>.lns``), if it is one."""
    m = _NAME.match(name)
    return int(m.group(1)) if m else None


def snapshots_in(directory: Path) -> list[Path]:
    """The snapshots of ``directory``, oldest generation first."""
    found = [(int(m.group(1)), p) for p in directory.iterdir()
             if (m := _NAME.match(p.name)) is not None]
    return [p for _, p in sorted(found)]


def prune(written: list[Written], keep: int) -> list[Written]:
    """Remove all but the newest ``keep`` of the snapshots in ``written`` (the
    writer's own, oldest written first: nothing else in the directory is touched, so
    files planted there with high generation numbers cannot make it delete new
    snapshots); never the newest. Returns the removed ones."""
    old = written[:-max(keep, 1)]
    for done in old:
        with contextlib.suppress(FileNotFoundError):
            done.path.unlink()
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

