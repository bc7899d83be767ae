"""Rates, bounded: a token bucket, and a log that a flood cannot flood.

A peer decides how often it sends; the server decides how often that costs it
anything. ``TokenBucket`` is the usual shape of such a limit: ``rate`` tokens a second
up to ``burst`` saved, one taken per request, a request with no token refused.
``LogLimiter`` applies the same to log lines about what peers do: one line per kind of
event (a key, a peer, a reason) per interval, a few lines a second overall, and the
lines it held back counted and said with the next one that goes out, so a flood of bad
traffic costs the log a few lines, not megabytes, and the count is never lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` kept; ``take`` spends them."""

    def __init__(self, rate: float, burst: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = burst
        self.stamp = clock()

    def take(self, n: float = 1.0) -> bool:
        """Spend ``n`` tokens if there are so many; whether there were."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


class LogLimiter:
    """Log lines about peers, at most one per ``key`` per ``interval`` and ``overall``
    lines per ``interval`` in all; the rest counted, and said with the next line."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0, overall: int = 30,
                 remember: int = 4096) -> None:
        self.logger = logger
        self.interval = interval
        self.remember = remember
        self._budget = TokenBucket(overall / interval, overall)
        self._last: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self.suppressed = 0
        self.total = 0

    def log(self, level: int, key: str, msg: str, *args: object,
            exc_info: bool = False) -> bool:
        """Log ``msg % args`` unless this ``key`` or the whole budget is spent; whether
        it was logged."""
        now = time.monotonic()
        with self._lock:
            self.total += 1
            last = self._last.get(key)
            if (last is not None and now - last < self.interval) or not self._budget.take():
                self.suppressed += 1
                return False
            self._last[key] = now
            self._last.move_to_end(key)
            while len(self._last) > self.remember:
                self._last.popitem(last=False)
            held, self.suppressed = self.suppressed, 0
        if held:
            msg += " (and %d more such lines held back before this one)"
            args = (*args, held)
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def warning(self, key: str, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def error(self, key: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        return self.log(logging.ERROR, key, msg, *args, exc_info=exc_info)
