"""What publishing every chunk of a 4096x4096 world costs the server's main thread.

The worst case of the view publisher: every chunk wanted (viewers together, or one
asking for all of them in four VIEW requests), a generation where a twentieth of the
cells changed. No subscriber: the cost measured is the server's (slicing, messages,
sends), which libzmq's filtering does not change.

    .venv/bin/python scripts/viewport_publish_cost.py
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import zmq

from server.viewports import Interest, ViewPublisher


def main() -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    interest = Interest(4096, 4096)
    every = [[y, x] for y in range(64) for x in range(64)]
    for i in range(0, len(every), 1024):
        interest.want(every[i:i + 1024])
    views = ViewPublisher(ctx, "tcp://127.0.0.1:*", interest)
    rng = np.random.default_rng(1)
    before = (rng.random((4096, 4096)) < 0.2).astype(np.uint8)
    after = before.copy()
    after[rng.random((4096, 4096)) < 0.05] ^= 1
    info: dict[str, Any] = dict(population=1, ms=1.0, workers=0, rule="B3/S23")
    views.publish(1, before, None, info)
    times = []
    for gen in range(2, 12):
        began = time.perf_counter()
        views.publish(gen, after, before != after, info)
        times.append(time.perf_counter() - began)
    print(f"every chunk of 4096 wanted: {sorted(times)[len(times) // 2] * 1000:.0f} ms a "
          f"publish (median of {len(times)})")
    views.close()
    ctx.term()


if __name__ == "__main__":
    main()
