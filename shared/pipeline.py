"""The book's Queue pipeline: ``ClosableQueue`` and ``StoppableWorker`` (Effective Python
item 55), and the ``Outcome`` that carries an exception back (item 58).

A ``ClosableQueue`` is iterated until it is closed; a ``StoppableWorker`` thread takes
items from one, processes them and puts an ``Outcome`` on another. As in item 58, an
exception raised while processing is not lost in the thread: it travels in the outcome,
and the thread that collects outcomes decides what to raise (lifenet raises
``SimulationError``). The worker survives the failure and takes the next item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from queue import Queue
from threading import Thread
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class ClosableQueue(Queue[Any], Generic[T]):
    """A ``Queue`` that can be closed; iterating it yields items until it is closed.

    ``close()`` puts one sentinel, which stops one iterating thread: close once for
    every thread that iterates. ``task_done`` is called for every item taken, so
    ``join()`` works as with a plain ``Queue``.
    """

    SENTINEL = object()

    def close(self) -> None:
        self.put(self.SENTINEL)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self.get()
            try:
                if item is self.SENTINEL:
                    return
                yield item
            finally:
                self.task_done()


@dataclass
class Outcome(Generic[T, R]):
    """What a worker made of one item: its result, or the exception it raised."""

    item: T
    result: R | None = None
    error: BaseException | None = None


class StoppableWorker(Thread, Generic[T, R]):
    """A thread that applies ``func`` to every item of ``in_queue`` until it is closed.

    Subclasses that own resources which must live in the thread (a ZeroMQ socket belongs
    to the thread that made it) override ``setup`` and ``teardown``, which run inside the
    thread around the loop.
    """

    def __init__(self, func: Callable[[T], R] | None, in_queue: ClosableQueue[T],
                 out_queue: Queue[Outcome[T, R]], name: str | None = None) -> None:
        super().__init__(name=name, daemon=True)
        self.func = func
        self.in_queue = in_queue
        self.out_queue = out_queue

    def setup(self) -> None:
        """Runs in the thread before the first item."""

    def teardown(self) -> None:
        """Runs in the thread after the queue is closed (or the loop failed)."""

    def process(self, item: T) -> R:
        assert self.func is not None, "give a func or override process()"
        return self.func(item)

    def run(self) -> None:
        self.setup()
        try:
            for item in self.in_queue:
                try:
                    outcome: Outcome[T, R] = Outcome(item, result=self.process(item))
                except Exception as e:  # carried to the collecting thread, as in item 58
                    outcome = Outcome(item, error=e)
                self.out_queue.put(outcome)
        finally:
            self.teardown()
