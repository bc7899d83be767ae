"""Verified results: the server checks what workers answer, and computes what none can.

A worker on the allow-list is trusted to connect, not to be right: a bug, a flipped
bit or a compromised machine could answer a batch wrongly, and a wrong tile once
published is the world. ``--verify`` decides how many answers the server checks:

    off         none (the workers are trusted)
    sample:P    a fraction P of the batches, drawn at random by the server after the
                answer came (``secrets.SystemRandom``): a worker cannot tell which
    all         every batch: the world is exact even with a liar among the workers

A check computes the batch here, with the same kernels as the workers
(``shared.bitlife`` for a packed tile of neutral cells, ``shared.kernel.step_tile`` for
one with owners), and compares. On a mismatch the server's result is the
one pasted, the worker is quarantined (``server.broker``), and every other answer it gave
in the generation is recomputed here before the generation is published. BOINC's
replication is the model; computing the check locally makes the server the third,
trusted computation that settles every disagreement at once.

The same local computation is the server's fallback when no worker can take a batch in
time (``--fallback-after``): the world keeps going with no workers, or all of them
stalled.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.bitlife import pays, step_band, step_wire
from shared.errors import ConfigError
from shared.grid import Codes, unpack_bits
from shared.kernel import rule_table, step_tile
from shared.rules import Rule, parse_rule

MAX_RULE_TABLES = 16


@dataclass(frozen=True)
class Verification:
    """How many answers to check: ``fraction`` of them (0: none, 1: all)."""

    fraction: float

    @classmethod
    def parse(cls, text: str) -> Verification:
        """``off``, ``all`` or ``sample:P`` (0 < P <= 1)."""
        text = text.strip().lower()
        if text == "off":
            return cls(0.0)
        if text == "all":
            return cls(1.0)
        if text.startswith("sample:"):
            try:
                fraction = float(text.split(":", 1)[1])
            except ValueError:
                fraction = -1.0
            if 0.0 < fraction <= 1.0:
                return cls(fraction)
        raise ConfigError(f"--verify {text!r}: give off, all or sample:P with 0 < P <= 1 "
                          "(for example sample:0.05)")

    def __str__(self) -> str:
        if self.fraction <= 0:
            return "off"
        return "all" if self.fraction >= 1 else f"sample:{self.fraction:g}"

    def picks(self) -> bool:
        """Whether to check this answer: drawn after it came, unpredictably."""
        if self.fraction <= 0:
            return False
        return self.fraction >= 1 or _random.random() < self.fraction


_random = secrets.SystemRandom()
UNVERIFIED = Verification(0.0)


class LocalKernel:
    """Computes batches in the server's own process (any thread): the verifier's
    reference and the fallback when no worker can. A packed (neutral) batch is stepped
    by the bit kernel where it pays (``bitlife.pays``), as a worker steps it; the others
    by ``step_tile``."""

    def __init__(self) -> None:
        self._rules: OrderedDict[str, tuple[Rule, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def _rule(self, text: str) -> tuple[Rule, Any]:
        """The rule and its table, from a small cache."""
        with self._lock:
            known = self._rules.get(text)
            if known is None:
                rule = parse_rule(text)
                known = self._rules[text] = (rule, rule_table(rule))
                while len(self._rules) > MAX_RULE_TABLES:
                    self._rules.popitem(last=False)
            else:
                self._rules.move_to_end(text)
            return known

    def compute(self, tile: Codes, h: int, w: int, rule: str, packed: bool,
                rows: bool = False) -> Codes:
        """The next generation of the ``h`` x ``w`` cells inside a tile with its halo;
        with ``rows``, of a band of a packed world (``h`` whole rows and the rows around
        them, in words: ``shared.bitlife.step_band``), as words."""
        parsed, table = self._rule(rule)
        if rows:
            return step_band(tile, h, w, parsed)
        if packed and pays(h, w):
            return unpack_bits(step_wire(tile, h, w, parsed), (h, w))
        padded = unpack_bits(tile, (h + 2, w + 2)) if packed else tile.reshape(h + 2, w + 2)
        result: Codes = step_tile(np.ascontiguousarray(padded), table)
        return result
