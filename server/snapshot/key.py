"""The snapshot key: the password, where it comes from, and the MAC keys derived from it.

The password comes from ``--key-file FILE`` or the ``LIFENET_SNAPSHOT_KEY`` environment
variable, never from a command-line value (every user can read ``/proc/PID/cmdline``).
``openssl enc`` derives the AES key and IV from it with its own PBKDF2; the MAC key is a
separate PBKDF2 here, over another salt, so the two keys are independent
(encrypt-then-MAC). The key check, an HMAC of the MAC master key stored in the header,
tells a wrong key from an altered file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from shared.errors import SnapshotError

KEY_ENV = "LIFENET_SNAPSHOT_KEY"
MAX_KEY_BYTES = 1000  # openssl reads at most 1 KiB of a -pass fd: line


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
class MacKeys:
    """The keys a snapshot's tag and key check are made with."""

    mac: bytes
    check: bytes


def derive_keys(key: SnapshotKey, mac_salt: bytes, iterations: int) -> MacKeys:
    # hashlib releases the GIL here, so this runs beside openssl's own derivation.
    master = hashlib.pbkdf2_hmac("sha256", key.secret, b"lifenet snapshot mac\0" + mac_salt,
                                 iterations)
    return MacKeys(hmac.digest(master, b"mac", "sha256"),
                 hmac.digest(master, b"key check", "sha256")[:8])
