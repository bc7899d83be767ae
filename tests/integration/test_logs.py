"""``lifenet --log-format json``: a server with keys, a worker and a crowd of bots under
load, every line of their logs one JSON object, and no token or key in any of them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from client.session import PlayerSession
from shared.remote import credentials_for
from tests.conftest import ROOT, Processes, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def secrets_in(keys: Path) -> set[str]:
    """Every key (public and secret, Z85) in a keys directory."""
    found: set[str] = set()
    for path in keys.rglob("*"):
        if path.is_file():
            found.update(re.findall(r'"([^"]{40})"', path.read_text(errors="replace")))
    return found


def test_json_logs_are_json_lines_without_tokens_or_keys(processes: Processes,
                                                          tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    subprocess.run([sys.executable, "-m", "server", "keys", "init", str(keys)], check=True,
                   cwd=ROOT, capture_output=True, timeout=60)
    secrets = secrets_in(keys)
    assert len(secrets) >= 6
    ports = [free_port() for _ in range(3)]
    server = processes.lifenet(
        "--log-format", "json", "--log-level", "debug", "server", "--keys", str(keys),
        "--worker-port", str(ports[0]), "--player-port", str(ports[1]), "--frame-port",
        str(ports[2]), "--size", "64x64", "--seed", "2", "--fill", "0.2", "--tick", "0.01",
        "--grace", "0.2", "--generations", "250")
    worker = processes.lifenet("--log-format", "json", "worker", "--keys", str(keys),
                               "--connect", f"tcp://127.0.0.1:{ports[0]}")
    bots = processes.lifenet("--log-format", "json", "--log-level", "debug", "bot",
                             "--connect", f"127.0.0.1:{ports[1]}", "--server-key",
                             str(keys / "server.key"), "--count", "30", "--strategy",
                             "random", "--seed", "4")
    endpoint = f"tcp://127.0.0.1:{ports[1]}"
    session = PlayerSession(endpoint, "watcher", credentials=credentials_for(
        endpoint, keys / "server.key"))
    try:
        wait_for(lambda: _joined(session), 30, interval=0.2, what="a session to join")
        secrets.add(session.token)
    finally:
        session.close()
    assert server.wait(timeout=150) == 0, processes.log_of(server)[-2000:]
    for proc in (bots, worker):
        proc.terminate()
        proc.wait(timeout=30)
    lines = 0
    for proc in (server, worker, bots):
        text = processes.log_of(proc)
        for line in text.splitlines():
            if proc is bots and not line.startswith("{"):
                continue  # the bots' summary on stdout is not a log line
            entry = json.loads(line)
            assert {"time", "level", "logger", "event", "pid"} <= set(entry), entry
            assert entry["time"].endswith("Z")
            lines += 1
        for secret in secrets:
            assert secret not in text, f"a token or key in the log of {proc.args!r}"
    assert lines > 100
    joined = [json.loads(line) for line in processes.log_of(server).splitlines()
              if "joined (id" in line]
    assert joined and all(entry.get("worker") for entry in joined)


def _joined(session: PlayerSession) -> bool:
    try:
        session.join()
    except Exception:
        return False
    return bool(session.token)
