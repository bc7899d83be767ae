"""``Wakeup``: other threads wake a thread's poller through a pipe, once until it
clears, and never lose a wake-up that comes while it clears."""

from __future__ import annotations

import os
import select
import threading

from server.transport import Wakeup


def readable(wakeup: Wakeup) -> bool:
    return bool(select.select([wakeup.fileno()], [], [], 0)[0])


def test_many_sets_are_one_byte_and_a_set_after_clear_wakes_again() -> None:
    wakeup = Wakeup()
    try:
        assert not readable(wakeup)
        for _ in range(1000):
            wakeup.set()
        assert readable(wakeup)
        assert os.read(wakeup.fileno(), 4096) == b"\0"  # one byte for a thousand sets
        wakeup.clear()
        assert not readable(wakeup)
        wakeup.set()
        assert readable(wakeup)
        wakeup.clear()
        assert not readable(wakeup)
    finally:
        wakeup.close()
    wakeup.set()  # after close: nothing, no error


def test_no_wakeup_is_lost_while_the_owner_clears() -> None:
    """Producers set it while the owner clears and looks at its queue: whenever a
    producer has put something the owner has not taken, the pipe is readable."""
    wakeup = Wakeup()
    queue: list[int] = []
    lock = threading.Lock()
    done = threading.Event()

    def produce() -> None:
        for i in range(20000):
            with lock:
                queue.append(i)
            wakeup.set()
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    taken = 0
    try:
        while not (done.is_set() and taken == 20000):
            if not select.select([wakeup.fileno()], [], [], 2.0)[0]:
                with lock:
                    left = len(queue)
                assert left == 0, f"{left} items waiting and no wake-up"
                continue
            wakeup.clear()
            with lock:
                taken += len(queue)
                queue.clear()
    finally:
        producer.join()
        wakeup.close()
    assert taken == 20000
