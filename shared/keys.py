"""CURVE keys: made, kept and read as ZeroMQ certificate files.

lifenet authenticates and encrypts every connection with ZeroMQ's CURVE (Curve25519).
A key pair is two files in the certificate format ``zmq.auth`` reads and writes (CZMQ's
format): ``NAME.key`` holds the public half (give it away), ``NAME.key_secret`` both
halves (keep it). A keys directory made by ``lifenet keys init DIR`` holds::

    DIR/                      mode 0700
      server.key              the server's public key: every peer needs it
      server.key_secret       the server's secret key: the server only
      worker.key(_secret)     a worker's pair: workers only
      operator.key(_secret)   an operator's pair (snapshots, control)
      authorized/workers/     public keys of the workers the server accepts
      authorized/operators/   public keys of the operators it obeys

Rules, as ssh keeps them: nothing is ever overwritten; a secret file that its group or
others may read is refused; files are read only if they are regular files of a
certificate's size. Keys travel as file names (or environment variables naming files),
never as values on a command line, which every user of the machine can read.
"""

from __future__ import annotations

import datetime
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.utils import z85

from shared.errors import KeyFileError

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
ROLES = ("server", "worker", "operator")
ALLOW_LISTS = {"workers": "worker", "operators": "operator"}  # list -> the role it admits
MAX_CERTIFICATE_BYTES = 4096
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KEY = re.compile(rb'^\s*(public|secret)-key\s*=\s*"([^"]{40})"\s*$')

_SECRET_BANNER = """#   ****  Generated on {0} by lifenet  ****
#   ZeroMQ CURVE **Secret** Certificate
#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.

"""
_PUBLIC_BANNER = """#   ****  Generated on {0} by lifenet  ****
#   ZeroMQ CURVE Public Certificate
#   Exchange securely, or use a secure mechanism to verify the contents
#   of this file after exchange.

"""


@dataclass(frozen=True)
class KeyPair:
    """A CURVE key pair, each half as its 40 Z85 characters; ``secret`` may be absent
    (a peer's public key). Its repr never shows the secret."""

    public: bytes
    secret: bytes | None = None

    def __repr__(self) -> str:
        hidden = "hidden" if self.secret else "none"
        return f"KeyPair(public={self.public.decode()!r}, secret=<{hidden}>)"

    @classmethod
    def generate(cls) -> KeyPair:
        public, secret = zmq.curve_keypair()
        return cls(public, secret)


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise KeyFileError(f"key name {name!r}: use letters, digits, '.', '_' and '-' "
                           "(at most 64, not starting with a punctuation mark)")


def _certificate(pair: KeyPair, secret: bool) -> str:
    now = datetime.datetime.now().isoformat(timespec="seconds")
    text = (_SECRET_BANNER if secret else _PUBLIC_BANNER).format(now)
    text += "metadata\ncurve\n"
    text += f'    public-key = "{pair.public.decode()}"\n'
    if secret:
        assert pair.secret is not None
        text += f'    secret-key = "{pair.secret.decode()}"\n'
    return text


