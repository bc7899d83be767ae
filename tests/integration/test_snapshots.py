"""Snapshots of running servers: round trip, periodic and requested snapshots, SIGKILL."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from server.config import ServerConfig
from server.snapshot import (
    KEY_ENV,
    MIN_ITERATIONS,
    SnapshotKey,
    WorldState,
    read_snapshot,
    save_snapshot,
    snapshot_name,
    snapshots_in,
)
from server.world import build_world
from shared.grid import Grid
from shared.life import simulate, simulate_many
from shared.remote import status
from shared.rle import parse_rle
from shared.rules import CONWAY
from tests.conftest import ROOT, Processes, free_port, wait_for
from tests.integration.conftest import MakeServer, start_workers
from tests.integration.test_distributed import random_world, run_and_compare

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("openssl") is None,
                                 reason="snapshots need the openssl command")]

SECRET = "integration key: not on any command line"
KEY = SnapshotKey(SECRET.encode())


@pytest.fixture(autouse=True)
def snapshot_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


def test_a_restored_world_continues_exactly(make_server: MakeServer, processes: Processes,
                                            tmp_path: Path) -> None:
    original = make_server(size=(24, 30), snapshot_dir=tmp_path,
                           snapshot_iterations=MIN_ITERATIONS)
    start_workers(processes, original, 2)
    expected = random_world(original, seed=5)
    for _ in range(9):
        original.engine.step()
    expected = simulate_many(expected, 9, original.rule)
    path = tmp_path / snapshot_name(9)
    save_snapshot(path, original.capture(), KEY, iterations=MIN_ITERATIONS)

    restored = make_server(restore=path, size=(3, 3))  # the snapshot's size wins
    start_workers(processes, restored, 1)
    assert restored.engine.generation == 9 and restored.engine.grid == expected
    for _ in range(12):
        expected = simulate(expected, original.rule)
        assert original.engine.step() == expected
        assert restored.engine.step() == expected
    assert restored.engine.generation == 21


def test_a_wide_world_is_restored_snapshotted_exported_and_read_back(
        make_server: MakeServer, processes: Processes, tmp_path: Path) -> None:
    """Cells of players above 254 (codes up to 65 535) through everything that writes a
    world: a format-2 snapshot restored by a server with a real worker, stepped as the
    reference steps it, snapshotted again, exported as RLE (``z`` names) by the real
    command, and read back by ``--pattern``."""
    rng = np.random.default_rng(13)
    codes = rng.choice([0, 1, 2, 300, 40000, 65535], size=(24, 30),
                       p=[.45, .15, .1, .1, .1, .1]).astype(np.uint16)
    start = Grid.from_codes(codes)
    assert start.wide
    path = tmp_path / snapshot_name(9)
    save_snapshot(path, WorldState(codes, 9, CONWAY), KEY, iterations=MIN_ITERATIONS)

    restored = make_server(restore=path, size=(3, 3))
    start_workers(processes, restored, 1)
    assert restored.engine.generation == 9 and restored.engine.grid == start
    assert restored.engine.grid.wide
    expected = run_and_compare(restored, start, 6)
    assert int(expected.codes.max()) > 255  # still wide: the cells of high players live

    again = tmp_path / snapshot_name(15)
    save_snapshot(again, restored.capture(), KEY, iterations=MIN_ITERATIONS)
    header, state = read_snapshot(again, KEY)
    assert header.version == 2 and state.codes.dtype == np.uint16
    assert Grid.from_codes(state.codes) == expected

    out = tmp_path / "wide.rle"
    export = subprocess.run(
        [sys.executable, "-m", "server", "snapshot", "export", str(again), "--rle", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=40)
    assert export.returncode == 0, export.stderr
    assert "z" in out.read_text().split("\n", 2)[2]  # the body has z names
    grid, rule = build_world(ServerConfig(size=(24, 30), pattern=out))
    assert rule == CONWAY and grid.wide and grid == expected


def test_periodic_snapshots_restore_and_export(processes: Processes, tmp_path: Path) -> None:
    snaps = tmp_path / "snaps"
    ports = [str(free_port()) for _ in range(3)]
    args = ["--worker-port", ports[0], "--player-port", ports[1], "--frame-port", ports[2],
            "--size", "20x24", "--seed", "3", "--heartbeat", "0.2"]
    server = processes.lifenet("server", *args, "--tick", "0.2", "--generations", "20",
                               "--snapshot-dir", str(snaps), "--snapshot-every", "5",
                               "--snapshot-keep", "2")
    processes.worker(f"tcp://127.0.0.1:{ports[0]}")
    assert server.wait(50) == 0, processes.log_of(server)
    names = [p.name for p in snapshots_in(snaps)]
    assert names[-1] == snapshot_name(20) and len(names) <= 2, names
    assert SECRET not in processes.log_of(server)

    start, rule = build_world(ServerConfig(size=(20, 24), seed=3))
    at_20 = simulate_many(start, 20, rule)
    out = tmp_path / "world.rle"
    export = subprocess.run(
        [sys.executable, "-m", "server", "snapshot", "export", str(snaps / names[-1]),
         "--rle", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=40)
    assert export.returncode == 0, export.stderr
    assert Grid.from_codes(parse_rle(out.read_text()).codes) == at_20

    # Restore generation 20 and run on to 26: the generation count continues.
    final = tmp_path / "final.rle"
    server = processes.lifenet("server", *args, "--tick", "0", "--generations", "26",
                               "--restore", str(snaps / names[-1]), "--out", str(final))
    assert server.wait(40) == 0, processes.log_of(server)
    assert Grid.from_codes(parse_rle(final.read_text()).codes) == simulate_many(at_20, 6,
                                                                                rule)


def test_snapshot_save_asks_a_running_server(processes: Processes, tmp_path: Path) -> None:
    snaps = tmp_path / "snaps"
    ports = [str(free_port()) for _ in range(3)]
    processes.lifenet("server", "--worker-port", ports[0], "--player-port", ports[1],
                      "--frame-port", ports[2], "--size", "16x16", "--tick", "0.05",
                      "--snapshot-dir", str(snaps))
    processes.worker(f"tcp://127.0.0.1:{ports[0]}")
    endpoint = f"tcp://127.0.0.1:{ports[1]}"
    wait_for(lambda: _generation(endpoint) >= 3, 30, what="a few generations")
    save = subprocess.run([sys.executable, "-m", "server", "snapshot", "save", "--connect",
                           f"127.0.0.1:{ports[1]}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=40)
    assert save.returncode == 0, save.stderr
    path = Path(save.stdout.strip())
    assert path.parent == snaps.resolve() and path.exists()
    _, state = read_snapshot(path, KEY)
    assert state.generation >= 3 and state.height == 16

    # --out: the encrypted file comes back over the connection and is written here.
    copy = tmp_path / "copy.lns"
    fetched = subprocess.run([sys.executable, "-m", "server", "snapshot", "save", "--connect",
                              f"127.0.0.1:{ports[1]}", "--out", str(copy)], cwd=ROOT,
                             capture_output=True, text=True, timeout=40)
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.strip() == str(copy)
    assert read_snapshot(copy, KEY)[1].generation >= state.generation
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".copy.lns")]

    # A server without --snapshot-dir says so, in one line.
    other = [str(free_port()) for _ in range(3)]
    processes.lifenet("server", "--worker-port", other[0], "--player-port", other[1],
                      "--frame-port", other[2], "--size", "8x8")
    wait_for(lambda: _generation(f"tcp://127.0.0.1:{other[1]}") >= 0, 30, what="server")
    refused = subprocess.run([sys.executable, "-m", "server", "snapshot", "save",
                              "--connect", f"127.0.0.1:{other[1]}"], cwd=ROOT,
                             capture_output=True, text=True, timeout=40)
    assert refused.returncode == 1 and "--snapshot-dir" in refused.stderr


def _generation(endpoint: str) -> int:
    try:
        return int(status(endpoint, timeout=0.5)["generation"])
    except Exception:
        return -1


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from server.snapshot import MIN_ITERATIONS, WorldState, load_key, save_snapshot
    from shared.rules import CONWAY
    path, key = Path(sys.argv[1]), load_key()
    g = 1
    while True:
        codes = np.full((256, 256), g % 2, dtype=np.uint8)
        save_snapshot(path, WorldState(codes, g, CONWAY), key, iterations=MIN_ITERATIONS)
        print(g, flush=True)
        g += 1
""")


