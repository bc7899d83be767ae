"""Keep freed memory in the process, so NumPy's large temporaries cost no page faults.

Every generation allocates and frees arrays of a tile's size (neighbour sums, the next
generation, received frames). glibc serves blocks above its mmap threshold with fresh
``mmap`` pages and returns them on ``free``; its threshold adapts upwards only when the
block is freed in a way it notices, which zero-copy ZeroMQ sends (freed later, by pyzmq's
garbage-collector thread) defeat. Then every temporary is faulted in page by page: a
worker measured 1 485 minor faults and 5.4 ms for a 1024x1024 tile that computes in
0.6 ms when its memory is reused.

``keep_freed_memory`` fixes the threshold at 32 MiB (glibc's ceiling; a 4096x4096 tile
is 16 MiB) and lets up to 512 MiB of freed heap stay mapped. It costs that much resident
memory at most, and does nothing where glibc's ``mallopt`` is not available.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 512 << 20

_done = False


def keep_freed_memory() -> bool:
    """Tune glibc's malloc for this process (once); whether it was done."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
        _done = ok
    return _done