def _create(path: Path, text: str, mode: int) -> None:
    """Write a new file with exactly ``mode`` (whatever the umask); refuse to overwrite
    anything (a file, a link, a directory); leave nothing behind when writing fails."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} exists: lifenet never overwrites a key") from None
    except OSError as e:
        raise KeyFileError(f"cannot write {path}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), mode)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        path.unlink(missing_ok=True)
        raise KeyFileError(f"cannot write {path}: {e.strerror}") from e


def write_pair(directory: Path, name: str, pair: KeyPair | None = None) -> KeyPair:
    """Write ``NAME.key`` (mode 0644) and ``NAME.key_secret`` (mode 0600) in
    ``directory``; a new pair unless one is given. Neither file may exist yet."""
    _check_name(name)
    pair = pair or KeyPair.generate()
    public, secret = directory / f"{name}{PUBLIC_SUFFIX}", directory / f"{name}{SECRET_SUFFIX}"
    _refuse_taken([public, secret])
    _create(secret, _certificate(pair, secret=True), 0o600)
    try:
        _create(public, _certificate(pair, secret=False), 0o644)
    except KeyFileError:
        secret.unlink(missing_ok=True)  # a pair is written whole, or not at all
        raise
    return pair


def _refuse_taken(paths: list[Path]) -> None:
    """Refuse before writing anything if any of ``paths`` exists (or is a link)."""
    for path in paths:
        if path.exists() or path.is_symlink():
            raise KeyFileError(f"{path} exists: lifenet never overwrites a key")


def authorize(directory: Path, allow_list: str, name: str, pair: KeyPair) -> Path:
    """Put the public half of ``pair`` on ``DIR/authorized/ALLOW_LIST/NAME.key``."""
    if allow_list not in ALLOW_LISTS:
        raise KeyFileError(f"no allow-list {allow_list!r}: choose one of "
                           f"{', '.join(ALLOW_LISTS)}")
    _check_name(name)
    listed = directory / "authorized" / allow_list
    _make_dir(directory / "authorized", 0o755)
    _make_dir(listed, 0o755)
    path = listed / f"{name}{PUBLIC_SUFFIX}"
    _create(path, _certificate(KeyPair(pair.public), secret=False), 0o644)
    return path


def authorized_path(directory: Path, allow_list: str, name: str) -> Path:
    return directory / "authorized" / allow_list / f"{name}{PUBLIC_SUFFIX}"


def new_key(directory: Path, name: str, allow_list: str | None = None) -> KeyPair:
    """``lifenet keys new``: a pair, and its public half on an allow-list if asked;
    refused before anything is written if any of those files exists."""
    _check_name(name)
    if allow_list is not None and allow_list not in ALLOW_LISTS:
        raise KeyFileError(f"no allow-list {allow_list!r}: choose one of "
                           f"{', '.join(ALLOW_LISTS)}")
    planned = [directory / f"{name}{PUBLIC_SUFFIX}", directory / f"{name}{SECRET_SUFFIX}"]
    if allow_list is not None:
        planned.append(authorized_path(directory, allow_list, name))
    _refuse_taken(planned)
    pair = write_pair(directory, name)
    if allow_list is not None:
        authorize(directory, allow_list, name, pair)
    return pair


def _make_dir(path: Path, mode: int) -> None:
    """Make ``path`` (and its parents) if missing; a directory made here gets exactly
    ``mode``, whatever the umask."""
    existed = path.exists()
    try:
        path.mkdir(mode=mode, parents=True, exist_ok=True)
        if not existed:
            os.chmod(path, mode)
    except OSError as e:
        raise KeyFileError(f"cannot make {path}: {e.strerror}") from e
    if not path.is_dir() or path.is_symlink():
        raise KeyFileError(f"{path} is not a directory")


def init_keys(directory: Path) -> dict[str, KeyPair]:
    """``lifenet keys init DIR``: the directory (0700), a server, a worker and an
    operator pair, and the worker and operator on their allow-lists. Refused if any of
    those files exists already."""
    _make_dir(directory, 0o700)
    try:  # whether it was there before or not: the keys are in it
        os.chmod(directory, 0o700)
    except OSError as e:
        raise KeyFileError(f"cannot make {directory} private (mode 0700): {e.strerror}") \
            from e
    planned = [directory / f"{role}{suffix}" for role in ROLES
               for suffix in (PUBLIC_SUFFIX, SECRET_SUFFIX)]
    planned += [directory / "authorized" / lst / f"{role}{PUBLIC_SUFFIX}"
                for lst, role in ALLOW_LISTS.items()]
    taken = [str(p) for p in planned if p.exists() or p.is_symlink()]
    if taken:
        raise KeyFileError(f"{taken[0]} exists: lifenet never overwrites a key "
                           "(use `lifenet keys new NAME --dir DIR` to add one)")
    pairs = {role: write_pair(directory, role) for role in ROLES}
    for allow_list, role in ALLOW_LISTS.items():
        authorize(directory, allow_list, role, pairs[role])
    return pairs


def _read_certificate(path: Path, secret: bool) -> KeyPair:
    """Both halves (``secret``) or the public half of a certificate file, checked on
    the open file itself (what is read is what was checked: a FIFO or a device swapped
    in is refused, never read without end)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise KeyFileError(f"no key file {path}") from None
    except OSError as e:
        raise KeyFileError(f"cannot read {path}: {e.strerror}") from e
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{path} is not a regular file")
        if info.st_size > MAX_CERTIFICATE_BYTES:
            raise KeyFileError(f"{path} is too large to be a key file")
        if secret and info.st_mode & 0o077:
            raise KeyFileError(f"{path} may be read by others (mode "
                               f"{stat.S_IMODE(info.st_mode):04o}): a secret key must not "
                               f"be (chmod 600 {path})")
        data = os.read(fd, MAX_CERTIFICATE_BYTES + 1)
    except OSError as e:
        raise KeyFileError(f"cannot read {path}: {e.strerror}") from e
    finally:
        os.close(fd)
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise KeyFileError(f"{path} is too large to be a key file")
    found: dict[bytes, bytes] = {}
    for line in data.splitlines():
        m = _KEY.match(line)
        if m:
            found.setdefault(m.group(1), m.group(2))
    public = found.get(b"public")
    if public is None or not _is_key(public):
        raise KeyFileError(f"{path} has no public key (is it a ZeroMQ certificate?)")
    if not secret:
        return KeyPair(public)
    hidden = found.get(b"secret")
    if hidden is None or not _is_key(hidden):
        raise KeyFileError(f"{path} has no secret key (the public half is "
                           f"{path.name.removesuffix(SECRET_SUFFIX)}{PUBLIC_SUFFIX})")
    if zmq.curve_public(hidden) != public:
        raise KeyFileError(f"{path}: its public key is not its secret key's")
    return KeyPair(public, hidden)


