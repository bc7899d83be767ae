"""The memory guard's decisions, on a heap whose size the test sets."""

from __future__ import annotations

import pytest

from server import transport
from server.transport import MemoryGuard


class Heap:
    def __init__(self, mb: float) -> None:
        self.mb = mb

    def __call__(self) -> float:
        return self.mb


@pytest.fixture
def heap(monkeypatch: pytest.MonkeyPatch) -> Heap:
    heap = Heap(100.0)
    monkeypatch.setattr(transport, "allocated_mb", heap)
    monkeypatch.setattr(transport, "resident_mb", lambda: heap.mb)  # most tests: alike
    monkeypatch.setattr(MemoryGuard, "CHECK_EVERY", 0.0)
    monkeypatch.setattr(MemoryGuard, "WALK_EVERY", 3600.0)  # walked when resident says
    monkeypatch.setattr(MemoryGuard, "SETTLE", 0.0)
    return heap


def test_nothing_is_due_under_the_limit_or_before_arming(heap: Heap) -> None:
    guard = MemoryGuard(50)
    heap.mb = 1000
    assert not guard.due("players")  # not armed: no baseline
    guard.arm()
    heap.mb = 1049
    assert not any(guard.due(name) for name in MemoryGuard.ORDER)


def test_over_the_limit_the_endpoints_drop_in_order_until_it_is_freed(heap: Heap) -> None:
    guard = MemoryGuard(50)
    guard.arm()
    heap.mb = 151
    assert not guard.due("frames") and not guard.due("workers")  # the players go first
    assert guard.due("players")
    guard.dropped("players", 151)  # freed nothing
    assert guard.due("frames")
    heap.mb = 110
    guard.dropped("frames", 151)  # freed it: the first suspect next time
    heap.mb = 160
    assert not guard.due("players")
    assert guard.due("frames")
    assert guard.trips == 3


def test_rebase_takes_the_working_set_of_the_first_generations(heap: Heap) -> None:
    guard = MemoryGuard(50, slack_mb=40)  # 90 MiB of growth allowed
    guard.arm()
    heap.mb = 140  # the next boards and batches of a big world
    guard.rebase()
    heap.mb = 230
    assert not guard.due("players")
    heap.mb = 231
    assert guard.due("players")


def test_rebase_forgives_at_most_the_slack_and_nothing_after_a_trip(heap: Heap) -> None:
    guard = MemoryGuard(50, slack_mb=40)
    guard.arm()
    heap.mb = 400
    guard.rebase()
    assert guard.baseline == 140  # an attacker's early growth is not all forgiven
    tripped = MemoryGuard(50)
    heap.mb = 100
    tripped.arm()
    heap.mb = 151
    assert tripped.due("players")
    tripped.rebase()
    assert tripped.baseline == 100


def test_the_heap_is_walked_only_when_the_resident_size_is_past_the_limit(
        heap: Heap, monkeypatch: pytest.MonkeyPatch) -> None:
    """``mallinfo2`` costs milliseconds in a busy server: it is read only when the
    cheap measure says the limit may be passed, and both must say so."""
    resident = Heap(300.0)
    walks: list[float] = []

    def walked() -> float:
        walks.append(heap.mb)
        return heap.mb

    monkeypatch.setattr(transport, "resident_mb", resident)
    monkeypatch.setattr(transport, "allocated_mb", walked)
    guard = MemoryGuard(50)
    guard.arm()
    walks.clear()
    heap.mb = 500  # (allocated but untouched: the machine gave it no pages yet)
    resident.mb = 349
    assert not any(guard.due(name) for name in MemoryGuard.ORDER)
    assert walks == []  # under the limit by the resident size: no walk at all
    resident.mb = 351  # past it: the heap is walked, and it holds the growth
    assert guard.due("players")
    assert walks
    heap.mb = 120  # freed, though glibc keeps the pages: not due any more
    guard.dropped("players", 500)
    assert not any(guard.due(name) for name in MemoryGuard.ORDER)
    resident.mb = 300  # paged out (swap): the resident size says nothing...
    heap.mb = 500
    walks.clear()
    assert not any(guard.due(name) for name in MemoryGuard.ORDER) and walks == []
    guard._next_walk = 0.0  # ... but the heap is walked once a second all the same
    assert guard.due("players") and walks


def test_a_growth_the_resident_size_does_not_show_drops_every_endpoint_in_turn(
        heap: Heap, monkeypatch: pytest.MonkeyPatch) -> None:
    """Swap: the resident size stays flat while the heap stays over the limit. Once a
    walk found it over, the next looks walk it again, so the endpoints take turns
    rather than the first one dropping once a second forever."""
    monkeypatch.setattr(transport, "resident_mb", lambda: 100.0)
    guard = MemoryGuard(50)
    guard.arm()
    heap.mb = 500
    guard._next_walk = 0.0  # the once-a-second walk is due
    dropped = []
    for _ in range(8):
        for name in MemoryGuard.ORDER:
            if guard.due(name):
                dropped.append(name)
                guard.dropped(name, heap.mb)  # freed nothing
    assert dropped[:4] == list(MemoryGuard.ORDER)
