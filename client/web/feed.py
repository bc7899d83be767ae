"""The world, watched once for every tab: a ``FrameView`` in a thread of its own.

However many tabs are open, the gateway is one subscriber of the server's frames: the
``WorldFeed`` thread owns the SUB socket (``shared.frames.FrameView``, the one decoder
of the server's frames and deltas, narrow or wide), and after each generation it hands
a ``Generation`` (the whole world, copied; the cells that changed since the one before;
the frame's information) to the event loop through ``deliver``. What changed is found
by comparing the two worlds, so a gap in the server's frames (a dropped delta, then a
full frame) is still one exact delta for the tabs, and no tab ever sees the server's
wire format.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import zmq

from client.web.encoding import Codes, info_bytes
from shared.frames import FrameView
from shared.keys import Credentials

log = logging.getLogger("lifenet.web")

POLL_SECONDS = 0.2  # how often the thread looks at its stop flag while no frame comes


@dataclass
class Generation:
    """One generation as the tabs get it."""

    gen: int
    world: Codes                                  # the whole world (a copy: read-only)
    info: dict[str, Any]                          # the frame's body (no cells)
    base: int = -1                                # the generation ``changed`` is against
    changed: npt.NDArray[np.int64] | None = None  # flat indices (None: no base)
    received: float = 0.0                         # time.monotonic() when it came
    info_json: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.info_json = info_bytes(self.info)


class WorldFeed(threading.Thread):
    """Watches the frame publisher at ``endpoint`` and calls ``deliver`` (from this
    thread) with every new ``Generation``; ``stop`` ends it."""

    def __init__(self, endpoint: str, credentials: Credentials | None,
                 deliver: Callable[[Generation], None]) -> None:
        super().__init__(name="web-feed", daemon=True)
        self.endpoint = endpoint
        self.credentials = credentials
        self.deliver = deliver
        self.stop = threading.Event()
        self.generations = 0

    def run(self) -> None:
        import time

        context: zmq.Context[Any] = zmq.Context()
        view = FrameView(self.endpoint, context, self.credentials)
        last: Generation | None = None
        try:
            while not self.stop.is_set():
                if not view.poll(POLL_SECONDS) or view.codes is None:
                    continue
                world = view.codes.copy()
                world.flags.writeable = False
                changed = None
                if last is not None and last.world.shape == world.shape \
                        and last.world.dtype == world.dtype:
                    changed = np.flatnonzero(last.world != world)
                last = Generation(view.gen, world, dict(view.info),
                                  last.gen if changed is not None and last else -1, changed,
                                  time.monotonic())
                self.generations += 1
                self.deliver(last)
        except Exception:  # never a silent death: every tab's world would freeze
            log.exception("the world feed failed")
            raise
        finally:
            view.close()
            context.destroy(linger=0)
