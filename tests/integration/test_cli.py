"""The command line, as a user runs it: real `lifenet` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shared.grid import Grid
from shared.life import simulate_many
from shared.rle import parse_rle
from shared.rules import parse_rule
from tests.conftest import PATTERNS, ROOT, Processes, free_port, wait_for

pytestmark = pytest.mark.integration


def lifenet(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL)


def ports() -> list[str]:
    return ["--worker-port", str(free_port()), "--player-port", str(free_port()),
            "--frame-port", str(free_port())]


@pytest.mark.parametrize("pattern, rule, generations", [
    ("gosper-gun.rle", "B3/S23", 40), ("r-pentomino.rle", "B3/S23", 30),
    ("acorn.rle", "B36/S23", 25)])
def test_up_headless_writes_the_right_world(tmp_path: Path, pattern: str, rule: str,
                                            generations: int) -> None:
    out = tmp_path / "out.rle"
    result = lifenet("up", "--headless", "--workers", "2", "--size", "64x64",
                     "--pattern", str(PATTERNS / pattern), "--rule", rule,
                     "--generations", str(generations), "--out", str(out), *ports())
    assert result.returncode == 0, result.stderr
    start = Grid(64, 64)
    p = parse_rle((PATTERNS / pattern).read_text())
    top, left = (64 - p.height) // 2, (64 - p.width) // 2
    start.codes[top:top + p.height, left:left + p.width] = p.codes
    expected = simulate_many(start, generations, parse_rule(rule))
    written = parse_rle(out.read_text())
    assert written.rule == parse_rule(rule)
    assert np.array_equal(written.codes, expected.codes)
    assert out.read_text().splitlines()[1] == f"x = 64, y = 64, rule = {rule}"


def test_glider_at_a_corner_comes_home(tmp_path: Path) -> None:
    out = tmp_path / "out.rle"
    result = lifenet("up", "--headless", "--workers", "2", "--size", "16x16", "--at", "0,0",
                     "--pattern", str(PATTERNS / "glider.rle"), "--generations", "64",
                     "--out", str(out), *ports())
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines()[-1] == "bo$2bo$3o!"


@pytest.mark.parametrize("args, message", [
    (["--size", "64"], "is not HxW"),
    (["--size", "0x5"], "at least 1"),
    (["--rule", "B03/S23"], "B0"),
    (["--rule", "Q3/S23"], "B/S notation"),
    (["--at", "1;2"], "Y,X"),
    (["--fill", "2"], "--fill"),
    (["--bot-strategy", "nope"], "'nope' is not one of"),
])
def test_bad_options_give_one_line_and_nonzero_exit(args: list[str], message: str) -> None:
    result = lifenet("up", "--headless", "--generations", "1", *args)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_rle_gives_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.rle"
    bad.write_text("x = 3, y = 3\nbo$2bo$3?!\n")
    out = tmp_path / "out.rle"
    result = lifenet("up", "--headless", "--workers", "1", "--pattern", str(bad),
                     "--generations", "1", "--out", str(out), *ports())
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "unexpected character '?'" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_missing_pattern_and_too_big_pattern(tmp_path: Path) -> None:
    result = lifenet("server", "--pattern", str(tmp_path / "none.rle"), "--generations", "0",
                     *ports())
    assert result.returncode == 1 and "cannot read pattern" in result.stderr
    result = lifenet("server", "--size", "4x4", "--pattern", str(PATTERNS / "gosper-gun.rle"),
                     "--generations", "0", *ports())
    assert result.returncode == 1 and "larger than the world" in result.stderr


def test_status_json_and_a_taken_port(processes: Processes) -> None:
    args = ports()
    player = args[3]
    server = processes.lifenet("server", "--size", "12x20", "--tick", "0.05", *args)
    result = wait_for(lambda: (r := lifenet("status", "--connect", f"127.0.0.1:{player}",
                                            "--json", "--timeout", "1")).returncode == 0 and r,
                      20, what="status")
    report = json.loads(result.stdout)
    assert report["size"] == [12, 20] and report["rule"] == "B3/S23"
    for key in ("generation", "players", "workers", "population", "scores"):
        assert key in report
    clash = lifenet("server", *args, "--generations", "1")
    assert clash.returncode == 1 and "cannot listen" in clash.stderr
    assert server.poll() is None


def test_status_without_a_server_fails_in_time() -> None:
    result = lifenet("status", "--connect", f"tcp://127.0.0.1:{free_port()}",
                     "--timeout", "0.5")
    assert result.returncode == 1 and "no lifenet server answers" in result.stderr
    assert "within 0.5 s: is one running?" in result.stderr


@pytest.mark.parametrize("connect", ["127.0.0.1:abc", "http://127.0.0.1:6556",
                                     "127.0.0.1:99999"])
@pytest.mark.parametrize("command", ["status", "client", "bot"])
def test_a_bad_connect_is_one_line_without_a_traceback(command: str, connect: str) -> None:
    result = lifenet(command, "--connect", connect, timeout=30)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "Invalid value for '--connect'" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_up_stops_every_child_on_sigterm(processes: Processes) -> None:
    args = ports()
    up = processes.lifenet("up", "--headless", "--workers", "2", "--tick", "0.05", *args)
    player = args[3]
    wait_for(lambda: (r := lifenet("status", "--connect", f"127.0.0.1:{player}", "--json",
                                   "--timeout", "1")).returncode == 0
             and json.loads(r.stdout)["workers"] == 2, 30, what="two workers")
    children = subprocess.run(["pgrep", "-P", str(up.pid)], capture_output=True,
                              text=True).stdout.split()
    assert len(children) == 3
    os.kill(up.pid, signal.SIGTERM)
    assert up.wait(15) == 0
    for pid in children:
        wait_for(lambda p=int(pid): not _alive(p), 10, what=f"child {pid} to end")  # type: ignore[misc]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too; it only waits for its parent (gone) to be reaped by init.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_up_with_bots_plays_and_writes_their_colours(tmp_path: Path) -> None:
    out = tmp_path / "out.rle"
    result = lifenet("up", "--headless", "--workers", "2", "--bots", "3", "--size", "48x48",
                     "--fill", "0", "--tick", "0.05", "--generations", "60", "--energy-regen",
                     "50", "--out", str(out), *ports())
    assert result.returncode == 0, result.stderr
    codes = parse_rle(out.read_text()).codes
    # The bots joined as players 1..3 and placed patterns in their colours (codes 2..4).
    assert set(np.unique(codes).tolist()) & {2, 3, 4}, out.read_text()


def test_up_draws_every_generation_live_in_a_terminal(tmp_path: Path) -> None:
    """`lifenet up` in a terminal redraws as generations come, deltas included (the
    publisher sends a full frame only every 32 generations), with its default bots and
    rounds; its log is in the log directory, and it says so on exit."""
    import fcntl
    import pty
    import re
    import select
    import struct
    import termios
    import time

    primary, secondary = pty.openpty()
    # 60 lines of 200 columns: room for the players on the status line
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 200, 0, 0))
    logs = tmp_path / "logs"
    up = subprocess.Popen(
        [sys.executable, "-m", "server", "up", "--workers", "1", "--size", "16x32",
         "--pattern", str(PATTERNS / "glider.rle"), "--generations", "120", "--tick", "0.05",
         *ports()], stdin=secondary, stdout=secondary, stderr=subprocess.PIPE, cwd=ROOT,
        start_new_session=True, env={**os.environ, "LIFENET_LOG_DIR": str(logs)})
    os.close(secondary)
    screen = b""
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # the terminal closed: up has exited
                    break
                if not chunk:
                    break
                screen += chunk
            elif up.poll() is not None:
                break
        assert up.wait(15) == 0, up.stderr.read() if up.stderr else ""
        assert up.stderr is not None
        stderr = up.stderr.read().decode()
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
        os.close(primary)
    drawn = sorted({int(g) for g in re.findall(rb"generation (\d+)", screen)})
    assert len(drawn) >= 40, f"only generations {drawn} were drawn"
    assert drawn[-1] >= 115
    assert b"players 3: bot-" in screen  # the embedded default's bots joined and play
    assert b"round 1" in screen  # the live game has rounds by default
    assert b"world 16x32  Ctrl-C quits" in screen
    [log] = logs.glob("up-*.log")
    assert re.fullmatch(rf"up-\d{{8}}-\d{{6}}-{up.pid}\.log", log.name)
    assert f"logs of the server and workers: {log}" in stderr
    assert "bots joined" in log.read_text()  # the children's lines, not the terminal's


def test_up_with_io_latency_overlaps_the_waits(tmp_path: Path) -> None:
    """`up --io-latency`: every cell waits, the waits overlap, the world stays right."""
    import time

    out = tmp_path / "out.rle"
    began = time.monotonic()
    result = lifenet("up", "--headless", "--workers", "2", "--size", "16x16", "--pattern",
                     str(PATTERNS / "glider.rle"), "--io-latency", "0.2", "--generations",
                     "4", "--out", str(out), *ports())
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    start = Grid(16, 16)
    glider = parse_rle((PATTERNS / "glider.rle").read_text())
    top, left = (16 - glider.height) // 2, (16 - glider.width) // 2
    start.codes[top:top + glider.height, left:left + glider.width] = glider.codes
    assert np.array_equal(parse_rle(out.read_text()).codes, simulate_many(start, 4).codes)
    assert took >= 4 * 0.2  # no generation is shorter than one cell's I/O
    assert took < 30  # 4 x 256 cells x 0.2 s would be 205 s one after another


def test_up_writes_snapshots_and_restores_from_one(tmp_path: Path) -> None:
    from server.snapshot import KEY_ENV, snapshot_name

    snaps, out = tmp_path / "snaps", tmp_path / "out.rle"
    env = {**os.environ, KEY_ENV: "a key for this test only"}
    common = ["up", "--headless", "--workers", "1", "--size", "24x24", "--seed", "5",
              "--fill", "0.3"]

    def up(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "server", *common, *args, *ports()],
                              capture_output=True, text=True, timeout=90, cwd=ROOT, env=env,
                              stdin=subprocess.DEVNULL)

    result = up("--generations", "10", "--snapshot-dir", str(snaps), "--snapshot-every", "5")
    assert result.returncode == 0, result.stderr
    assert {p.name for p in snaps.iterdir()} >= {snapshot_name(5), snapshot_name(10)}
    result = up("--restore", str(snaps / snapshot_name(5)), "--generations", "12",
                "--out", str(out))
    assert result.returncode == 0, result.stderr
    start = Grid.from_codes(np.random.default_rng(5).random((24, 24)) < 0.3)
    assert np.array_equal(parse_rle(out.read_text()).codes, simulate_many(start, 12).codes)


# Patterns people already have: the world sized for them, their rule, their formats.

def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error")]


def test_server_sizes_the_world_for_the_pattern_and_runs_its_rule(tmp_path: Path) -> None:
    pattern, out = tmp_path / "highlife.rle", tmp_path / "out.rle"
    pattern.write_text("#N A glider in HighLife\nx = 3, y = 3, rule = S23/B36\nbo$2bo$3o!\n")
    result = lifenet("server", "--pattern", str(pattern), "--generations", "0",
                     "--out", str(out), *ports())
    assert result.returncode == 0, result.stderr
    # 3 + 2 x 32 cells of room, rounded up to 80; the file's rule, said in no warning
    assert out.read_text().splitlines()[1] == "x = 80, y = 80, rule = B36/S23"
    assert "WARNING" not in result.stderr
    result = lifenet("server", "--pattern", str(pattern), "--rule", "b3/s23",
                     "--generations", "0", "--out", str(out), *ports())
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].endswith("highlife.rle says rule B36/S23; --rule B3/S23 wins")
    assert out.read_text().splitlines()[1] == "x = 80, y = 80, rule = B3/S23"


def test_a_golly_torus_is_the_world_and_other_topologies_are_refused(tmp_path: Path) -> None:
    pattern, out = tmp_path / "torus.rle", tmp_path / "out.rle"
    pattern.write_text("#CXRLE Pos=-15,-10\nx = 3, y = 3, rule = B3/S23:T30,20\nbo$2bo$3o!\n")
    result = lifenet("server", "--pattern", str(pattern), "--generations", "0",
                     "--out", str(out), *ports())
    assert result.returncode == 0, result.stderr
    written = parse_rle(out.read_text())
    assert written.codes.shape == (20, 30)  # Golly's 30x20 torus: 20 rows of 30
    assert written.codes[:3, :3].tolist() == [[0, 1, 0], [0, 0, 1], [1, 1, 1]]  # at Pos
    pattern.write_text("x = 3, y = 3, rule = B3/S23:P30,20\nbo$2bo$3o!\n")
    result = lifenet("up", "--headless", "--workers", "1", "--pattern", str(pattern),
                     "--generations", "1", *ports())
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert error_lines(result.stderr) == [
        "Error: torus.rle:1:22: bounded grid ':P30,20' (a bounded plane) is not supported: "
        "lifenet's world is a torus, ':Twidth,height'"], result.stderr


def test_up_runs_a_life_106_pattern_in_a_world_that_fits_it(tmp_path: Path) -> None:
    pattern, out = tmp_path / "glider.lif", tmp_path / "out.rle"
    pattern.write_text("#Life 1.06\n0 -1\n1 0\n-1 1\n0 1\n1 1\n")
    result = lifenet("up", "--headless", "--workers", "2", "--pattern", str(pattern),
                     "--generations", "12", "--out", str(out), *ports())
    assert result.returncode == 0, result.stderr
    start = Grid(80, 80)
    start.codes[38:41, 38:41] = [[0, 1, 0], [0, 0, 1], [1, 1, 1]]  # centred
    written = parse_rle(out.read_text())
    assert written.rule == parse_rule("B3/S23")
    assert np.array_equal(written.codes, simulate_many(start, 12).codes)


def test_malformed_plaintext_is_one_line_naming_the_line_and_column(tmp_path: Path) -> None:
    bad, out = tmp_path / "glider.cells", tmp_path / "out.rle"
    bad.write_text("!Name: Glider\n.O.\n..O.#\nOOO\n")
    for command in (["server"], ["up", "--headless", "--workers", "1"]):
        result = lifenet(*command, "--pattern", str(bad), "--generations", "1",
                         "--out", str(out), *ports())
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert error_lines(result.stderr) == [
            "Error: glider.cells:3:5: unexpected character '#'"], result.stderr
        assert not out.exists()


def test_a_4096_world_written_by_out_is_read_back_as_it_was(tmp_path: Path) -> None:
    first, second = tmp_path / "first.rle", tmp_path / "second.rle"
    result = lifenet("server", "--size", "4096x4096", "--seed", "5", "--generations", "0",
                     "--out", str(first), *ports(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert first.stat().st_size > 8 << 20  # once refused: more than 4 MiB of RLE
    result = lifenet("server", "--pattern", str(first), "--generations", "0",
                     "--out", str(second), *ports(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "world 4096x4096 B3/S23" in result.stderr  # lifenet's own world: its own size
    assert first.read_bytes() == second.read_bytes()
