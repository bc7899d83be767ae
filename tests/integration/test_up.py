"""``lifenet up`` beside another game, and what a player hears at a wrong address:
real ``lifenet`` processes on random loopback ports."""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from server.tools.children import listens, port_in_use
from server.tools.up import Embedded
from shared.errors import ConfigError
from shared.rle import parse_rle
from tests.conftest import ROOT, Processes, free_port, wait_for

pytestmark = pytest.mark.integration


def lifenet(*args: str, timeout: float = 60,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error")]


def three_ports() -> dict[str, int]:
    return {"worker": free_port(), "player": free_port(), "frame": free_port()}


def port_args(ports: dict[str, int]) -> list[str]:
    return [arg for role, port in ports.items() for arg in (f"--{role}-port", str(port))]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """Another program listening on a free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))
        s.listen()
        yield s


def status_json(player: int) -> dict[str, object] | None:
    result = lifenet("status", "--connect", f"127.0.0.1:{player}", "--json",
                     "--timeout", "1")
    return json.loads(result.stdout) if result.returncode == 0 else None


def test_port_checks_see_a_listener_and_who_it_is(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    assert port_in_use("127.0.0.1", port) and port_in_use("0.0.0.0", port)
    assert not port_in_use("127.0.0.1", free_port())
    assert listens(os.getpid(), port) is True
    assert listens(os.getpid(), free_port()) is False


@pytest.mark.parametrize("option", ["worker", "player", "frame"])
def test_a_port_given_and_taken_is_one_line_before_anything_starts(
        listener: socket.socket, option: str) -> None:
    ports = {**three_ports(), option: listener.getsockname()[1]}
    began = time.monotonic()
    result = lifenet("up", "--headless", "--generations", "1", *port_args(ports))
    assert result.returncode == 1
    assert errors(result.stderr) == [
        f"Error: port {ports[option]} is already in use (another lifenet up?); choose "
        f"another with --{option}-port or leave the defaults to pick free ports"], \
        result.stderr
    assert "keys:" not in result.stderr  # nothing was made, nothing started
    assert time.monotonic() - began < 20


def test_a_port_from_the_environment_names_its_variable(listener: socket.socket) -> None:
    ports = three_ports()
    del ports["frame"]
    result = lifenet("up", "--headless", "--generations", "1", *port_args(ports),
                     env={"LIFENET_UP_FRAME_PORT": str(listener.getsockname()[1])})
    assert result.returncode == 1
    assert "choose another with --frame-port or LIFENET_UP_FRAME_PORT" in \
        errors(result.stderr)[0]


def test_the_same_port_twice_is_refused() -> None:
    port = str(free_port())
    result = lifenet("up", "--headless", "--player-port", port, "--frame-port", port,
                     "--worker-port", str(free_port()))
    assert result.returncode == 1
    assert "the worker, player and frame ports must differ" in errors(result.stderr)[0]


def test_a_second_up_on_taken_default_ports_runs_its_own_game(processes: Processes,
                                                              tmp_path: Path) -> None:
    """The first game holds the ports the second would take by default: the second
    picks free ones, says which in one line, and plays its own world to the end while
    the first is left alone (none of its workers or bots join the first)."""
    first = three_ports()
    processes.lifenet("up", "--headless", "--workers", "1", "--tick", "0.05",
                      *port_args(first))
    wait_for(lambda: (r := status_json(first["player"])) and r["workers"] == 1, 30,
             what="the first game's worker")
    out = tmp_path / "out.rle"
    # The first game's ports as the second's defaults (lifenet's own, 5555-5557, may be
    # another test's or another user's on this machine).
    defaults = {f"{role}_port": port for role, port in first.items()}
    code = ("import sys\nfrom server.cli import main\n"
            f"main(sys.argv[1:], default_map={{'up': {defaults!r}}})\n")
    result = subprocess.run(
        [sys.executable, "-c", code, "up", "--headless", "--workers", "2", "--bots", "1",
         "--size", "16x16", "--generations", "32", "--tick", "0.02", "--out", str(out)],
        capture_output=True, text=True, timeout=90, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "default ports are in use" in line]
    assert len(said) == 1, result.stderr
    moved = [int(p) for p in re.findall(r"(\d+) \((?:workers|players|frames)\)", said[0])]
    assert len(moved) == 3 and not set(moved) & set(first.values())
    assert "Error" not in result.stderr
    assert parse_rle(out.read_text()).codes.shape == (16, 16)  # its own world, not 64x64
    report = status_json(first["player"])
    assert report is not None and report["workers"] == 1 and report["players"] == 0


def test_up_does_not_take_another_game_for_its_own(processes: Processes) -> None:
    """Past the port checks (a race), up's server cannot bind the player port that
    another game answers on: up sees that the answer is not its server's, starts no
    worker, and says the server's own reason."""
    other = three_ports()
    processes.lifenet("server", "--tick", "0.05", *port_args(other))
    wait_for(lambda: status_json(other["player"]), 30, what="the other game")
    embedded = Embedded(server_argv=["--worker-port", str(free_port()), "--player-port",
                                     str(other["player"]), "--frame-port", str(free_port())],
                        worker_argv=[], workers=2, bots=1, host="127.0.0.1",
                        player_port=other["player"], frame_port=free_port(),
                        worker_port=free_port())
    try:
        with pytest.raises(ConfigError) as caught:
            embedded.start()
        assert [name for name, _ in embedded.children.started] == ["server"]
    finally:
        embedded.shutdown()
    message = str(caught.value)
    assert message.startswith("the server exited with status 1 while starting: ")
    assert f"cannot listen on tcp://127.0.0.1:{other['player']}: Address already in use" \
        in message, message


def test_the_server_s_reason_ends_up_s_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.lns"
    garbage.write_bytes(b"not a snapshot at all" * 10)
    result = lifenet("up", "--headless", "--restore", str(garbage),
                     *port_args(three_ports()), env={"LIFENET_SNAPSHOT_KEY": "a test key"})
    assert result.returncode == 1
    assert errors(result.stderr)[-1] == ("Error: the server exited with status 1 while "
                                         "starting: garbage.lns is not a lifenet snapshot "
                                         "(wrong magic)"), result.stderr


def test_status_without_a_server_says_what_to_do_within_its_timeout() -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    began = time.monotonic()
    result = lifenet("status", "--connect", endpoint, "--timeout", "1")
    took = time.monotonic() - began
    assert result.returncode == 1
    assert errors(result.stderr) == [
        f"Error: no lifenet server answers at {endpoint} within 1 s: is one running? "
        "(`lifenet up` starts one; players connect to the player port, 5556 by default; "
        "5555 is for workers)"], result.stderr
    assert 1 <= took < 1 + 5  # its timeout, and the start-up of a Python program


def test_a_worker_or_frame_port_is_named_as_such(processes: Processes) -> None:
    """A plain server: its worker endpoint answers a player's STATUS with UNKNOWN_PEER
    ("say READY first"); its frame port (PUB) hangs up on a DEALER, with or without a
    failed handshake, and completes one with a SUB."""
    ports = three_ports()
    processes.lifenet("server", "--tick", "0.05", *port_args(ports))
    wait_for(lambda: status_json(ports["player"]), 30, what="the server")
    worker = lifenet("status", "--connect", f"127.0.0.1:{ports['worker']}", "--timeout", "3")
    assert worker.returncode == 1
    assert errors(worker.stderr) == [
        f"Error: tcp://127.0.0.1:{ports['worker']} is a lifenet worker port, not the "
        "player port: players use 5556 unless the server was given another "
        "--player-port"], worker.stderr
    for _ in range(3):  # the hang-up comes in two ways, by a race: the same line for both
        frames = lifenet("status", "--connect", f"127.0.0.1:{ports['frame']}",
                         "--timeout", "2")
        assert frames.returncode == 1
        assert errors(frames.stderr) == [
            f"Error: tcp://127.0.0.1:{ports['frame']} is a lifenet frame port, not the "
            "player port: players use 5556 unless the server was given another "
            "--player-port"], frames.stderr
    client = lifenet("client", "--connect", f"127.0.0.1:{ports['worker']}", "--timeout", "3")
    assert client.returncode == 1 and "is a lifenet worker port" in client.stderr
    assert "\x1b[?1049h" not in client.stdout  # the screen never opened


def test_a_frame_port_with_keys_is_named_too(processes: Processes, tmp_path: Path) -> None:
    """With keys, a DEALER's handshake with the frame port fails as with a wrong key;
    a SUB with the same key gets through, and so tells the frame port apart."""
    keys = tmp_path / "keys"
    assert lifenet("keys", "init", str(keys)).returncode == 0
    ports = three_ports()
    processes.lifenet("server", "--tick", "0.05", "--keys", str(keys), *port_args(ports))
    server_key = ["--server-key", str(keys / "server.key")]
    wait_for(lambda: lifenet("status", "--connect", f"127.0.0.1:{ports['player']}",
                             "--timeout", "1", *server_key).returncode == 0, 30,
             what="the server")
    frames = lifenet("status", "--connect", f"127.0.0.1:{ports['frame']}", "--timeout", "3",
                     *server_key)
    assert errors(frames.stderr) == [
        f"Error: tcp://127.0.0.1:{ports['frame']} is a lifenet frame port, not the player "
        "port: players use 5556 unless the server was given another --player-port"]
    worker = lifenet("status", "--connect", f"127.0.0.1:{ports['worker']}", "--timeout", "3",
                     *server_key)
    assert "is this the worker port?" in errors(worker.stderr)[0]


def test_a_local_up_s_ports_are_named_with_its_player_port(processes: Processes) -> None:
    """``up`` runs with keys of its own: a plain client would fail its handshake on
    any port, so ``up`` records its ports and a client names them from there."""
    ports = three_ports()
    processes.lifenet("up", "--headless", "--workers", "1", "--tick", "0.05",
                      *port_args(ports))
    wait_for(lambda: status_json(ports["player"]), 30, what="the game")
    for role in ("worker", "frame"):
        result = lifenet("status", "--connect", f"127.0.0.1:{ports[role]}")
        assert errors(result.stderr) == [
            f"Error: tcp://127.0.0.1:{ports[role]} is a lifenet {role} port, not the "
            f"player port: players use {ports['player']} (the lifenet up running here)"]
    nothing = f"127.0.0.1:{free_port()}"
    result = lifenet("status", "--connect", nothing, "--timeout", "0.5")
    assert f"a lifenet up here takes players on port {ports['player']}" in \
        errors(result.stderr)[0]


def test_client_without_a_server_fails_in_one_line_and_opens_no_screen() -> None:
    import pty

    primary, secondary = pty.openpty()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    try:
        began = time.monotonic()
        client = subprocess.run(
            [sys.executable, "-m", "server", "client", "--connect", endpoint,
             "--timeout", "1"], stdin=secondary, stdout=secondary, stderr=subprocess.PIPE,
            cwd=ROOT, timeout=60)
        took = time.monotonic() - began
        os.close(secondary)
        screen = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
    finally:
        os.close(primary)
    assert client.returncode == 1
    stderr = client.stderr.decode()
    assert stderr.startswith(f"Error: no lifenet server answers at {endpoint} within 1 s")
    assert len(stderr.splitlines()) == 1
    assert b"\x1b[" not in screen  # no full screen was opened, not even for a moment
    assert took < 1 + 5


def test_the_live_view_of_a_big_world_shows_its_middle_through_a_viewport() -> None:
    """``lifenet up`` on a 2048x2048 world (above ``view.REGION_CELLS``), in a terminal:
    the status line says which middle part it shows, the world's size beside it, and
    Ctrl-C stops everything with status 0."""
    import pty
    import signal

    primary, secondary = pty.openpty()
    ports = three_ports()
    env = {**os.environ, "COLUMNS": "100", "LINES": "30"}
    up = subprocess.Popen(
        [sys.executable, "-m", "server", "up", "--size", "2048x2048", "--workers", "1",
         "--bots", "0", "--no-web", "--tick", "0.2", "--fill", "0.2", *port_args(ports)],
        stdin=secondary, stdout=secondary, stderr=subprocess.PIPE, cwd=ROOT, env=env,
        start_new_session=True)
    os.close(secondary)
    screen = b""
    try:
        deadline = time.monotonic() + 60
        while b"the middle" not in screen:
            assert up.poll() is None, up.stderr.read() if up.stderr else ""
            assert time.monotonic() < deadline, screen[-2000:]
            ready = select.select([primary], [], [], 0.5)[0]
            if ready:
                screen += os.read(primary, 65536)
        assert b"world 2048x2048, the middle 464x800" in screen  # 1:8 of 100x30
    finally:
        up.send_signal(signal.SIGINT)
        try:
            assert up.wait(30) == 0
        finally:
            if up.poll() is None:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait()
            os.close(primary)


def test_a_taken_default_browser_port_is_replaced_and_a_given_one_refused(
        listener: socket.socket, capsys: pytest.CaptureFixture[str]) -> None:
    from click.core import ParameterSource

    from server.cli.up import choose_http, up

    taken = listener.getsockname()[1]
    ctx = click.Context(up)
    ctx.set_parameter_source("http", ParameterSource.DEFAULT)
    chosen = choose_http(ctx, f"127.0.0.1:{taken}")
    host, port = chosen.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) != taken and not port_in_use(host, int(port))
    assert f"port {taken} is in use" in capsys.readouterr().err
    ctx.set_parameter_source("http", ParameterSource.COMMANDLINE)
    with pytest.raises(click.ClickException, match=f"port {taken} is already in use"):
        choose_http(ctx, f"127.0.0.1:{taken}")


def test_up_serves_the_browser_client(processes: Processes) -> None:
    """``up --web``: the gateway starts after the server and its URL is said once it
    listens; the page's frames come through CURVE with up's own keys."""
    proc = processes.lifenet("up", "--headless", "--web", "--http", "127.0.0.1:0",
                             "--workers", "1", "--tick", "0.05", *port_args(three_ports()))
    said = wait_for(lambda: re.search(r"the browser client: (http://\S+)",
                                      processes.log_of(proc)), 60,
                    what="the browser client's URL")
    url = said.group(1)
    with urllib.request.urlopen(url, timeout=5) as page:
        assert b"<canvas" in page.read()

    def generation() -> object:
        with urllib.request.urlopen(f"{url}healthz", timeout=5) as reply:
            return json.load(reply)["generation"]

    wait_for(generation, 30, what="frames through the gateway (CURVE, up's keys)")
    assert proc.poll() is None
