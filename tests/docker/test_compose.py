"""docker-compose.yml on a real engine: scale workers, lose one, shut down cleanly.

The user's path: build the image, ``docker compose up --scale worker=N``, ask the
server for its status from the host, scale up and down while it runs. Tests for the
features still to land (players, snapshots) skip with the reason until the image has
their commands.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.config import ServerConfig
from server.world import build_world
from shared.grid import Codes
from shared.keys import write_pair
from shared.life import simulate_many
from shared.rle import parse_rle
from shared.rules import CONWAY
from tests.conftest import ROOT, Processes, wait_for
from tests.docker.conftest import Project, image_has_command, quiet, run

pytestmark = pytest.mark.docker


def workers_are(n: int):  # type: ignore[no-untyped-def]
    return lambda report: report["workers"] == n


@dataclass(frozen=True)
class Soup:
    """A seeded world the server steps ``generations`` times, then writes to
    /data/out.rle and exits; ``reference`` is what it must write."""

    size: tuple[int, int]
    seed: int
    fill: float
    generations: int

    def configure(self, project: Project) -> None:
        project.env.update(
            LIFENET_SERVER_SIZE=f"{self.size[0]}x{self.size[1]}",
            LIFENET_SERVER_SEED=str(self.seed), LIFENET_SERVER_FILL=str(self.fill),
            LIFENET_SERVER_GENERATIONS=str(self.generations), LIFENET_SERVER_TICK="0.1",
            LIFENET_SERVER_OUT="/data/out.rle")

    def reference(self) -> Codes:
        grid, rule = build_world(ServerConfig(size=self.size, seed=self.seed,
                                              fill=self.fill))
        return simulate_many(grid, self.generations, rule or CONWAY).codes


def written_world(server: str, tmp_path: Path) -> Codes:
    """The world the server container wrote to /data/out.rle."""
    run(["docker", "cp", f"{server}:/data/out.rle", str(tmp_path / "out.rle")])
    return parse_rle((tmp_path / "out.rle").read_text()).codes


@pytest.mark.timeout(240, func_only=True)
def test_scale_workers_lose_one_and_scale_again(project: Project) -> None:
    project("up", "-d", "--scale", "worker=3")
    first = project.wait_status(lambda r: r["workers"] == 3 and r["generation"] > 0,
                        60, "3 workers and a first generation")
    project.wait_status(lambda r: r["generation"] >= first["generation"] + 10,
                30, "generations to advance")

    workers = project.containers("worker")
    assert len(workers) == 3
    run(["docker", "kill", workers[0]])
    report = project.wait_status(workers_are(2), 20,
                         "the server to drop the killed worker")
    project.wait_status(lambda r: r["generation"] >= report["generation"] + 20,
                30, "generations to keep coming after a worker was killed")

    project("up", "-d", "--scale", "worker=5")
    project.wait_status(workers_are(5), 30, "5 workers after scaling up")
    project("up", "-d", "--scale", "worker=1")
    report = project.wait_status(workers_are(1), 30, "1 worker after scaling down")
    project.wait_status(lambda r: r["generation"] >= report["generation"] + 10,
                30, "generations with one worker left")


@pytest.mark.timeout(240, func_only=True)
def test_world_equals_the_reference_although_a_worker_was_killed(project: Project,
                                                                 tmp_path: Path) -> None:
    soup = Soup((48, 64), 7, 0.3, 120)
    generations = soup.generations
    soup.configure(project)
    project("up", "-d", "--scale", "worker=2")
    project.wait_status(lambda r: r["workers"] == 2 and r["generation"] >= 20,
                60, "2 workers and generation 20")
    run(["docker", "kill", project.containers("worker")[0]])
    report = project.wait_status(workers_are(1), 20,
                         "the server to drop the killed worker")
    assert report["generation"] < generations, "the worker was killed too late to matter"

    server = project.containers("server", stopped=True)[0]
    wait_for(lambda: project.inspect(server, "{{.State.Status}}") == "exited", 90, 0.3,
             f"the server to reach generation {generations} and exit")
    assert project.inspect(server, "{{.State.ExitCode}}") == "0"
    world, expected = written_world(server, tmp_path), soup.reference()
    assert world.shape == expected.shape
    assert np.array_equal(world, expected)


@pytest.mark.timeout(240, func_only=True)
def test_a_worker_container_with_an_unlisted_key_gets_nothing(project: Project,
                                                             tmp_path: Path) -> None:
    """Workers with the listed key compute; one started with a key of its own (the
    right server key, not on authorized/workers) is refused at the handshake, never
    counted, never sent a batch, and the world is still the reference's."""
    soup = Soup((32, 48), 11, 0.3, 150)
    generations = soup.generations
    soup.configure(project)
    project("up", "-d", "--scale", "worker=1")
    project.wait_status(workers_are(1), 60, "the listed worker")
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    write_pair(stranger, "worker")
    os.chown(stranger / "worker.key_secret", 10001, 10001)
    server = project.containers("server")[0]
    network = next(iter(json.loads(project.inspect(server, "{{json .NetworkSettings.Networks}}"))))
    rogue = run(["docker", "run", "-d", "--network", network, "--label",
                 f"com.docker.compose.project={project.name}",
                 "-v", f"{stranger / 'worker.key_secret'}:/run/lifenet/keys/worker.key_secret:ro",
                 "-v", f"{project.keys / 'server.key'}:/run/lifenet/keys/server.key:ro",
                 project.env["LIFENET_IMAGE"], "worker", "--connect", "tcp://server:5555",
                 "--keys", "/run/lifenet/keys", "--heartbeat", "0.5"]).stdout.strip()
    try:
        wait_for(lambda: "refused a workers key" in project("logs", "server").stdout, 30, 0.5,
                 "the server to refuse the stranger's key")
        report = project.wait_status(lambda r: r["generation"] >= 20, 60, "generation 20")
        assert report["workers"] == 1
        assert "refused this key" in run(["docker", "logs", rogue]).stderr
        wait_for(lambda: project.inspect(server, "{{.State.Status}}") == "exited", 90, 0.3,
                 f"the server to reach generation {generations} and exit")
        world = written_world(server, tmp_path)
    finally:
        quiet(["docker", "rm", "-f", rogue])
    assert np.array_equal(world, soup.reference())