def _is_key(text: bytes) -> bool:
    try:
        return len(z85.decode(text)) == 32
    except Exception:  # z85 raises struct.error, ValueError, KeyError... on bad text
        return False


def load_secret(path: Path) -> KeyPair:
    """A pair from a ``.key_secret`` file (refused if group or others may read it)."""
    return _read_certificate(path, secret=True)


def load_public(path: Path) -> KeyPair:
    """The public key in a certificate (``.key`` or ``.key_secret``)."""
    return _read_certificate(path, secret=False)


def load_allow_list(directory: Path, bad: list[str] | None = None) -> set[bytes]:
    """The public keys of every ``*.key`` file in an allow-list directory.

    With ``bad`` (a list), a file that cannot be read is skipped and named there instead
    of refusing the whole list: one broken file must not keep a removed key admitted.
    """
    try:
        if not directory.is_dir():
            raise KeyFileError(f"no allow-list directory {directory}")
        paths = sorted(directory.glob(f"*{PUBLIC_SUFFIX}"))
    except OSError as e:
        raise KeyFileError(f"cannot read the allow-list {directory}: {e.strerror}") from e
    keys = set()
    for path in paths:
        try:
            keys.add(load_public(path).public)
        except KeyFileError as e:
            if bad is None:
                raise
            bad.append(str(e))
    return keys


@dataclass(frozen=True)
class Credentials:
    """What a peer needs to reach a CURVE server: the server's public key, and its own
    pair (a throwaway one when it keeps none)."""

    server: bytes
    own: KeyPair

    @classmethod
    def of(cls, server_key: Path, own: Path | None = None) -> Credentials:
        return cls(load_public(server_key).public,
                   load_secret(own) if own is not None else KeyPair.generate())

    @classmethod
    def in_dir(cls, directory: Path, role: str) -> Credentials:
        """From a keys directory: ``server.key`` and the role's own ``.key_secret``."""
        return cls(load_public(directory / f"server{PUBLIC_SUFFIX}").public,
                   load_secret(directory / f"{role}{SECRET_SUFFIX}"))

    def apply(self, sock: zmq.Socket[object]) -> None:
        """Make ``sock`` (before it connects) a CURVE client of that server."""
        assert self.own.secret is not None
        sock.curve_serverkey = self.server
        sock.curve_publickey = self.own.public
        sock.curve_secretkey = self.own.secret
