"""``lifenet up``, the embedded default: a server, its workers and bots as local processes.

The children are real processes talking over real loopback sockets, exactly as they
would across machines, started and stopped by ``server.tools.children``: a Ctrl-C in
the terminal reaches only ``up``, which then stops the children in order.

``up`` never mistakes another game for its own: its server is ready when it answers a
status request *and* is still running *and* (where ``/proc`` tells) is the process
listening on the player port; until then workers and bots wait. The server's output
passes through ``up`` (``OutputTail``) on its way to the log or the terminal, so that
when the server exits, ``up``'s one line of error ends with the server's own reason.
"""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import zmq

from server.tools import view
from server.tools.children import LocalProcesses, listens, port_in_use
from shared.errors import ConfigError, HandshakeError, LifenetError, PeerGone, WrongEndpoint
from shared.frames import FrameView
from shared.keys import PUBLIC_SUFFIX, Credentials
from shared.remote import status
from shared.viewport import Viewport

READY_TIMEOUT = 30.0
TAIL_LINES = 50


class OutputTail(threading.Thread):
    """Copies a child's output, line by line, to ``sink`` (where it would have gone),
    keeping its last lines for ``reason``."""

    def __init__(self, source: IO[bytes], sink: IO[str]) -> None:
        super().__init__(name="output-tail", daemon=True)
        self.source = source
        self.sink = sink
        self.lines: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

    def run(self) -> None:
        with self.source:
            for raw in iter(self.source.readline, b""):
                line = raw.decode(errors="replace")
                self.lines.append(line.rstrip("\n"))
                try:
                    self.sink.write(line)
                    self.sink.flush()
                except (OSError, ValueError):  # the sink closed: keep the tail only
                    pass

    def reason(self) -> str | None:
        """The child's last error, in its own words (``last_error``)."""
        return last_error(list(self.lines))


