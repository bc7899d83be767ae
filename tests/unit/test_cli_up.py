"""``lifenet up``'s logs (one documented place, the newest kept) and how it reads its
server's last error, without starting anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.cli.up import KEEP_LOGS, log_dir, open_log
from server.tools.up import last_error


def test_the_log_directory_is_documented_and_overridable(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIFENET_LOG_DIR", str(tmp_path / "mine"))
    assert log_dir() == tmp_path / "mine"
    monkeypatch.delenv("LIFENET_LOG_DIR")
    monkeypatch.setenv("LIFENET_STATE_DIR", str(tmp_path / "state"))
    assert log_dir() == tmp_path / "state" / "logs"
    monkeypatch.delenv("LIFENET_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert log_dir() == tmp_path / "xdg" / "lifenet" / "logs"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert log_dir() == tmp_path / "home" / ".local" / "state" / "lifenet" / "logs"


def ended_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_run_keeps_the_newest_logs_and_names_its_own_by_time(tmp_path: Path) -> None:
    dead = ended_pid()
    old = [tmp_path / f"up-202601{day:02d}-120000-{dead}.log" for day in range(1, 15)]
    for path in old:
        path.write_text("old\n")
    running = tmp_path / f"up-20250101-000000-{os.getpid()}.log"  # oldest, but running
    running.write_text("still written\n")
    other = tmp_path / "notes.txt"
    other.write_text("not a log of up\n")
    with open_log(tmp_path) as log:
        name = Path(log.name).name
    assert name.startswith("up-") and name.endswith(f"-{os.getpid()}.log")
    assert len(name) == len("up-20261129-231502-.log") + len(str(os.getpid()))
    logs = sorted(p.name for p in tmp_path.glob("up-*.log"))
    assert running.name in logs and name in logs and other.exists()
    # the newest KEEP_LOGS, besides the running up's log kept whatever its age
    kept = [p.name for p in old][-(KEEP_LOGS - 1):]
    assert logs == sorted([running.name, *kept, name])


def test_the_log_directory_is_made_private(tmp_path: Path) -> None:
    with open_log(tmp_path / "a" / "logs") as log:
        assert Path(log.name).parent == tmp_path / "a" / "logs"
    assert ((tmp_path / "a" / "logs").stat().st_mode & 0o777) == 0o700


@pytest.mark.parametrize("lines, reason", [
    (["2026-11-29 23:15:02,120 4242 lifenet.app INFO listening",
      "Error: cannot listen for frames on port 6557: Address already in use"],
     "cannot listen for frames on port 6557: Address already in use"),
    (["2026-11-29 23:15:02,120 4242 lifenet.app ERROR the memory guard could not bind",
      "2026-11-29 23:15:02,121 4242 lifenet.app INFO stopping"],
     "the memory guard could not bind"),
    (["Traceback (most recent call last):", '  File "x.py", line 1, in <module>',
      "RuntimeError: boom", ""], "RuntimeError: boom"),
    (["2026-11-29 23:15:02,120 4242 lifenet.app INFO all is well"], None),
    ([], None),
])
def test_the_servers_last_error_in_its_own_words(lines: list[str], reason: str | None) -> None:
    assert last_error(lines) == reason
