"""Life-like rules in B/S notation (``B3/S23`` is Conway's Life).

A rule says, for a cell with ``n`` live neighbours (0..8), whether an empty cell is born
and whether a live cell survives. Rules with ``B0`` are refused: on an infinite plane
they make the whole background flash, and lifenet's torus would do the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from shared.errors import RuleError

_BS = re.compile(r"^B([0-8]*)/S([0-8]*)$", re.IGNORECASE)
_SB = re.compile(r"^([0-8]*)/([0-8]*)$")  # the older S/B form: "23/3"


@dataclass(frozen=True)
class Rule:
    """A validated Life-like rule; ``str(rule)`` is its canonical ``B../S..`` text."""

    birth: frozenset[int]
    survive: frozenset[int]

    def __post_init__(self) -> None:
        for n in self.birth | self.survive:
            if not 0 <= n <= 8:
                raise RuleError(f"neighbour count {n} is not in 0..8")
        if 0 in self.birth:
            raise RuleError(
                f"rule {self} has B0: an empty cell with no live neighbours would be born, "
                "so the whole world would flash; lifenet refuses B0 rules")

    def __str__(self) -> str:
        return ("B" + "".join(map(str, sorted(self.birth)))
                + "/S" + "".join(map(str, sorted(self.survive))))

    def born(self, neighbors: int) -> bool:
        """Whether an empty cell with ``neighbors`` live neighbours comes alive."""
        return neighbors in self.birth

    def survives(self, neighbors: int) -> bool:
        """Whether a live cell with ``neighbors`` live neighbours stays alive."""
        return neighbors in self.survive

    @cached_property
    def table(self) -> npt.NDArray[np.bool_]:
        """Lookup table for vectorised kernels: ``table[alive * 9 + neighbors]``."""
        t = np.zeros(18, dtype=np.bool_)
        for n in self.birth:
            t[n] = True
        for n in self.survive:
            t[9 + n] = True
        return t


CONWAY = Rule(frozenset({3}), frozenset({2, 3}))


def parse_rule(text: str) -> Rule:
    """Parse ``B3/S23`` (any case, any digit order) or the older ``23/3`` form.

    Raises ``RuleError`` with the reason on anything else.
    """
    if not isinstance(text, str):
        raise RuleError(f"a rule is text like B3/S23, not {type(text).__name__}")
    cleaned = text.strip().replace(" ", "")
    m = _BS.match(cleaned)
    if m:
        born, survive = m.group(1), m.group(2)
    else:
        m = _SB.match(cleaned)
        if not m:
            raise RuleError(f"rule {text!r} is not in B/S notation (for example B3/S23)")
        survive, born = m.group(1), m.group(2)
    for digits in (born, survive):
        if len(set(digits)) != len(digits):
            raise RuleError(f"rule {text!r} repeats a neighbour count")
    return Rule(frozenset(int(c) for c in born), frozenset(int(c) for c in survive))
