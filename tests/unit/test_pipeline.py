from __future__ import annotations

from queue import Queue

from server.generation import Tiling, choose_tiling
from shared.pipeline import ClosableQueue, Outcome, StoppableWorker


def test_stoppable_workers_carry_exceptions_to_the_collector() -> None:
    def square(n: int) -> int:
        if n == 3:
            raise ValueError("three")
        return n * n

    in_queue: ClosableQueue[int] = ClosableQueue(maxsize=2)
    out_queue: Queue[Outcome[int, int]] = Queue()
    threads = [StoppableWorker(square, in_queue, out_queue) for _ in range(3)]
    for t in threads:
        t.start()
    for n in range(6):
        in_queue.put(n)
    for _ in threads:
        in_queue.close()
    in_queue.join()
    for t in threads:
        t.join(timeout=5)
        assert not t.is_alive()
    outcomes = [out_queue.get() for _ in range(6)]
    assert sorted(o.result for o in outcomes if o.error is None) == [0, 1, 4, 16, 25]  # type: ignore[type-var]
    [failed] = [o for o in outcomes if o.error is not None]
    assert failed.item == 3 and isinstance(failed.error, ValueError)


def test_tiles_cover_the_world_exactly_once() -> None:
    for (h, w), tiling in [((17, 23), Tiling(5, 7)), ((1, 1), Tiling(4, 4)),
                           ((64, 64), choose_tiling(64, 64, 4)),
                           ((1000, 3), choose_tiling(1000, 3, 16))]:
        seen = [[0] * w for _ in range(h)]
        for y, x, th, tw in tiling.cut(h, w):
            assert th >= 1 and tw >= 1
            for yy in range(y, y + th):
                for xx in range(x, x + tw):
                    seen[yy][xx] += 1
        assert all(v == 1 for row in seen for v in row)


def test_choose_tiling_uses_full_width_bands() -> None:
    tiling = choose_tiling(4096, 4096, 16)
    assert tiling.w == 4096 and len(tiling.cut(4096, 4096)) == 16
    assert len(choose_tiling(2, 2, 16).cut(2, 2)) == 1


def test_choose_tiling_from_the_workers() -> None:
    # Two bands per worker at most, and none smaller than it pays for.
    assert len(choose_tiling(4096, 4096, 16, workers=2).cut(4096, 4096)) == 4
    assert len(choose_tiling(1024, 1024, 16, workers=2).cut(1024, 1024)) == 1
    assert len(choose_tiling(2048, 2048, 16, workers=3).cut(2048, 2048)) == 4
    assert len(choose_tiling(4096, 4096, 2, workers=8).cut(4096, 4096)) == 2
