"""The book's my_socket.recv(100), made real: per-cell I/O waits overlap, none is cut short."""

from __future__ import annotations

import time

import pytest

from shared.life import simulate
from tests.conftest import Processes
from tests.integration.conftest import MakeServer, start_workers
from tests.integration.test_distributed import random_world

pytestmark = pytest.mark.integration

LATENCY = 0.05


def test_waits_overlap_and_no_cell_answers_early(make_server: MakeServer,
                                                 processes: Processes) -> None:
    server = make_server(size=(50, 60), dispatchers=8)
    start_workers(processes, server, 2, "--io-latency", str(LATENCY))
    expected = random_world(server, seed=3)
    cells = 50 * 60
    for _ in range(3):
        began = time.monotonic()
        expected = simulate(expected, server.rule)
        assert server.engine.step() == expected
        elapsed = time.monotonic() - began
        # Serially this generation would take cells x latency = 150 s.
        assert elapsed < cells * LATENCY / 50
        assert elapsed >= LATENCY
        # Every batch reported its cells' waits, and none was shorter than the latency.
        assert all(a.min_wait is not None for a in server.engine.last_answers)
        assert server.engine.last_min_wait is not None
        assert server.engine.last_min_wait >= LATENCY
