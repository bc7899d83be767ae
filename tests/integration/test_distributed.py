"""The distributed engine against the reference, with real worker processes."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import numpy as np
import pytest

from server.app import Server
from server.verify import Verification
from shared.bitlife import pays
from shared.errors import SimulationError
from shared.grid import Grid
from shared.kernel import step_grid
from shared.life import simulate
from shared.rules import parse_rule
from tests.conftest import PATTERNS, Processes, free_port, wait_for
from tests.integration.conftest import MakeServer, start_workers

pytestmark = pytest.mark.integration


def random_world(server: Server, seed: int, owners: bool = True) -> Grid:
    """Give the server a random world (before any step) and return a copy."""
    rng = np.random.default_rng(seed)
    h, w = server.engine.grid.height, server.engine.grid.width
    values, p = ([0, 1, 2, 3, 4], [.5, .2, .1, .1, .1]) if owners else ([0, 1], [.6, .4])
    server.engine.grid = Grid.from_codes(rng.choice(values, size=(h, w), p=p))
    return server.engine.grid.copy()


def run_and_compare(server: Server, expected: Grid, generations: int) -> Grid:
    rule = server.rule
    for _ in range(generations):
        expected = simulate(expected, rule)
        assert server.engine.step() == expected, f"generation {server.engine.generation}"
    return expected


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_equals_reference_for_random_worlds(make_server: MakeServer, processes: Processes,
                                            workers: int) -> None:
    cases: list[tuple[tuple[int, int], tuple[int, int] | None, str]] = [
        ((1, 1), None, "B3/S23"), ((2, 2), None, "B3/S23"), ((3, 3), None, "B36/S23"),
        ((2, 3), (1, 2), "B3/S23"), ((17, 23), (5, 7), "B3/S23"),
        ((40, 33), (8, 33), "B36/S23"), ((64, 64), None, "B2/S"),
    ]
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    for _ in range(workers):
        processes.worker(endpoint)
    # Each world gets a fresh server on the same worker port; the same worker processes
    # serve every case, reconnecting as each new server comes up.
    for i, (size, tile, rule) in enumerate(cases):
        server = make_server(worker_port=port, size=size, tile=tile, rule=parse_rule(rule))
        wait_for(lambda: server.broker.worker_count() == workers, 20,  # noqa: B023
                 what=f"{workers} workers")
        expected = random_world(server, seed=i)
        run_and_compare(server, expected, 12)
        server.close()


def test_known_patterns_through_workers(make_server: MakeServer, processes: Processes,
                                        tmp_path: Any) -> None:
    server = make_server(size=(16, 16), pattern=PATTERNS / "glider.rle", at=(0, 0),
                         tile=(4, 16))
    start_workers(processes, server, 2)
    start = server.engine.grid.copy()
    for n in range(1, 65):
        server.engine.step()
        assert (server.engine.grid == start) == (n == 64), n
    assert server.engine.generation == 64


@pytest.mark.parametrize("pattern, period", [("blinker", 2), ("block", 1), ("pulsar", 3)])
def test_oscillators_through_workers(make_server: MakeServer, processes: Processes,
                                     pattern: str, period: int) -> None:
    server = make_server(size=(17, 19), pattern=PATTERNS / f"{pattern}.rle", tile=(4, 19))
    start_workers(processes, server, 2)
    start = server.engine.grid.copy()
    for n in range(1, 2 * period + 1):
        server.engine.step()
        assert (server.engine.grid == start) == (n % period == 0), (pattern, n)


@pytest.mark.parametrize("how", ["kill -9", "stall"])
def test_a_worker_lost_mid_generation(make_server: MakeServer, processes: Processes,
                                      how: str) -> None:
    """``kill -9`` closes the worker's connection; ``stall`` (SIGSTOP) leaves it open, so
    only the missed heartbeats tell. Either way its batches go to the other worker, and
    the stalled one, resumed, answers for a generation that is over: ignored."""
    server = make_server(size=(30, 30), tile=(3, 30), heartbeat=0.2, dispatchers=4)
    victim, survivor = start_workers(processes, server, 2, "--io-latency", "0.3",
                                     "--credit", "2")
    expected = random_world(server, seed=11)
    errors: list[BaseException] = []

    def step() -> None:
        try:
            server.engine.step()
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=step)
    thread.start()
    # Mid-generation: some batches are in the victim's hands right now.
    wait_for(lambda: server.broker._workers and any(
        p.in_flight for p in list(server.broker._workers.values())
        if p.name.endswith(str(victim.pid))), 10, interval=0.005, what="a batch in flight")
    os.kill(victim.pid, signal.SIGKILL if how == "kill -9" else signal.SIGSTOP)
    thread.join(timeout=30)
    assert not thread.is_alive() and not errors, errors
    expected = simulate(expected, server.rule)
    assert server.engine.grid == expected
    assert server.broker.dropped_workers >= 1
    assert server.engine.resent >= 1
    if how == "stall":
        os.kill(victim.pid, signal.SIGCONT)  # its late answers and its return follow
        wait_for(lambda: server.broker.worker_count() == 2, 20, what="the worker's return")
        assert victim.poll() is None
    run_and_compare(server, expected, 3)
    assert survivor.poll() is None


def test_no_worker_means_wait_then_continue(make_server: MakeServer,
                                            processes: Processes) -> None:
    server = make_server(size=(20, 20), tile=(5, 5))
    expected = simulate(random_world(server, seed=5), server.rule)
    done = threading.Event()
    def step() -> None:
        server.engine.step()
        done.set()

    thread = threading.Thread(target=step)
    cpu_before = time.process_time()
    thread.start()
    assert not done.wait(1.5), "a generation was published without any worker"
    assert server.engine.generation == 0
    # Waiting is idle: the whole process used well under one core meanwhile.
    assert time.process_time() - cpu_before < 0.75
    start_workers(processes, server, 1)
    assert done.wait(20)
    thread.join()
    assert server.engine.grid == expected and server.engine.generation == 1


def test_a_batch_that_always_fails_raises_simulation_error(make_server: MakeServer,
                                                          processes: Processes) -> None:
    server = make_server(size=(8, 8), tile=(4, 8))
    start_workers(processes, server, 1)
    server.engine.rule = server.rule = _BadRule()  # type: ignore[assignment]
    with pytest.raises(SimulationError) as info:
        server.engine.step()
    assert info.value.cells and "rows" in str(info.value)
    assert server.engine.generation == 0


class _BadRule:
    """A rule whose text no worker accepts: every batch is answered with an error."""

    def __str__(self) -> str:
        return "B0/S"


def test_worker_exits_cleanly_on_sigterm(make_server: MakeServer,
                                         processes: Processes) -> None:
    server = make_server(size=(8, 8))
    [proc] = start_workers(processes, server, 1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    wait_for(lambda: server.broker.worker_count() == 0, 5, what="the worker's BYE")


def test_worker_reconnects_when_the_server_comes_back(make_server: MakeServer,
                                                      processes: Processes) -> None:
    server = make_server(size=(8, 8))
    start_workers(processes, server, 1)
    port = int(server.broker.bound_endpoint.rsplit(":", 1)[1])
    server.close()
    again = make_server(size=(8, 8), worker_port=port)
    wait_for(lambda: again.broker.worker_count() == 1, 20, what="the worker to come back")
    expected = simulate(again.engine.grid.copy(), again.rule)
    assert again.engine.step() == expected


def test_workers_with_the_books_per_cell_kernel(make_server: MakeServer,
                                                processes: Processes) -> None:
    """`--kernel python` runs count_neighbors and game_logic cell by cell: same world."""
    server = make_server(size=(12, 14), tile=(5, 14), rule=parse_rule("B36/S23"))
    start_workers(processes, server, 2, "--kernel", "python")
    expected = random_world(server, seed=21)
    run_and_compare(server, expected, 6)


@pytest.mark.parametrize("rule", ["B3/S23", "B36/S23"])
def test_bands_large_enough_for_the_bit_kernel(make_server: MakeServer,
                                               processes: Processes, rule: str) -> None:
    """A neutral world cut into bands of more than ``bitlife.MIN_CELLS`` cells: the
    workers and the server's own checks (``--verify all``) step them bit-parallel, and
    every generation equals NumPy's kernel (itself checked against the reference) on a
    width that is no multiple of 8 or 64."""
    server = make_server(size=(1100, 1027), tile=(550, 1027), rule=parse_rule(rule),
                         verify=Verification(1.0), batch_timeout=30.0)
    assert pays(550, 1027)
    start_workers(processes, server, 2)
    expected = random_world(server, seed=5, owners=False)
    for _ in range(4):
        expected = step_grid(expected, server.rule)
        assert server.engine.step() == expected, f"generation {server.engine.generation}"
    assert server.engine.checked == 8 and server.engine.caught == 0


@pytest.mark.parametrize("share", [True, False])
def test_a_packed_world_through_workers_and_back(make_server: MakeServer,
                                                 processes: Processes, share: bool) -> None:
    """A neutral world kept packed from one generation to the next (every world is large
    enough here), its bands sent as rows of words, with or without the server's own
    share: every generation equals the reference; a world with owners in it goes back to
    codes, and packed again once it is neutral."""
    server = make_server(size=(37, 131), rule=parse_rule("B36/S23"), dispatchers=4)
    server.engine.packed_min_cells = 0
    server.engine.share = share
    start_workers(processes, server, 2)
    expected = random_world(server, seed=9, owners=False)
    expected = run_and_compare(server, expected, 6)
    assert server.engine.grid.packed
    if share:
        assert server.engine.shared_locally > 0, "the server took no share of its own"
    else:
        assert server.engine.shared_locally == 0
    owned = random_world(server, seed=10, owners=True)
    expected = run_and_compare(server, owned, 3)
    assert not server.engine.grid.packed
    server.engine.grid = Grid.from_codes(np.minimum(expected.codes, 1))
    expected = run_and_compare(server, server.engine.grid.copy(), 3)
    assert server.engine.grid.packed
    assert server.engine.computed_locally == 0 and server.engine.caught == 0


@pytest.mark.parametrize("wide", [False, True])
def test_a_world_of_owners_shared_with_the_workers(make_server: MakeServer,
                                                   processes: Processes, wide: bool) -> None:
    """A large world with owners in it (a byte a cell, or two with player ids past 254)
    is shared as a packed one is: every share from none to all is tried in the first
    generations, the server steps its part with ``step_tile`` in its own threads, and
    every generation equals the reference, owners and births included."""
    server = make_server(size=(41, 67), rule=parse_rule("B36/S23"), dispatchers=4)
    server.engine.packed_min_cells = 0
    start_workers(processes, server, 2)
    rng = np.random.default_rng(12)
    owners = [1, 2, 3, 300, 70_000 // 2] if wide else [1, 2, 3, 4]
    codes = rng.choice([0, *owners], size=(41, 67), p=[.5] + [.5 / len(owners)] * len(owners))
    server.engine.grid = Grid.from_codes(codes)
    assert server.engine.grid.codes.dtype == (np.uint16 if wide else np.uint8)
    run_and_compare(server, server.engine.grid.copy(), 14)
    assert not server.engine.grid.packed
    tried = server.engine.sharing_owned.seconds
    assert sorted(tried) == list(range(9)), f"shares tried: {sorted(tried)}"
    assert server.engine.shared_locally > 0 and server.engine.computed_locally == 0


def test_a_packed_world_with_a_narrow_tiling_is_stepped_in_codes(
        make_server: MakeServer, processes: Processes) -> None:
    """``--tile`` narrower than the world: not whole rows, so not packed."""
    server = make_server(size=(20, 70), tile=(7, 30))
    server.engine.packed_min_cells = 0
    start_workers(processes, server, 1)
    expected = random_world(server, seed=11, owners=False)
    run_and_compare(server, expected, 3)
    assert not server.engine.grid.packed