def test_sigkill_during_writes_leaves_the_previous_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "world.lns"
    first = WorldState(np.zeros((8, 8), dtype=np.uint8), 0, CONWAY)
    save_snapshot(path, first, KEY, iterations=MIN_ITERATIONS)
    rng = random.Random(1234)
    for _ in range(6):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)],
                                  cwd=ROOT, stdout=subprocess.PIPE, start_new_session=True)
        try:
            assert writer.stdout is not None
            writer.stdout.readline()  # one write done: kill during a later one
            time.sleep(rng.uniform(0.0, 0.4))
            os.killpg(writer.pid, signal.SIGKILL)
        finally:
            writer.kill()
            writer.wait()
        _, state = read_snapshot(path, KEY)  # whole, whichever it is
        assert state.generation >= 0
        assert set(np.unique(state.codes).tolist()) <= {0, 1}
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "world.lns"]
    assert all(name.startswith(".world.lns.") for name in leftovers)



def test_a_slow_snapshot_does_not_stall_the_generation_loop(
        make_server: MakeServer, processes: Processes, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which("openssl")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    slow = bin_dir / "openssl"
    slow.write_text(f'#!/bin/sh\nsleep 1\nexec {real} "$@"\n')
    slow.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    snaps = tmp_path / "snaps"
    server = make_server(size=(16, 16), tick=0.01, snapshot_dir=snaps, snapshot_every=1,
                         snapshot_iterations=MIN_ITERATIONS)
    start_workers(processes, server, 1)
    runner = threading.Thread(target=server.run)
    runner.start()
    try:
        snapshotter = server.snapshotter
        assert snapshotter is not None
        wait_for(lambda: snapshotter.busy, 10, what="the first snapshot to start")
        began = server.engine.generation
        # While one snapshot takes more than a second, generations go on.
        wait_for(lambda: server.engine.generation >= began + 10, 5,
                 what="generations during a slow snapshot")
        assert not snapshotter.written or len(snapshotter.written) <= 1
    finally:
        server.stop()
        runner.join(30)
    wait_for(lambda: not server.snapshotter.busy, 20,  # type: ignore[union-attr]
             what="the last snapshot")
    newest = snapshots_in(snaps)[-1]
    assert read_snapshot(newest, KEY)[1].generation == server.engine.generation
