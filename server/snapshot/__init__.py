"""Snapshots: encrypted, authenticated, crash-safe server state (Effective Python item 52).

The state (world with owners, generation, rule, players, the soup's seed) is packed with
msgpack, then piped through ``openssl`` children started with ``subprocess.Popen``,
run side by side like a UNIX pipeline::

    plaintext --> [openssl enc -aes-256-cbc -pbkdf2] --> ciphertext --+--> temp file
                                                                      +--> HMAC-SHA256 (here)
                                                                      +--> [openssl dgst -sha256]

One module for each part:

    key      the password (a file or ``LIFENET_SNAPSHOT_KEY``) and the MAC keys
    format   the state inside (msgpack) and the public header around it
    openssl  the children of one operation, under one deadline
    store    save, read, verify, inspect; the directory: names, prune, sweep
    writer   the background thread that writes, on schedule or when asked

This package re-exports what the rest of lifenet uses.
"""

from server.snapshot.format import (
    DEFAULT_ITERATIONS,
    FORMAT_VERSION,
    MAX_ITERATIONS,
    MIN_ITERATIONS,
    Header,
    WorldState,
    pack_state,
    parse_header,
    unpack_state,
)
from server.snapshot.key import KEY_ENV, SnapshotKey, load_key
from server.snapshot.openssl import DEFAULT_TIMEOUT, Children
from server.snapshot.store import (
    Written,
    check_bytes,
    inspect_snapshot,
    prune,
    read_snapshot,
    save_snapshot,
    snapshot_generation,
    snapshot_name,
    snapshots_in,
    sweep_leftovers,
    verify_snapshot,
    write_snapshot_bytes,
)
from server.snapshot.writer import Done, Snapshotter

__all__ = [
    "DEFAULT_ITERATIONS", "DEFAULT_TIMEOUT", "FORMAT_VERSION", "KEY_ENV", "MAX_ITERATIONS",
    "MIN_ITERATIONS", "Children", "Done", "Header", "SnapshotKey", "Snapshotter",
    "WorldState", "Written", "check_bytes", "inspect_snapshot", "load_key", "pack_state",
    "parse_header", "prune", "read_snapshot", "save_snapshot", "snapshot_generation",
    "snapshot_name", "snapshots_in", "sweep_leftovers", "unpack_state", "verify_snapshot",
    "write_snapshot_bytes",
]
