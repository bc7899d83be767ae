"""The same docker-compose.yml on Docker Swarm: ``docker stack deploy`` on one node.

Where the engine is not in a swarm the test makes a single-node one (``docker swarm
init`` on loopback) and leaves it at teardown; an existing swarm is used as it is and
left alone. Skipped with the reason where the engine cannot run a swarm.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_for
from tests.docker.conftest import docker_env, make_keys, quiet, run, wait_status

pytestmark = pytest.mark.docker


@pytest.fixture
def swarm(docker_engine: None) -> Iterator[None]:
    """A swarm whose manager is this engine; left at teardown if this fixture made it."""
    state = run(["docker", "info", "--format",
                 "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"]).stdout.split()
    if state[:1] == ["active"]:
        if state[1:] != ["true"]:
            pytest.skip("this engine is a swarm worker, not a manager: cannot deploy a stack")
        yield
        return
    if state[:1] != ["inactive"]:
        pytest.skip(f"the engine's swarm state is {' '.join(state)}")
    networks = set(run(["docker", "network", "ls", "--format", "{{.Name}}"]).stdout.split())
    init = quiet(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"], timeout=120)
    if init is None or init.returncode != 0:
        pytest.skip(f"docker swarm init fails here: {init.stderr.strip() if init else 'timeout'}")
    try:
        yield
    finally:
        run(["docker", "swarm", "leave", "--force"], timeout=120, check=False)
        # `swarm init` made docker_gwbridge; `leave` keeps it.
        if "docker_gwbridge" not in networks:
            quiet(["docker", "network", "rm", "docker_gwbridge"])


@pytest.mark.timeout(240, func_only=True)
def test_the_compose_file_deploys_as_a_stack_and_workers_scale(swarm: None,
                                                               lifenet_image: str,
                                                               tmp_path: Path) -> None:
    stack = f"lifenet-test-{uuid.uuid4().hex[:10]}"
    port = free_port()
    keys = make_keys(tmp_path / "keys")  # the stack's secrets (uid 10001, mode 0400)
    key = keys / "server.key"
    env = docker_env(LIFENET_IMAGE=lifenet_image, LIFENET_PLAYER_PORT=str(port),
                     LIFENET_FRAME_PORT=str(free_port()), LIFENET_WORKERS="2",
                     LIFENET_SERVER_HEARTBEAT="0.5", LIFENET_WORKER_HEARTBEAT="0.5",
                     LIFENET_SERVER_SIZE="64x64", LIFENET_SERVER_TICK="0.05",
                     LIFENET_KEYS_DIR=str(keys))
    try:
        run(["docker", "stack", "deploy", "-c", "docker-compose.yml", stack], env=env)
        first = wait_status(port, key, lambda r: r["workers"] == 2 and r["generation"] > 0,
                            120, "the stack's server with its 2 workers (deploy.replicas)")
        wait_status(port, key, lambda r: r["generation"] >= first["generation"] + 10, 30,
                    "generations to advance")
        run(["docker", "service", "scale", "--detach", f"{stack}_worker=3"])
        wait_status(port, key, lambda r: r["workers"] == 3, 60, "3 workers after service scale")
        run(["docker", "service", "scale", "--detach", f"{stack}_worker=1"])
        wait_status(port, key, lambda r: r["workers"] == 1, 60, "1 worker after scaling down")
    finally:
        logs = quiet(["docker", "service", "logs", "--tail", "30", f"{stack}_server"])
        if logs is not None:
            print(f"--- last logs of {stack}_server ---\n{logs.stdout}{logs.stderr}")
        run(["docker", "stack", "rm", stack], check=False)
        label = f"label=com.docker.stack.namespace={stack}"

        def gone() -> bool:
            left = run(["docker", "ps", "-aq", "--filter", label]).stdout.split()
            left += run(["docker", "network", "ls", "-q", "--filter", label]).stdout.split()
            return not left

        wait_for(gone, 90, 0.5, f"the stack {stack} to be removed")
        for volume in run(["docker", "volume", "ls", "-q", "--filter", label]).stdout.split():
            quiet(["docker", "volume", "rm", "-f", volume])
        for secret in run(["docker", "secret", "ls", "-q", "--filter", label],
                          check=False).stdout.split():
            quiet(["docker", "secret", "rm", secret])
