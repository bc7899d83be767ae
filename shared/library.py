"""The pattern library: the patterns shipped with lifenet (``shared/patterns/*.rle``).

The clients offer these to place (the terminal client's ``[`` ``]``) and the bots pick
from them. ("Palette" in lifenet means the colours of ``shared.colours`` only.)
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from shared.rle import Pattern, parse_rle

PATTERN_DIR = Path(__file__).resolve().parent / "patterns"


@cache
def library() -> dict[str, tuple[str, Pattern]]:
    """Every shipped pattern: name -> (RLE text, parsed pattern), fewest cells first."""
    found = {}
    for path in sorted(PATTERN_DIR.glob("*.rle")):
        text = path.read_text()
        found[path.stem] = (text, parse_rle(text))
    return dict(sorted(found.items(), key=lambda kv: int(kv[1][1].codes.astype(bool).sum())))
