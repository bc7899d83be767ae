"""CURVE on every endpoint: workers by allow-list, operators by key, sessions bound to keys.

Real servers with keys (``lifenet keys init``), real worker processes, and hand-held
sockets that play the other side: a worker without a key, with the wrong server key,
with a key nobody listed; a player holding someone else's token.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import zmq

from client.session import PlayerSession
from server.cli import main
from server.config import ServerConfig
from server.world import build_world
from shared import protocol
from shared.errors import HandshakeError, RemoteError
from shared.grid import Grid
from shared.keys import Credentials, KeyPair, init_keys, write_pair
from shared.life import simulate, simulate_many
from shared.protocol import ErrorCode, Kind
from shared.remote import request, status
from shared.rle import parse_rle
from tests.conftest import ROOT, Processes, free_port, wait_for
from tests.integration.conftest import MakeServer, advance_in_thread, start_workers


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    init_keys(directory)
    return directory


class Rogue:
    """A socket on the worker endpoint that says READY (again and again) and counts
    every message the server sends it: a batch would be a breach."""

    def __init__(self, context: zmq.Context[Any], endpoint: str,
                 credentials: Credentials | None) -> None:
        self.sock: zmq.Socket[Any] = context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if credentials is not None:
            credentials.apply(self.sock)
        self.sock.connect(endpoint)
        self.received: list[str] = []

    def pester(self) -> None:
        """Say READY, and read whatever came."""
        with contextlib.suppress(zmq.Again):
            self.sock.send_multipart(protocol.encode(protocol.message(
                Kind.READY, version=protocol.PROTOCOL_VERSION, name="rogue", pid=1,
                credit=256, io_latency=0.0)), zmq.NOBLOCK)
        while self.sock.poll(0):
            frames = self.sock.recv_multipart()
            self.received.append(protocol.decode(frames).kind)

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def pestering(rogues: list[Rogue]) -> Iterator[None]:
    """The rogues say READY every 50 ms in a thread while the block runs."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.05):
            for rogue in rogues:
                rogue.pester()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_only_listed_worker_keys_get_batches_and_unlisting_stops_one(
        make_server: MakeServer, processes: Processes, keys: Path, tmp_path: Path,
        zmq_context: zmq.Context[Any]) -> None:
    server = make_server(size=(24, 32), keys=keys)
    endpoint = server.broker.bound_endpoint
    elsewhere = tmp_path / "elsewhere"
    init_keys(elsewhere)
    unlisted = write_pair(tmp_path, "stranger")
    server_key = server.keys.pair.public if server.keys else b""
    rogues = [
        Rogue(zmq_context, endpoint, None),  # no key at all
        Rogue(zmq_context, endpoint,  # a valid pair, but another server's key
              Credentials(Credentials.in_dir(elsewhere, "worker").server,
                          Credentials.in_dir(keys, "worker").own)),
        Rogue(zmq_context, endpoint, Credentials(server_key, unlisted)),  # not listed
    ]
    try:
        with pestering(rogues):
            # Nobody admitted: the generation waits, and nothing reached the rogues.
            thread, done = advance_in_thread(server)
            assert not done.wait(1.0)
            assert server.broker.worker_count() == 0
            assert server.gatekeeper is not None and server.gatekeeper.refused >= 1
            # A listed worker computes; the world is the reference's.
            expected = simulate(server.engine.grid.copy(), server.rule)
            [worker] = start_workers(processes, server, 1, "--keys", str(keys))
            assert done.wait(20)
            thread.join()
            assert server.engine.grid == expected
            expected = simulate_many(expected, 3, server.rule)
            for _ in range(3):
                server.advance()
            assert server.engine.grid == expected
        assert [r.received for r in rogues] == [[], [], []]
        # Off the list: dropped within a reload, and no batch after.
        (keys / "authorized" / "workers" / "worker.key").unlink()
        wait_for(lambda: server.broker.worker_count() == 0, 10, what="the worker dropped")
        thread, done = advance_in_thread(server)
        assert not done.wait(1.5), "a generation was computed by an unlisted worker"
        assert worker.poll() is None  # alive, reconnecting, refused
        server.stop()
        thread.join(10)
    finally:
        for rogue in rogues:
            rogue.close()


