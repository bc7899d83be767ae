"""The Docker tier: a real engine, the real image, real Compose projects and stacks.

Every test here is skipped with the reason where no Docker engine answers or no Compose
tool exists. The image is built once per session by ``scripts/docker-build`` (cached:
quick when nothing changed). Each test gets its own Compose project
(``lifenet-test-<random>``) on random free host ports, and its finalizer takes the
project down (``down -v --remove-orphans``) and checks that no container, network or
volume of it is left, whether the test passed or not.

Test timeouts count the test body only (``func_only``): building the image on a fresh
machine (debootstrap and all) is bounded by the build's own timeout instead.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.keys import init_keys
from tests.conftest import ROOT, free_port, wait_for

BUILD_TIMEOUT = 1800.0
COMPOSE_FILE = ROOT / "docker-compose.yml"


def run(argv: list[str], timeout: float = 120.0, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output; fail the test with that output if ``check``."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=env, stdin=subprocess.DEVNULL, cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        out, err = (s.decode(errors="replace") if isinstance(s, bytes) else s or ""
                    for s in (e.stdout, e.stderr))
        pytest.fail(f"{' '.join(argv)} took more than {timeout:g} s:\n{out}\n{err}")
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def quiet(argv: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str] | None:
    """Run a command for its effect or its answer; ``None`` if it could not run at all."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return None


@functools.cache
def engine_problem() -> str | None:
    """Why no Docker engine can be used here, or ``None`` when one answers."""
    if shutil.which("docker") is None:
        return "no docker command on PATH"
    info = quiet(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=30)
    if info is None or info.returncode != 0:
        why = (info.stderr.strip().splitlines() or ["no answer"])[-1] if info else "timed out"
        return f"no Docker engine answers `docker info` ({why})"
    return None


@functools.cache
def compose_command() -> list[str] | None:
    """``docker compose`` (the plugin) where it exists, else ``docker-compose`` (v1)."""
    plugin = quiet(["docker", "compose", "version"], timeout=30)
    if plugin is not None and plugin.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        v1 = quiet(["docker-compose", "version"], timeout=30)
        if v1 is not None and v1.returncode == 0:
            return ["docker-compose"]
    return None


def docker_env(**overrides: str) -> dict[str, str]:
    """The environment for compose and stack commands: ours, without the caller's
    LIFENET_* settings (a test decides its own), plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFENET_")}
    env.update(overrides)
    return env


def lifenet_status(port: int, server_key: Path, timeout: float = 1.0) -> dict[str, Any] | None:
    """``lifenet status --json`` from the host, or ``None`` if the server does not answer."""
    proc = quiet([sys.executable, "-m", "server", "status", "--connect",
                  f"tcp://127.0.0.1:{port}", "--json", "--timeout", str(timeout),
                  "--server-key", str(server_key)], timeout=timeout + 30)
    if proc is None or proc.returncode != 0:
        return None
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def wait_status(port: int, server_key: Path, condition: Any, timeout: float,
                what: str) -> dict[str, Any]:
    """Poll the server's status until ``condition(report)`` holds; the report."""
    def check() -> dict[str, Any] | None:
        report = lifenet_status(port, server_key)
        return report if report is not None and condition(report) else None

    result: dict[str, Any] = wait_for(check, timeout, interval=0.3, what=what)
    return result


def image_has_command(image: str, *words: str) -> bool:
    """Whether ``lifenet WORDS --help`` works in the image (for features still to land)."""
    proc = quiet(["docker", "run", "--rm", "--network", "none", image, *words, "--help"])
    return proc is not None and proc.returncode == 0


def make_keys(directory: Path) -> Path:
    """``lifenet keys init DIR`` for a project, its secret files owned by the image's user
    (uid 10001), as the README says: Compose mounts a secret as the host's file."""
    if os.geteuid() != 0:
        pytest.skip("the key files must be owned by the image's user (uid 10001): run "
                    "the Docker tests as root, or chown them yourself as the README says")
    init_keys(directory)
    for path in directory.glob("*.key_secret"):
        os.chown(path, 10001, 10001)
    return directory


@pytest.fixture(scope="session")
def docker_engine() -> None:
    problem = engine_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture(scope="session")
