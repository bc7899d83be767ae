"""An in-process server (real sockets, real threads) for tests that drive it step by step.

The server's threads run in the test process so a test can call ``engine.step()`` and
read the world directly; its workers are real child processes on real loopback sockets.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq

from server.app import Server
from server.config import ServerConfig
from shared.errors import Closed, SimulationError
from tests.conftest import Processes, free_port, wait_for

pytestmark = pytest.mark.integration

MakeServer = Callable[..., Server]


@pytest.fixture
def make_server() -> Iterator[MakeServer]:
    """Build and start in-process servers on free ports; close them all at teardown."""
    servers: list[Server] = []

    def make(**kwargs: Any) -> Server:
        defaults: dict[str, Any] = dict(
            worker_port=free_port(), player_port=free_port(), frame_port=free_port(),
            tick=0.0, heartbeat=0.2, batch_timeout=5.0, dispatchers=4)
        defaults.update(kwargs)
        server = Server(ServerConfig(**defaults))
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.close()


def worker_endpoint(server: Server) -> str:
    return server.broker.bound_endpoint


def start_workers(processes: Processes, server: Server, n: int, *args: str) -> list[Any]:
    """Start ``n`` worker processes and wait until the server counts them."""
    before = server.broker.worker_count()
    procs = [processes.worker(worker_endpoint(server), *args) for _ in range(n)]
    wait_for(lambda: server.broker.worker_count() >= before + n, 20,
             what=f"{n} workers to join")
    return procs


@pytest.fixture
def zmq_context() -> Iterator[zmq.Context[Any]]:
    """A context for a test's own sockets; the test fails if one is left open."""
    ctx: zmq.Context[Any] = zmq.Context()
    yield ctx
    open_sockets = [s for s in ctx._sockets if not s.closed] if hasattr(ctx, "_sockets") \
        else []
    for s in open_sockets:
        s.close(linger=0)
    ctx.term()
    assert not open_sockets, f"{len(open_sockets)} sockets were left open"


def send_oversize(context: zmq.Context[Any], endpoint: str, frames: list[bytes],
                  timeout: float = 5.0) -> str:
    """Send ``frames`` from a new DEALER and tell what the server did about them:
    ``"dropped"`` (it closed the connection, as its MAXMSGSIZE makes ZeroMQ do), or
    ``"reply <kind> <code>"``, or ``"nothing"`` when neither happened in ``timeout``."""
    from zmq.utils.monitor import recv_monitor_message

    from shared import protocol

    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, 60_000)  # one connection only: no reconnect
    monitor = sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
    try:
        sock.connect(endpoint)
        deadline = time.monotonic() + timeout
        while recv_monitor_message(monitor)["event"] != zmq.EVENT_CONNECTED:
            assert time.monotonic() < deadline, f"no connection to {endpoint}"
        sock.send_multipart(frames)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        while (left := deadline - time.monotonic()) > 0:
            ready = dict(poller.poll(int(left * 1000)))
            if monitor in ready and \
                    recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED:
                return "dropped"
            if sock in ready:
                reply = protocol.decode(sock.recv_multipart())
                return f"reply {reply.kind} {reply.body.get('code')}"
        return "nothing"
    finally:
        sock.disable_monitor()
        monitor.close()
        sock.close()


def step_ms(server: Server, generations: int) -> float:
    """The median milliseconds of ``generations`` steps."""
    times = []
    for _ in range(generations):
        began = time.perf_counter()
        server.advance()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def advance_in_thread(server: Server) -> tuple[threading.Thread, threading.Event]:
    """Step one generation in a thread; the event is set when it is done."""
    done = threading.Event()

    def step() -> None:
        # Stopping the server ends a waiting generation (Closed, or a batch failed
        # with "server stopping"): the test has asserted what it wanted by then.
        with contextlib.suppress(Closed, SimulationError):
            server.advance()
            done.set()

    thread = threading.Thread(target=step)
    thread.start()
    return thread, done
