"""``lifenet up``, the embedded default: a server, its workers and bots as local processes.

The children are real processes talking over real loopback sockets, exactly as they
would across machines, started and stopped by ``server.tools.children``: a Ctrl-C in
the terminal reaches only ``up``, which then stops the children in order.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import zmq

from server.tools import view
from server.tools.children import LocalProcesses
from shared.errors import ConfigError, LifenetError, PeerGone
from shared.frames import FrameView
from shared.keys import PUBLIC_SUFFIX, Credentials
from shared.remote import status

READY_TIMEOUT = 30.0


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
    keys: Path | None = None  # the keys directory: CURVE everywhere, workers by key
    stop_event: threading.Event = field(default_factory=threading.Event)
    children: LocalProcesses = field(init=False)
    credentials: Credentials | None = field(init=False)

    def __post_init__(self) -> None:
        self.children = LocalProcesses(log_level=self.log_level)
        self.credentials = None
        if self.keys is not None:  # up's own status requests and live view
            self.credentials = Credentials.of(self.keys / f"server{PUBLIC_SUFFIX}")

    @property
    def connect_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "*") else self.host

    @property
    def player_endpoint(self) -> str:
        return f"tcp://{self.connect_host}:{self.player_port}"

    def start(self) -> None:
        """The server, once it answers; then its workers and the bots."""
        output = self.log_file
        server = self.children.start("server", ["server", *self.server_argv], output)
        ready = self.children.wait_until(
            self._answers, READY_TIMEOUT, f"the server to answer on {self.player_endpoint}",
            watch=server, cancelled=self.stop_event.is_set)
        if ready is None:
            return  # stopped while starting: shutdown() ends what was started
        worker_keys = ["--keys", str(self.keys)] if self.keys else []
        for i in range(self.workers):
            self.children.start(f"worker-{i + 1}", [
                "worker", "--connect", f"tcp://{self.connect_host}:{self.worker_port}",
                "--name", f"local-{i + 1}", *worker_keys, *self.worker_argv], output)
        if self.bots:
            bot_keys = (["--server-key", str(self.keys / f"server{PUBLIC_SUFFIX}")]
                        if self.keys else [])
            self.children.start("bots", [
                "bot", "--connect", self.player_endpoint, "--count", str(self.bots),
                "--strategy", self.bot_strategy, *bot_keys], output)

    def _answers(self) -> bool:
        try:
            status(self.player_endpoint, timeout=0.5, credentials=self.credentials)
        except PeerGone:
            return False
        return True

    def server_returncode(self) -> int | None:
        started = self.children.started
        return started[0][1].poll() if started else None

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
        world = FrameView(f"tcp://{self.connect_host}:{self.frame_port}", context,
                          self.credentials)
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
        """Stop every child, bots and workers before the server (``LocalProcesses.stop``)."""
        self.children.stop()


def run_up(embedded: Embedded, headless: bool) -> int:
    """Start everything, watch or wait, and always stop every process started."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        embedded.stop_event.set()

    # SIGHUP too: a closed terminal stops everything (and removes up's keys) as Ctrl-C does.
    previous = {s: signal.signal(s, on_signal)
                for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
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
