"""``lifenet up``, the embedded default: a server and its workers as local processes.

The children are real processes talking over real loopback sockets, exactly as they
would across machines. Each runs in its own session, so a Ctrl-C in the terminal reaches
only ``up``, which then stops the children in order (SIGTERM, then SIGKILL after a grace
period). On Linux each child also asks the kernel for SIGTERM should ``up`` die without
cleaning up, so no worker is left reconnecting forever.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import IO

import zmq

from client.remote import status
from server import view
from shared.errors import ConfigError, LifenetError, PeerGone
from shared.frames import FrameView

log = logging.getLogger("lifenet.up")

READY_TIMEOUT = 30.0
STOP_GRACE = 5.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bound and released)."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Embedded:
    """The processes ``lifenet up`` started, and how to reach them."""

    server_argv: list[str]
    worker_argv: list[str]
    workers: int
    host: str
    player_port: int
    frame_port: int
    worker_port: int
    bots: int = 0
    bot_strategy: str = "random"
    log_level: str = "info"
    log_file: IO[str] | None = None
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)

    @property
    def connect_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "*") else self.host

    def _spawn(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "server", "--log-level", self.log_level, *argv]
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self.log_file or None,
            stderr=self.log_file or None, start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        self.processes.append((name, proc))
        return proc

    def start(self) -> None:
        server = self._spawn("server", ["server", *self.server_argv])
        endpoint = f"tcp://{self.connect_host}:{self.player_port}"
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if server.poll() is not None:
                raise ConfigError(f"the server exited with status {server.returncode} "
                                  "before it was ready (see its log above)")
            if self.stop_event.is_set():
                return  # stopped while starting: shutdown() ends what was started
            try:
                status(endpoint, timeout=0.5)
                break
            except PeerGone:
                if time.monotonic() > deadline:
                    raise ConfigError(f"the server did not answer on {endpoint} "
                                      f"within {READY_TIMEOUT:g} s") from None
        for i in range(self.workers):
            self._spawn(f"worker-{i + 1}", [
                "worker", "--connect", f"tcp://{self.connect_host}:{self.worker_port}",
                "--name", f"local-{i + 1}", *self.worker_argv])
        if self.bots:
            self._spawn("bots", ["bot", "--connect", endpoint, "--count", str(self.bots),
                                 "--strategy", self.bot_strategy])

    def server_returncode(self) -> int | None:
        return self.processes[0][1].poll() if self.processes else None

    def wait(self) -> int:
        """Wait for the server to finish (``--generations``) or for a stop signal."""
        while not self.stop_event.wait(0.1):
            code = self.server_returncode()
            if code is not None:
                return code
        return 0

    def watch(self) -> int:
        """Show the live world until the server finishes or a stop signal."""
        context = zmq.Context()
        world = FrameView(f"tcp://{self.connect_host}:{self.frame_port}", context)
        out = sys.stdout
        live = out.isatty()
        last_line = 0.0
        if live:
            out.write(view.ENTER)
        try:
            while not self.stop_event.is_set():
                code = self.server_returncode()
                if code is not None:
                    return code
                # Every frame and delta waiting is applied; the newest world is drawn once.
                if not world.poll(0.1) or world.codes is None:
                    continue
                if live:
                    out.write(view.render(world.codes, world.info))
                elif time.monotonic() - last_line >= 1.0:  # not a terminal: a line a second
                    last_line = time.monotonic()
                    out.write(view.summary(world.info) + "\n")
                out.flush()
            return 0
        finally:
            if live:
                out.write(view.LEAVE)
            out.flush()
            world.close()
            context.term()

    def shutdown(self) -> None:
        """SIGTERM every child (workers first), then SIGKILL what outlives the grace."""
        for _, proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for name, proc in self.processes:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s: killing it", name, STOP_GRACE)
                proc.kill()
                proc.wait()


def run_up(embedded: Embedded, headless: bool) -> int:
    """Start everything, watch or wait, and always stop every process started."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        embedded.stop_event.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        embedded.start()
        return embedded.wait() if headless else embedded.watch()
    except LifenetError:
        raise
    except (OSError, zmq.ZMQError) as e:
        raise ConfigError(f"lifenet up failed: {e}") from e
    finally:
        embedded.shutdown()
        for s, handler in previous.items():
            signal.signal(s, handler)