def compose(docker_engine: None) -> list[str]:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    return command


@pytest.fixture(scope="session")
def lifenet_image(docker_engine: None) -> str:
    """The lifenet image, built (or found up to date) by scripts/docker-build."""
    image = os.environ.get("LIFENET_IMAGE", "lifenet:latest")
    run([str(ROOT / "scripts" / "docker-build")], timeout=BUILD_TIMEOUT,
        env={**os.environ, "LIFENET_IMAGE": image})
    return image


class Project:
    """One Compose project of the repository's docker-compose.yml, named for this test."""

    def __init__(self, compose: list[str], image: str, log_dir: Path) -> None:
        self.compose = compose
        self.name = f"lifenet-test-{uuid.uuid4().hex[:10]}"
        self.player_port = free_port()
        self.frame_port = free_port()
        self.http_port = free_port()  # the browser client's (service web)
        self.metrics_port = free_port()  # the server's Prometheus metrics
        self.log_dir = log_dir
        self.keys = make_keys(log_dir / "keys")
        self.server_key = self.keys / "server.key"
        self.files = [COMPOSE_FILE]
        # Fast heartbeats so that a lost worker is noticed in 1.5 s; a small world.
        self.env = docker_env(
            LIFENET_IMAGE=image, LIFENET_PLAYER_PORT=str(self.player_port),
            LIFENET_FRAME_PORT=str(self.frame_port), LIFENET_HTTP_PORT=str(self.http_port),
            LIFENET_METRICS_PORT=str(self.metrics_port),
            LIFENET_SERVER_HEARTBEAT="0.5",
            LIFENET_WORKER_HEARTBEAT="0.5", LIFENET_SERVER_SIZE="64x64",
            LIFENET_SERVER_TICK="0.05", LIFENET_KEYS_DIR=str(self.keys))

    def __call__(self, *args: str, timeout: float = 180.0,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        files = [word for path in self.files for word in ("-f", str(path))]
        return run([*self.compose, "-p", self.name, *files, *args],
                   timeout=timeout, env=self.env, check=check)

    def containers(self, service: str | None = None, *, stopped: bool = False) -> list[str]:
        """Ids of this project's running containers (and stopped ones with ``stopped``)."""
        argv = ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={self.name}"]
        if service:
            argv += ["--filter", f"label=com.docker.compose.service={service}"]
        if stopped:
            argv.append("-a")
        return run(argv).stdout.split()

    def networks(self) -> list[str]:
        out = run(["docker", "network", "ls", "--format", "{{.Name}}"]).stdout.split()
        return [n for n in out if n.startswith(f"{self.name}_")]

    def volumes(self) -> list[str]:
        out = run(["docker", "volume", "ls", "--format", "{{.Name}}"]).stdout.split()
        return [v for v in out if v.startswith(f"{self.name}_")]

    def inspect(self, container: str, template: str) -> str:
        return run(["docker", "inspect", "--format", template, container]).stdout.strip()

    def status(self) -> dict[str, Any] | None:
        return lifenet_status(self.player_port, self.server_key)

    def wait_status(self, condition: Any, timeout: float, what: str) -> dict[str, Any]:
        return wait_status(self.player_port, self.server_key, condition, timeout, what)

    def down(self) -> None:
        """Take everything down; whatever ``down`` missed is removed by force."""
        logs = self("logs", "--no-color", "--tail", "60", check=False)
        (self.log_dir / f"{self.name}.log").write_text(logs.stdout + logs.stderr)
        print(f"--- last logs of {self.name} ---\n{logs.stdout[-8000:]}")
        self("down", "-v", "--remove-orphans", "-t", "10", timeout=240, check=False)
        for container in self.containers(stopped=True):
            quiet(["docker", "rm", "-f", "-v", container])
        for network in self.networks():
            quiet(["docker", "network", "rm", network])
        for volume in self.volumes():
            quiet(["docker", "volume", "rm", "-f", volume])


@pytest.fixture
def project(compose: list[str], lifenet_image: str, tmp_path: Path) -> Iterator[Project]:
    """A fresh Compose project; taken down at teardown even when the test fails."""
    proj = Project(compose, lifenet_image, tmp_path)
    try:
        yield proj
    finally:
        proj.down()