def lifenet(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def test_a_client_without_or_with_a_wrong_server_key_hears_so_at_once(
        make_server: MakeServer, keys: Path, tmp_path: Path) -> None:
    server = make_server(size=(8, 8), keys=keys)
    connect = server.lobby.bound_endpoint
    ok = lifenet("status", "--connect", connect, "--server-key", str(keys / "server.key"),
                 "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["size"] == [8, 8]
    began = time.monotonic()
    plain = lifenet("status", "--connect", connect, "--timeout", "20")
    assert plain.returncode == 1
    assert plain.stderr.strip().splitlines() == [
        f"Error: the server at {connect} encrypts its connections (CURVE): pass "
        "--server-key FILE (its keys directory's server.key)"]
    other = tmp_path / "other"
    init_keys(other)
    wrong = lifenet("status", "--connect", connect, "--server-key", str(other / "server.key"),
                    "--timeout", "20")
    assert wrong.returncode == 1
    assert len(wrong.stderr.strip().splitlines()) == 1
    assert "the server key used is not this server's" in wrong.stderr
    assert time.monotonic() - began < 15, "a refused handshake waited for the timeout"


def test_snapshots_are_for_operators(make_server: MakeServer, keys: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFENET_SNAPSHOT_KEY", "operators only")
    server = make_server(size=(8, 8), keys=keys, snapshot_dir=tmp_path / "snaps",
                         snapshot_iterations=200_000)
    endpoint = server.lobby.bound_endpoint
    ask = protocol.message(Kind.SNAPSHOT, version=protocol.PROTOCOL_VERSION)
    for player in (Credentials.of(keys / "server.key"),
                   Credentials.in_dir(keys, "worker")):
        with pytest.raises(RemoteError) as refused:
            request(endpoint, ask, 5, credentials=player)
        assert refused.value.code == ErrorCode.NOT_ALLOWED
        assert "operators" in refused.value.reason
    replies: list[protocol.Message] = []
    asking = threading.Thread(target=lambda: replies.append(request(
        endpoint, ask, 30, credentials=Credentials.in_dir(keys, "operator"))))
    asking.start()
    writer = server.snapshotter
    assert writer is not None
    wait_for(lambda: writer._asked.qsize() == 1, 10, what="the operator's request queued")
    server._snapshot_if_due(periodic=False)  # the loop's generation boundary
    asking.join(30)
    [reply] = replies
    assert reply.kind is Kind.SNAPSHOT_REPLY and Path(reply["path"]).exists()
    # The status names the workers' hosts to operators only.
    player_view = status(endpoint, credentials=Credentials.of(keys / "server.key"))
    operator_view = status(endpoint, credentials=Credentials.in_dir(keys, "operator"))
    assert "worker_names" not in player_view and "worker_names" in operator_view


def test_a_token_works_only_from_the_key_that_joined(make_server: MakeServer, keys: Path,
                                                     zmq_context: zmq.Context[Any]) -> None:
    server = make_server(size=(8, 8), keys=keys)
    endpoint = server.lobby.bound_endpoint
    alice = PlayerSession(endpoint, "alice", context=zmq_context,
                          credentials=Credentials.of(keys / "server.key"))
    mallory = PlayerSession(endpoint, "mallory", context=zmq_context,
                            credentials=Credentials.of(keys / "server.key"))
    try:
        alice.join()
        assert alice.ping()["energy"] > 0
        mallory.player, mallory.token = alice.player, alice.token  # the stolen token
        with pytest.raises(RemoteError, match="bound to another key") as refused:
            mallory.ping()
        assert refused.value.code == ErrorCode.NOT_ALLOWED
        with pytest.raises(RemoteError, match="bound to another key"):
            mallory.join(alice.token)
        with pytest.raises(RemoteError, match="bound to another key"):
            mallory.place(0, 0, cells=[(0, 0)])
        assert alice.ping()["energy"] > 0  # alice is still alice
        # The same key on a new connection is still alice (a client that reconnects).
        assert alice.reconnect()["rejoined"]
    finally:
        alice.close()
        mallory.close()


def test_a_plain_client_cannot_talk_to_a_server_with_keys(make_server: MakeServer,
                                                          keys: Path) -> None:
    server = make_server(size=(8, 8), keys=keys)
    with pytest.raises(HandshakeError, match="encrypts its connections"):
        status(server.lobby.bound_endpoint, timeout=10)


@pytest.mark.timeout(30)
def test_a_refused_handshake_is_said_in_time_when_the_request_has_nowhere_to_go(
        make_server: MakeServer, keys: Path) -> None:
    """A DEALER whose handshake failed has no connection to queue a request on, and a
    blocking send then waits for ever, past the request's deadline (one ``status`` in
    about 300 hung so against a server with keys). Sockets that queue only on finished
    handshakes (``ZMQ_IMMEDIATE``) make that the case every time: the refusal is still
    said, in time, by ``request`` (what ``status`` sends) and by a player's
    session."""
    server = make_server(size=(8, 8), keys=keys)
    context: zmq.Context[Any] = zmq.Context()
    context.setsockopt(zmq.IMMEDIATE, 1)  # the default of every socket it makes
    try:
        began = time.monotonic()
        with pytest.raises(HandshakeError, match="encrypts its connections"):
            request(server.lobby.bound_endpoint, protocol.message(
                Kind.STATUS, version=protocol.PROTOCOL_VERSION), timeout=5, context=context)
        assert time.monotonic() - began < 2.5  # the refusal, not the 5 s deadline
        session = PlayerSession(server.lobby.bound_endpoint, "plain", timeout=5,
                                context=context)
        try:
            began = time.monotonic()
            with pytest.raises(HandshakeError, match="encrypts its connections"):
                session.join()
            assert time.monotonic() - began < 2.5
        finally:
            session.close()
    finally:
        context.destroy(linger=0)


def test_without_keys_the_server_stays_on_loopback(tmp_path: Path) -> None:
    refused = lifenet("server", "--host", "0.0.0.0", "--worker-port", "0", "--player-port",
                      "0", "--frame-port", "0", "--generations", "0")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "Error: --host 0.0.0.0 without --keys")
    allowed = lifenet("server", "--host", "0.0.0.0", "--insecure", "--worker-port", "0",
                      "--player-port", "0", "--frame-port", "0", "--generations", "0")
    assert allowed.returncode == 0, allowed.stderr


def secrets_in(directory: Path) -> list[bytes]:
    """Every secret key in a keys directory, as it would be written on a command line."""
    found = []
    for path in directory.glob("*.key_secret"):
        for line in path.read_bytes().splitlines():
            if b"secret-key" in line:
                found.append(line.split(b'"')[1])
    return found


def assert_no_secret_on_a_command_line(secrets: list[bytes]) -> None:
    """No process's ``/proc/PID/cmdline`` (readable by every user) holds a secret."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            line = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        for secret in secrets:
            assert secret not in line, f"pid {pid}'s command line holds a secret: {line!r}"


def test_lifenet_up_is_secure_by_default(processes: Processes, tmp_path: Path,
                                        state_dir: Path, zmq_context: zmq.Context[Any]) -> None:
    """``up`` makes keys of its own: a worker without them gets no batch while the world
    is the reference's, its local client finds the server key by itself, and no secret
    (keys, the snapshot password) is on any command line while it runs."""
    ports = [free_port() for _ in range(3)]
    out = tmp_path / "out.rle"
    password = "a snapshot password nobody may see"
    up = processes.lifenet(
        "up", "--headless", "--workers", "2", "--size", "32x32", "--seed", "3",
        "--tick", "0.05", "--generations", "60", "--out", str(out),
        "--worker-port", str(ports[0]), "--player-port", str(ports[1]),
        "--frame-port", str(ports[2]), "--snapshot-dir", str(tmp_path / "snaps"),
        "--snapshot-every", "20", env={"LIFENET_SNAPSHOT_KEY": password})
    own = state_dir / "up" / str(ports[1])
    wait_for(lambda: (own / "authorized" / "operators" / "operator.key").exists(), 20,
             what="up's keys")
    secrets = [*secrets_in(own), password.encode()]
    assert len(secrets) == 4
    rogue = Rogue(zmq_context, f"tcp://127.0.0.1:{ports[0]}", None)
    stranger = Rogue(zmq_context, f"tcp://127.0.0.1:{ports[0]}",
                     Credentials.of(own / "server.key"))  # the right server, not listed
    try:
        with pestering([rogue, stranger]):
            # A local client finds up's keys without a flag.
            found = lifenet("status", "--connect", f"127.0.0.1:{ports[1]}", "--json",
                            "--timeout", "20")
            assert found.returncode == 0, found.stderr
            checks = 0
            while up.poll() is None:
                assert_no_secret_on_a_command_line(secrets)
                checks += 1
                with contextlib.suppress(subprocess.TimeoutExpired):
                    up.wait(0.05)
            assert checks >= 3, "up ended before its command lines were looked at"
            assert up.returncode == 0, processes.log_of(up)
        assert rogue.received == [] and stranger.received == []
    finally:
        rogue.close()
        stranger.close()
    start, rule = build_world(ServerConfig(size=(32, 32), seed=3))
    assert Grid.from_codes(parse_rle(out.read_text()).codes) == simulate_many(start, 60, rule)
    assert not own.exists(), "up left its keys behind"


def test_keys_never_go_on_a_command_line_as_values() -> None:
    """Every option that takes a key takes the name of a file or a directory."""
    def walk(command: click.Command) -> Iterator[click.Command]:
        yield command
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                yield from walk(sub)

    checked = 0
    for command in walk(main):
        for param in command.params:
            if "key" in (param.name or "") and isinstance(param, click.Option) \
                    and not param.is_flag:
                assert isinstance(param.type, click.Path), \
                    f"{command.name} {param.opts} takes a value"
                checked += 1
    assert checked >= 8


def test_a_broken_key_file_or_a_flood_of_keys_neither_stops_nor_floods_the_gatekeeper(
        make_server: MakeServer, keys: Path, zmq_context: zmq.Context[Any],
        caplog: pytest.LogCaptureFixture) -> None:
    server = make_server(size=(8, 8), keys=keys)
    gatekeeper = server.gatekeeper
    assert gatekeeper is not None
    (keys / "authorized" / "workers" / "broken.key").write_text(
        'curve\n    public-key = "' + "#" * 40 + '"\n')  # z85 raises struct.error on it
    server_key = Credentials.of(keys / "server.key").server
    rogues = [Rogue(zmq_context, server.broker.bound_endpoint,
                    Credentials(server_key, KeyPair.generate())) for _ in range(200)]
    try:
        with caplog.at_level("WARNING", logger="lifenet.auth"):
            wait_for(lambda: gatekeeper.refused >= 200, 30, what="200 refused handshakes")
        assert gatekeeper.is_alive()
        lines = [r for r in caplog.records if "refused a workers key" in r.getMessage()]
        assert 1 <= len(lines) <= 10, f"{len(lines)} log lines for 200 refusals"
        # The listed worker still gets in: the list was read, the broken file skipped.
        admitted = Rogue(zmq_context, server.broker.bound_endpoint,
                         Credentials.in_dir(keys, "worker"))
        rogues.append(admitted)
        def welcomed() -> bool:
            admitted.pester()
            return Kind.WELCOME in admitted.received

        wait_for(welcomed, 10, what="the listed worker welcomed")
    finally:
        for rogue in rogues:
            rogue.close()


def test_if_the_gatekeeper_dies_no_key_gets_in_and_the_server_stops(
        make_server: MakeServer, keys: Path, zmq_context: zmq.Context[Any]) -> None:
    server = make_server(size=(8, 8), keys=keys, generations=1000, tick=0.01)
    gatekeeper = server.gatekeeper
    assert gatekeeper is not None
    gatekeeper.stop()  # as if it had died
    gatekeeper.join(5)
    assert not gatekeeper.admits("workers", Credentials.in_dir(keys, "worker").own.public)
    assert not server.is_operator(Credentials.in_dir(keys, "operator").own.public)
    with pytest.raises(HandshakeError):  # ZAP enforced: no handshake without it
        status(server.lobby.bound_endpoint, timeout=5,
               credentials=Credentials.of(keys / "server.key"))
    assert server.run() == 1


def test_a_viewport_needs_the_servers_key_on_the_view_port_too(
        make_server: MakeServer, keys: Path, zmq_context: zmq.Context[Any]) -> None:
    from shared.viewport import Viewport

    server = make_server(size=(128, 128), fill=0.3, seed=2, keys=keys, fallback_after=0.0)
    with_key = Viewport(server.view_endpoint, server.lobby.bound_endpoint, (128, 128),
                        zmq_context, Credentials.of(keys / "server.key"))
    plain = Viewport(server.view_endpoint, server.lobby.bound_endpoint, (128, 128),
                     zmq_context)
    try:
        for v in (with_key, plain):
            v.view(0, 0, 64, 64)

        def held() -> bool:
            server.advance()
            with_key.poll(0.05)
            plain.poll(0)
            return (0, 0) in with_key.codes

        wait_for(held, 10, what="the keyed viewport's chunk")
        assert with_key.acks and not plain.acks and plain.received == 0
    finally:
        with_key.close()
        plain.close()
