"""The ``openssl`` children of a snapshot operation (Effective Python item 52).

Each operation starts its children with ``subprocess.Popen`` and runs them side by side
like a UNIX pipeline, under one deadline: a watchdog kills every child's process group
when it passes (which also unblocks any thread reading or writing their pipes), and every
child is reaped and its return code checked (a failed stage in a pipeline lets the next
one exit 0 on empty input). ``Popen.communicate(timeout=...)`` is not used: it leaves the
child running on timeout. The password reaches ``openssl`` through a pipe
(``-pass fd:N``), never its command line; children get no ``LIFENET_SNAPSHOT_KEY`` in
their environment.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import IO

from server.snapshot.format import Header
from server.snapshot.key import KEY_ENV, SnapshotKey
from shared.errors import SnapshotError

DEFAULT_TIMEOUT = 60.0
CHUNK = 1 << 20


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
                for i in range(0, len(view), CHUNK):
                    proc.stdin.write(view[i:i + CHUNK])
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


def enc_args(header: Header, decrypt: bool) -> list[str]:
    return ["enc", "-d" if decrypt else "-e", "-aes-256-cbc", "-pbkdf2", "-md", "sha256",
            "-iter", str(header.iterations), "-S", header.enc_salt.hex()]


DGST_ARGS = ["dgst", "-sha256", "-binary"]