@pytest.mark.timeout(180, func_only=True)
def test_healthy_then_sigterm_stops_every_process_cleanly_and_down_leaves_nothing(
        project: Project) -> None:
    project("up", "-d", "--scale", "worker=2")
    project.wait_status(workers_are(2), 60, "2 workers")
    server = project.containers("server")[0]
    wait_for(lambda: project.inspect(server, "{{.State.Health.Status}}") == "healthy", 60, 0.5,
             "the server's healthcheck to pass")

    began = time.monotonic()
    project("stop", "-t", "20")
    took = time.monotonic() - began
    containers = project.containers(stopped=True)
    assert len(containers) == 4  # the server, 2 workers, the browser gateway
    for container in containers:
        name = project.inspect(container, "{{.Name}}")
        assert project.inspect(container, "{{.State.Status}}") == "exited", name
        assert project.inspect(container, "{{.State.ExitCode}}") == "0", \
            f"{name} did not exit cleanly on SIGTERM"
    assert took < 20, "a process waited for the grace period's SIGKILL"

    project("down", "-v", "--remove-orphans")
    assert project.containers(stopped=True) == []
    assert project.networks() == []
    assert project.volumes() == []
    assert project.status() is None


@pytest.mark.timeout(180, func_only=True)
def test_a_player_on_the_host_joins_and_bots_play_in_compose(
        project: Project, processes: Processes) -> None:
    if not image_has_command(project.env["LIFENET_IMAGE"], "bot"):
        pytest.skip("the image has no `lifenet bot` yet (the players issue)")
    project.env.update(LIFENET_BOTS="2")
    project("up", "-d", "--scale", "worker=2")
    project.wait_status(workers_are(2), 60, "2 workers")
    # A player on the host: a headless bot client places its patterns.
    bot = processes.lifenet("bot", "--connect", f"tcp://127.0.0.1:{project.player_port}",
                            "--count", "1", "--server-key", str(project.server_key))
    project.wait_status(
                lambda r: r["players"] >= 1 and any(v > 0 for v in r["scores"].values()), 60,
                "the host's player to join and own live cells")
    assert bot.poll() is None, processes.log_of(bot)
    project("up", "-d", "--scale", "worker=2", "--scale", "bots=1")
    project.wait_status(lambda r: r["players"] >= 3, 60,
                "the bots service's 2 players to join")


@pytest.mark.timeout(180, func_only=True)
def test_the_browser_client_is_served_on_the_http_port(project: Project) -> None:
    if not image_has_command(project.env["LIFENET_IMAGE"], "web"):
        pytest.skip("the image has no `lifenet web` yet (the browser issue)")
    project("up", "-d", "--scale", "worker=1")
    project.wait_status(workers_are(1), 60, "1 worker")
    url = f"http://127.0.0.1:{project.http_port}/"

    def health() -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{url}healthz", timeout=3) as reply:
                body: dict[str, Any] = json.load(reply)
        except OSError:
            return None
        return body if body["generation"] is not None else None

    # frames from the server through CURVE, to the gateway, served on the host
    wait_for(health, 60, 0.5, "the gateway to serve generations")
    with urllib.request.urlopen(url, timeout=5) as page:
        assert b"<canvas" in page.read()
    web = project.containers("web")[0]
    wait_for(lambda: project.inspect(web, "{{.State.Health.Status}}") == "healthy", 60, 0.5,
             "the gateway's healthcheck to pass")


