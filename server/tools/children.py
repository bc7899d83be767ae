"""Local ``lifenet`` child processes: started, waited for, and stopped in order.

``lifenet up`` (the embedded default), the bench, the load test and the test suite all
run real ``lifenet`` processes on loopback, exactly as they would run across machines.
Starting them, waiting until they are ready and stopping every one of them (and nothing
else) is written once, here:

- every child is ``python -m server ...`` in its own session, so a Ctrl-C in the
  terminal reaches only the parent, which then stops the children itself; on Linux each
  child also asks the kernel for SIGTERM should the parent die without cleaning up
  (``PR_SET_PDEATHSIG``), so no worker is left reconnecting forever;
- ``wait_until`` polls a condition (a server answering, workers joined) and gives up
  with one clear line when a watched child exits first or time runs out;
- ``stop`` sends SIGTERM to each child's process group, the last started first (workers
  and bots before the server), then SIGKILL to what outlives the grace period, and reaps
  every one.

Two questions about ports help a parent tell its own child from another program that
answers in its place: ``port_in_use`` (can this port be listened on, as libzmq would
bind it?) before a child starts, and ``listens`` (is this process the one listening on
that port?) once something answers there.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from shared.errors import ConfigError

log = logging.getLogger("lifenet.children")

STOP_GRACE = 5.0
T = TypeVar("T")
Output = Path | IO[Any] | int | None  # a log file to append to, an open file, DEVNULL...


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands to outgoing connections (Linux; a usual default
    elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


_GIVEN: deque[int] = deque(maxlen=4096)  # the ports free_port gave lately


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bound and released), to listen on.

    It is picked at random *below* the kernel's ephemeral range when there is room: a
    port from that range (what binding port 0 gives) can be taken in the meantime by
    any outgoing connection, a worker's or a client's, and then the listener that
    wanted it fails with "Address already in use". Nor is a port given twice in a
    while by one process (two draws at random would meet now and then, and the two
    listeners that were promised it could not both have it).
    """
    low, _ = _ephemeral_range()
    if low > 10_000:
        for _ in range(50):
            port = random.randrange(10_000, low)
            if port in _GIVEN:
                continue
            with socket.socket() as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
                _GIVEN.append(port)
                return port
    for _ in range(50):
        with socket.socket() as s:
            s.bind((host, 0))
            found: int = s.getsockname()[1]
        if found not in _GIVEN:
            _GIVEN.append(found)
            return found
    return found


def port_in_use(host: str, port: int) -> bool:
    """Whether another socket listens on ``port`` of ``host`` (``0.0.0.0``, ``*`` or
    ``""`` for every interface): a bind as libzmq's (with ``SO_REUSEADDR``, so that a
    connection of a process that ended, in TIME_WAIT, does not count) fails. ``False``
    when the host cannot be bound at all: the listener itself will say why."""
    host = "" if host in ("*", "0.0.0.0") else host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
    return False


def listens(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` holds a TCP socket listening on ``port`` (any address),
    from ``/proc``; ``None`` where ``/proc`` cannot tell (not Linux)."""
    inodes: set[str] = set()
    readable = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            # sl local_address rem_address st ... inode (the 10th field); 0A is LISTEN
            if len(fields) > 9 and fields[3] == "0A" \
                    and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not readable:
        return None
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False  # the process is gone
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:
            continue
    return False


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux for SIGTERM when the parent dies (``preexec_fn`` of every child)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def niced(by: int) -> Callable[[], None]:  # pragma: no cover - as ``die_with_parent``
    """A ``preexec_fn``: ``die_with_parent``, then ``by`` lower in the scheduler's
    priority (``os.nice``; a child that may not lower itself runs as it is)."""
    def preexec() -> None:
        die_with_parent()
        with contextlib.suppress(OSError):
            os.nice(by)
    return preexec


class LocalProcesses:
    """The ``lifenet`` children of one parent; ``stop`` ends exactly those."""

    def __init__(self, *, log_level: str | None = None, cwd: Path | None = None,
                 env: Mapping[str, str] | None = None, stop_grace: float = STOP_GRACE) -> None:
        self.log_level = log_level
        self.cwd = cwd
        self.env = env
        self.stop_grace = stop_grace
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: Sequence[str], output: Output = None,
              env: Mapping[str, str] | None = None,
              module: str = "server", nice: int = 0) -> subprocess.Popen[bytes]:
        """Start ``lifenet ARGV`` (``python -m MODULE ARGV``) as the child called
        ``name``; its stdout and stderr go to ``output`` (a ``Path`` is appended to);
        ``nice``: that much lower in the scheduler's priority (Linux)."""
        cmd = [sys.executable, "-m", module]
        if self.log_level and module == "server":
            cmd += ["--log-level", self.log_level]
        environ = None
        if self.env is not None or env is not None:
            environ = {**os.environ, **(self.env or {}), **(env or {})}
        with contextlib.ExitStack() as stack:
            out: IO[Any] | int | None = (stack.enter_context(open(output, "ab"))
                                         if isinstance(output, Path) else output)
            proc = subprocess.Popen(
                [*cmd, *argv], stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT if out is not None else None, cwd=self.cwd,
                env=environ, start_new_session=True,
                preexec_fn=(niced(nice) if nice else die_with_parent)
                if sys.platform == "linux" else None)
        self.started.append((name, proc))
        return proc

    def wait_until(self, condition: Callable[[], T], timeout: float, what: str,
                   watch: subprocess.Popen[bytes] | Sequence[subprocess.Popen[bytes]] = (),
                   interval: float = 0.02,
                   cancelled: Callable[[], bool] = lambda: False) -> T | None:
        """Poll ``condition`` until it returns something truthy, and return that.

        ``ConfigError`` when a child of ``watch`` exits first or ``timeout`` passes;
        ``None`` when ``cancelled()`` (the parent is being stopped) before either.
        """
        watched = [watch] if isinstance(watch, subprocess.Popen) else list(watch)
        deadline = time.monotonic() + timeout
        while True:
            for proc in watched:
                if proc.poll() is not None:
                    name = next((n for n, p in self.started if p is proc), "child")
                    raise ConfigError(f"the {name} exited with status {proc.returncode} "
                                      f"while waiting for {what}")
            if cancelled():
                return None
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise ConfigError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(interval)

    def stop(self) -> None:
        """SIGTERM every child's group (the last started first), SIGKILL what outlives
        the grace period, and reap them all."""
        for _, proc in reversed(self.started):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for name, proc in self.started:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s: killing it", name, self.stop_grace)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
