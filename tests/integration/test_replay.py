"""The replay log over real processes: a game with bots, placements, decisions, shields,
rounds and a player who leaves, recorded by ``lifenet server --record``, replays with
``lifenet replay --verify`` to the very world the server wrote with ``--out``; a server
killed with ``kill -9`` mid-record leaves a log that reopens and verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from server.replay.log import read_log
from tests.conftest import ROOT, Processes, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def replay_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", "replay", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def records(path: Path) -> int:
    return len(read_log(path).records) if path.exists() else 0


def serve(processes: Processes, *args: str) -> tuple[subprocess.Popen[bytes], str, str]:
    """A ``lifenet server`` child on free ports and one worker; its player and worker
    endpoints."""
    ports = [free_port() for _ in range(3)]
    server = processes.lifenet("server", "--worker-port", str(ports[0]), "--player-port",
                               str(ports[1]), "--frame-port", str(ports[2]), *args)
    worker = f"tcp://127.0.0.1:{ports[0]}"
    processes.worker(worker)
    return server, f"127.0.0.1:{ports[1]}", worker


def test_a_recorded_game_replays_to_the_server_s_final_world(processes: Processes,
                                                              tmp_path: Path) -> None:
    log, out, again = tmp_path / "game.replay", tmp_path / "server.rle", tmp_path / "r.rle"
    server, players, _ = serve(
        processes, "--size", "48x48", "--seed", "3", "--fill", "0.15", "--tick", "0.03",
        "--generations", "300", "--round", "100", "--grace", "0.3", "--energy-regen", "20",
        "--record", str(log), "--out", str(out))
    processes.lifenet("bot", "--connect", players, "--count", "3", "--strategy", "random",
                      "--seed", "1")
    processes.lifenet("bot", "--connect", players, "--count", "2", "--strategy", "defend",
                      "--seed", "2")
    leaver = processes.lifenet("bot", "--connect", players, "--count", "2", "--name",
                               "leaver", "--strategy", "random", "--seed", "3")
    wait_for(lambda: records(log) > 80, 60, what="80 generations recorded")
    os.kill(leaver.pid, signal.SIGKILL)  # its players' cells turn neutral after --grace
    assert server.wait(timeout=120) == 0, processes.log_of(server)
    kinds = {item[0] for record in read_log(log).records if record.body is not None
             for item in record.body.get("in", [])}
    # Every way the world differs from the rule was exercised: placements, decisions,
    # shields' zones, players turned neutral, round ends.
    assert kinds == {"p", "w", "z", "n", "r"}, kinds
    result = replay_cli(str(log), "--verify", "--out", str(again))
    assert result.returncode == 0, result.stderr
    assert "300 generations verified" in result.stdout
    assert again.read_text() == out.read_text()
    at = replay_cli(str(log), "--to", "150", "--out", str(tmp_path / "150.rle"))
    assert at.returncode == 0, at.stderr
    assert "generation 150" in (tmp_path / "150.rle").read_text().splitlines()[0]


def test_a_log_cut_by_kill_9_reopens_and_verifies(processes: Processes,
                                                  tmp_path: Path) -> None:
    log = tmp_path / "game.replay"
    server, _, _ = serve(processes, "--size", "64x64", "--seed", "5", "--fill", "0.3",
                         "--tick", "0", "--record", str(log))
    wait_for(lambda: records(log) > 40, 60, what="40 generations recorded")
    os.kill(server.pid, signal.SIGKILL)
    server.wait(timeout=10)
    whole = read_log(log)
    # kill -9 may land between two writes: cut the last record in the middle as well.
    last = whole.records[-1]
    os.truncate(log, last.offset + 10)
    cut = replay_cli(str(log), "--verify")
    assert cut.returncode == 1
    reached = whole.records[-2].body
    assert reached is not None
    assert "torn last record" in cut.stderr and f"generation {reached['g']}" in cut.stderr, \
        cut.stderr
    # --record on it again: the torn record dropped, the chain continued.
    again, _, _ = serve(processes, "--size", "64x64", "--seed", "5", "--fill", "0.3",
                        "--tick", "0", "--generations", "20", "--record", str(log))
    assert again.wait(timeout=60) == 0, processes.log_of(again)
    assert "dropping a torn last record" in processes.log_of(again)
    reopened = read_log(log)
    assert reopened.torn == 0 and len(reopened.records) == len(whole.records) - 1 + 21
    result = replay_cli(str(log), "--verify")
    assert result.returncode == 0, result.stderr
    assert f"{len(whole.records) - 2 + 20} generations verified" in result.stdout


def test_a_game_restored_from_a_snapshot_replays_from_that_snapshot(
        processes: Processes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFENET_SNAPSHOT_KEY", "a replay test's snapshot key")
    snapshots, log = tmp_path / "snapshots", tmp_path / "game.replay"
    first, _, _ = serve(processes, "--size", "40x40", "--seed", "8", "--fill", "0.3",
                        "--tick", "0", "--generations", "30", "--snapshot-every", "30",
                        "--snapshot-dir", str(snapshots))
    assert first.wait(timeout=60) == 0, processes.log_of(first)
    (snapshot,) = sorted(snapshots.glob("world-*"))[-1:]
    out = tmp_path / "server.rle"
    later = tmp_path / "later"
    again, _, _ = serve(processes, "--restore", str(snapshot), "--tick", "0",
                        "--generations", "60", "--record", str(log), "--out", str(out),
                        "--snapshot-every", "20", "--snapshot-dir", str(later))
    assert again.wait(timeout=60) == 0, processes.log_of(again)
    alone = replay_cli(str(log), "--verify")
    assert alone.returncode == 1 and "--from-snapshot" in alone.stderr
    replayed = tmp_path / "replayed.rle"
    result = replay_cli(str(log), "--verify", "--from-snapshot", str(snapshot), "--out",
                        str(replayed))
    assert result.returncode == 0, result.stderr
    assert "30 generations verified" in result.stdout
    assert replayed.read_text() == out.read_text()
    # A snapshot written while recording is named in the log: a replay may start there.
    (at_40,) = later.glob("world-*40.lns")
    middle = replay_cli(str(log), "--verify", "--from-snapshot", str(at_40), "--out",
                        str(replayed))
    assert middle.returncode == 0, middle.stderr
    assert "20 generations verified, chain intact, from generation 40 to generation 60" \
        in middle.stdout
    assert replayed.read_text() == out.read_text()
