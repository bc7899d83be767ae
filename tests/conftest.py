"""Fixtures shared by every tier: free loopback ports, real child processes, polling."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PATTERNS = ROOT / "shared" / "patterns"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
    """Starts ``lifenet`` children and, at teardown, ends exactly those it started."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def lifenet(self, *args: str, env: dict[str, str] | None = None,
                **kwargs: Any) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"proc-{len(self.started)}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "server", *args], stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                env={**os.environ, **(env or {})}, start_new_session=True, **kwargs)
        self.started.append(proc)
        return proc

    def worker(self, endpoint: str, *args: str) -> subprocess.Popen[bytes]:
        return self.lifenet("worker", "--connect", endpoint, "--heartbeat", "0.2", *args)

    def log_of(self, proc: subprocess.Popen[bytes]) -> str:
        return self.logs[self.started.index(proc)].read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self.started:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop()