@pytest.mark.timeout(180, func_only=True)
def test_the_server_s_metrics_are_published_and_json_logs_come_out(project: Project) -> None:
    if not image_has_command(project.env["LIFENET_IMAGE"], "replay"):
        pytest.skip("the image has no metrics yet (the operations issue)")
    from prometheus_client.parser import text_string_to_metric_families

    project.env.update(LIFENET_LOG_FORMAT="json")
    project("up", "-d", "--scale", "worker=2")
    project.wait_status(workers_are(2), 60, "2 workers")

    def scraped() -> dict[str, float] | None:
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{project.metrics_port}/metrics", timeout=3) as reply:
                text = reply.read().decode()
        except OSError:
            return None
        values = {s.name: s.value for f in text_string_to_metric_families(text)
                  for s in f.samples}
        return values if values.get("lifenet_generations_total", 0) > 0 else None

    values = wait_for(scraped, 60, 0.5, "the server's metrics on the host")
    assert values["lifenet_workers"] == 2
    logs = project("logs", "--no-color", "--no-log-prefix", "server").stdout
    lines = [line for line in logs.splitlines() if line.startswith("{")]
    assert lines and all("event" in json.loads(line) for line in lines)


@pytest.mark.timeout(180, func_only=True)
def test_snapshots_land_on_the_volume_and_verify(project: Project) -> None:
    image = project.env["LIFENET_IMAGE"]
    if not image_has_command(image, "snapshot"):
        pytest.skip("the image has no `lifenet snapshot` yet (the snapshot issue)")
    project.env.update(LIFENET_SNAPSHOT_KEY=secrets.token_hex(16),
                       LIFENET_SERVER_SNAPSHOT_DIR="/data/snapshots",
                       LIFENET_SERVER_SNAPSHOT_EVERY="5")
    project("up", "-d", "--scale", "worker=1")

    def snapshots() -> list[str]:
        ls = project("exec", "-T", "server", "ls", "/data/snapshots", check=False)
        return ls.stdout.split() if ls.returncode == 0 else []

    names = wait_for(snapshots, 60, 0.5, "a snapshot in /data/snapshots")
    project("exec", "-T", "server", "lifenet", "snapshot", "verify",
            f"/data/snapshots/{names[0]}")


@pytest.mark.timeout(120, func_only=True)
def test_the_snapshot_key_as_a_secret_is_readable_by_the_server_only(project: Project,
                                                                     tmp_path: Path) -> None:
    key = tmp_path / "snapshot.key"
    key.write_text(secrets.token_hex(16))
    if os.geteuid() == 0:
        os.chown(key, 10001, 10001)  # the image's lifenet user, as the README says
        key.chmod(0o400)
    else:
        key.chmod(0o444)
    project.env.update(LIFENET_SNAPSHOT_KEY_FILE=str(key))
    project.files.append(ROOT / "docker-compose.secret.yml")
    project("up", "-d", "--scale", "worker=1")
    read = project("exec", "-T", "server", "sh", "-c", 'cat "$LIFENET_SERVER_KEY_FILE"')
    assert read.stdout.strip() == key.read_text()
    assert project("exec", "-T", "worker", "sh", "-c", "ls /run/secrets",
                   check=False).stdout.strip() == ""
    # The server snapshots with the secret's key: a copy fetched to the host verifies
    # under the key file, and not under another key.
    project.wait_status(workers_are(1), 60, "the worker")
    copy = tmp_path / "copy.lns"
    host = {k: v for k, v in os.environ.items() if not k.startswith("LIFENET_")}
    saved = subprocess.run(
        [sys.executable, "-m", "server", "snapshot", "save", "--connect",
         f"127.0.0.1:{project.player_port}", "--out", str(copy), "--timeout", "60",
         "--keys", str(project.keys)],
        capture_output=True, text=True, timeout=90, cwd=ROOT, env=host)
    assert saved.returncode == 0, saved.stderr
    other = tmp_path / "other.key"
    other.write_text("not the key\n")
    for key_file, code in ((key, 0), (other, 1)):
        verified = subprocess.run(
            [sys.executable, "-m", "server", "snapshot", "verify", str(copy), "--key-file",
             str(key_file)], capture_output=True, text=True, timeout=60, cwd=ROOT, env=host)
        assert verified.returncode == code, verified.stderr
