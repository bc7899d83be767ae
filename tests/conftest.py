"""Fixtures shared by every tier: free loopback ports, real child processes, polling."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from server.tools.children import LocalProcesses, free_port

ROOT = Path(__file__).resolve().parent.parent
PATTERNS = ROOT / "shared" / "patterns"

__all__ = ["PATTERNS", "ROOT", "Processes", "free_port", "wait_for"]


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
             what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Processes:
    """Starts ``lifenet`` children (``LocalProcesses``, as ``lifenet up`` does), each
    with its own log in the test's directory; at teardown, ends exactly those."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.children = LocalProcesses(cwd=ROOT)
        self.logs: dict[int, Path] = {}

    def lifenet(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"proc-{len(self.logs)}.log"
        proc = self.children.start(args[0] if args else "lifenet", args, log, env)
        self.logs[proc.pid] = log
        return proc

    def worker(self, endpoint: str, *args: str) -> subprocess.Popen[bytes]:
        return self.lifenet("worker", "--connect", endpoint, "--heartbeat", "0.2", *args)

    def liar(self, endpoint: str, mode: str, *args: str) -> subprocess.Popen[bytes]:
        """A worker that answers wrongly (``tests.integration.liar``)."""
        log = self.tmp_path / f"proc-{len(self.logs)}.log"
        proc = self.children.start(f"liar-{mode}", [mode, "--connect", endpoint, *args],
                                   log, module="tests.integration.liar")
        self.logs[proc.pid] = log
        return proc

    def log_of(self, proc: subprocess.Popen[bytes]) -> str:
        return self.logs[proc.pid].read_text(errors="replace")

    def stop(self) -> None:
        self.children.stop()


@pytest.fixture(scope="session", autouse=True)
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Per-user state (the keys a ``lifenet up`` makes) in the session's own directory,
    never in the home directory of whoever runs the tests; children inherit it."""
    path = tmp_path_factory.mktemp("state")
    old = os.environ.get("LIFENET_STATE_DIR")
    os.environ["LIFENET_STATE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("LIFENET_STATE_DIR", None)
    else:
        os.environ["LIFENET_STATE_DIR"] = old


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop()
