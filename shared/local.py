"""The keys of a local ``lifenet up``: made, held while it runs, and found by clients.

``lifenet up`` is secure by default: it makes keys of its own for each run, in
``STATE/up/PORT/`` (``STATE`` is ``$LIFENET_STATE_DIR``, else ``$XDG_STATE_HOME/lifenet``,
else ``~/.local/state/lifenet``; ``PORT`` its player port), and holds an exclusive
``flock`` on ``STATE/up/PORT.lock`` for as long as it runs. A local client that is
given no key looks there: the keys count only while that lock is held (so a directory
left by an ``up`` that was killed is never trusted, whatever process has its pid now),
and only if ``STATE/up`` is this user's own and nobody else may write in it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
from pathlib import Path
from typing import IO

from shared.errors import ConfigError, KeyFileError
from shared.keys import init_keys


def state_dir() -> Path:
    """Where lifenet keeps per-user state."""
    if os.environ.get("LIFENET_STATE_DIR"):
        return Path(os.environ["LIFENET_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "lifenet"


def _base() -> Path:
    return state_dir() / "up"


def embedded_keys_dir(player_port: int) -> Path:
    """The keys of the ``lifenet up`` whose players connect to ``player_port`` here."""
    return _base() / str(player_port)


def _private(directory: Path) -> bool:
    """Whether ``directory`` is this user's, and no one else may write in it."""
    try:
        info = directory.lstat()
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
            and not info.st_mode & 0o022)


def find_embedded(player_port: int) -> Path | None:
    """The keys directory of a ``lifenet up`` running now on ``player_port``, or None."""
    base = _base()
    directory = embedded_keys_dir(player_port)
    if not _private(base) or not _private(directory):
        return None
    try:
        lock = open(base / f"{player_port}.lock", "rb")  # noqa: SIM115 - closed below
    except OSError:
        return None
    try:
        fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return directory  # held: its up runs
    except OSError:
        return None
    finally:
        lock.close()  # closing also drops a lock this call may have taken
    return None  # nobody held it: left by an up that ended without cleaning up


class EmbeddedKeys:
    """One ``lifenet up``'s claim on its player port's keys: made on ``claim``, removed
    on ``release``, the lock held in between."""

    def __init__(self, directory: Path, lock: IO[bytes]) -> None:
        self.directory = directory
        self._lock = lock

    @classmethod
    def claim(cls, player_port: int) -> EmbeddedKeys:
        """Take the port's lock and make fresh keys; ``ConfigError`` if another ``up``
        holds it, or the state directory is not private."""
        base = _base()
        try:
            base.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot make {base}: {e.strerror}") from e
        if not _private(base):
            raise KeyFileError(f"{base} is not private (another user owns it, or others "
                               "may write in it): lifenet up keeps its keys there; set "
                               "LIFENET_STATE_DIR to a directory of your own")
        lock_path = base / f"{player_port}.lock"
        try:
            lock = open(lock_path, "ab")  # noqa: SIM115 - kept open while up runs
        except OSError as e:
            raise ConfigError(f"cannot open {lock_path}: {e.strerror}") from e
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise ConfigError(f"another lifenet up uses player port {player_port}: stop it "
                              "or give --player-port") from None
        directory = embedded_keys_dir(player_port)
        try:
            if directory.exists() or directory.is_symlink():  # an earlier up's, killed
                if directory.is_symlink() or not directory.is_dir():
                    directory.unlink()
                else:
                    shutil.rmtree(directory)
            init_keys(directory)
        except BaseException:
            lock.close()
            raise
        return cls(directory, lock)

    def release(self) -> None:
        """Remove the keys, then let the port go."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self._lock.close()