def last_error(lines: Iterable[str]) -> str | None:
    """The last error a ``lifenet`` process wrote: its one-line ``Error: ...`` (click's),
    else its last ERROR or CRITICAL log line's message, else a traceback's last line."""
    lines = [line.strip() for line in lines if line.strip()]
    for line in reversed(lines):
        if line.startswith("Error: "):
            return line[len("Error: "):]
    for line in reversed(lines):
        # the log format: DATE TIME PID NAME LEVEL MESSAGE (server/cli/__init__.py)
        parts = line.split(" ", 5)
        if len(parts) == 6 and parts[4] in ("ERROR", "CRITICAL"):
            return parts[5]
    if any(line.startswith("Traceback") for line in lines):
        return lines[-1]
    return None


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
    bot_processes: int = 1  # the bots shared among this many `lifenet bot` processes
    bot_nice: int = 0  # the bots' processes this much lower in priority (a load test)
    log_level: str = "info"
    log_file: IO[str] | None = None
    keys: Path | None = None  # the keys directory: CURVE everywhere, workers by key
    http: str | None = None   # the browser client's HOST:PORT (`lifenet web`), if served
    stop_event: threading.Event = field(default_factory=threading.Event)
    children: LocalProcesses = field(init=False)
    credentials: Credentials | None = field(init=False)

    def __post_init__(self) -> None:
        self.children = LocalProcesses(log_level=self.log_level)
        self.tail: OutputTail | None = None
        self.refused: str | None = None  # why the last readiness request failed
        self.credentials = None
        if self.keys is not None:  # up's own status requests and live view
            self.credentials = Credentials.of(self.keys / f"server{PUBLIC_SUFFIX}")

    @property
    def connect_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "*") else self.host

    @property
    def url(self) -> str | None:
        """The browser client's address, to open (``None``: not served)."""
        if self.http is None:
            return None
        host, _, port = self.http.rpartition(":")
        if host in ("0.0.0.0", "[::]", "*"):
            host = "127.0.0.1"
        return f"http://{host}:{port}/"

    @property
    def player_endpoint(self) -> str:
        return f"tcp://{self.connect_host}:{self.player_port}"

    def start(self) -> None:
        """The server, once it answers as itself; then its workers and the bots."""
        output = self.log_file
        server = self.children.start("server", ["server", *self.server_argv],
                                     subprocess.PIPE)
        assert server.stdout is not None
        self.tail = OutputTail(server.stdout, output or sys.stderr)
        self.tail.start()
        try:
            ready = self.children.wait_until(
                self._answers, READY_TIMEOUT,
                f"the server to answer on {self.player_endpoint}", watch=server,
                cancelled=self.stop_event.is_set)
        except ConfigError as e:
            if server.poll() is None:  # timed out: say what the last request met
                refused = f" (the last request: {self.refused})" if self.refused else ""
                raise ConfigError(f"{e}{refused}") from e
            raise ConfigError(self.exit_message(server.returncode, "while starting")) from e
        if ready is None:
            return  # stopped while starting: shutdown() ends what was started
        worker_keys = ["--keys", str(self.keys)] if self.keys else []
        for i in range(self.workers):
            self.children.start(f"worker-{i + 1}", [
                "worker", "--connect", f"tcp://{self.connect_host}:{self.worker_port}",
                "--name", f"local-{i + 1}", *worker_keys, *self.worker_argv], output)
        if self.http is not None:
            server_key = (["--server-key", str(self.keys / f"server{PUBLIC_SUFFIX}")]
                          if self.keys else [])
            web = self.children.start("web", [
                "web", "--connect", self.player_endpoint, "--frame-port",
                str(self.frame_port), "--http", self.http, *server_key], output)
            host, _, port = self.http.rpartition(":")
            if self.children.wait_until(lambda: port_in_use(host.strip("[]"), int(port)),
                                        READY_TIMEOUT, f"the browser client on {self.http}",
                                        watch=web, cancelled=self.stop_event.is_set):
                print(f"the browser client: {self.url}", file=sys.stderr, flush=True)
        bot_keys = (["--server-key", str(self.keys / f"server{PUBLIC_SUFFIX}")]
                    if self.keys else [])
        processes = max(1, min(self.bot_processes, self.bots))
        for k in range(processes if self.bots else 0):
            count = self.bots // processes + (k < self.bots % processes)
            prefix = "bot" if processes == 1 else f"bot{k + 1}"
            self.children.start("bots" if processes == 1 else f"bots-{k + 1}", [
                "bot", "--connect", self.player_endpoint, "--count", str(count),
                "--name", prefix, "--strategy", self.bot_strategy, *bot_keys], output,
                nice=self.bot_nice)

    def _answers(self) -> bool:
        """Whether *our* server answers: it runs, a status request gets its report, and
        (where ``/proc`` tells) it is the process listening on the player port. Anything
        else answering there is another program's, which our server will fail to bind
        beside: waiting on lets ``wait_until`` see our server exit, with its reason."""
        server = self.children.started[0][1]
        if server.poll() is not None:
            return False
        try:
            status(self.player_endpoint, timeout=0.5, credentials=self.credentials)
        except PeerGone:
            return False
        except (HandshakeError, WrongEndpoint) as e:  # not our server, or not yet
            self.refused = str(e)
            return False
        if listens(server.pid, self.player_port) is False:
            self.refused = (f"another process answers on {self.player_endpoint}, not this "
                            "up's server")
            return False
        return server.poll() is None

    def exit_message(self, code: int | None, when: str = "") -> str:
        """``the server exited with status N [when]: its own last error``."""
        line = f"the server exited with status {code}" + (f" {when}" if when else "")
        if self.tail is not None:
            self.tail.join(2.0)  # the server has exited: its last lines are on their way
            reason = self.tail.reason()
            if reason:
                line += f": {reason}"
        return line

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
        """Show the live world until the server finishes or a stop signal: the whole
        world, or the middle of a large one through a viewport (``view.region_for``)."""
        context = zmq.Context()
        world = self._world_view(context)
        region: tuple[int, int, int, int] | None = None
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
                if isinstance(world, Viewport):
                    size = shutil.get_terminal_size((80, 24))
                    wanted = view.region_for(world.height, world.width, size.columns,
                                             size.lines - (self.url is not None))
                    if wanted != region:  # the terminal was resized: another middle
                        region = wanted
                        world.view(*region)
                    if not world.poll(0.1) or not world.held():
                        continue
                    codes, shape = world.cells(*region), (world.height, world.width)
                else:
                    if not world.poll(0.1) or world.codes is None:
                        continue
                    codes, shape = world.codes, None
                if live:
                    if self.url is None:
                        out.write(view.render(codes, world.info, world=shape))
                    else:  # the browser's address on the last line, under the view
                        lines = shutil.get_terminal_size((80, 24)).lines
                        out.write(view.render(codes, world.info, lines=lines - 1, world=shape)
                                  + f"\n in a browser: {self.url}\x1b[K")
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

    def _world_view(self, context: zmq.Context[Any]) -> FrameView | Viewport:
        """The whole-world frames, or for a world of more than ``view.REGION_CELLS``
        cells a viewport (its size and view port from a status request)."""
        try:
            report = status(self.player_endpoint, timeout=2.0, credentials=self.credentials)
        except LifenetError:
            report = {}
        size, port = report.get("size"), report.get("view_port")
        if size and port and size[0] * size[1] > view.REGION_CELLS:
            return Viewport(f"tcp://{self.connect_host}:{port}", self.player_endpoint,
                            (size[0], size[1]), context, self.credentials)
        return FrameView(f"tcp://{self.connect_host}:{self.frame_port}", context,
                         self.credentials)

    def shutdown(self) -> None:
        """Stop every child, bots and workers before the server (``LocalProcesses.stop``),
        and copy the server's last lines."""
        self.children.stop()
        if self.tail is not None:
            self.tail.join(2.0)


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
