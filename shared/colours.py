"""The colour of each cell code, shared by every view of the world.

One table, so that the server's live view (``lifenet up``) and the player's terminal
client show a player in the same colour. Colours are indices of the xterm 256-colour
palette: code 0 (empty) is a dark grey background, code 1 (neutral) a light grey, then
one distinct colour per player; past the table, a colour derived from the code.
"""

from __future__ import annotations

EMPTY_BG = 234
PALETTE = [EMPTY_BG, 252, 203, 75, 113, 221, 177, 80, 209, 141, 120, 215, 39, 198]


def colour(code: int) -> int:
    """The 256-colour index that shows cell code ``code``."""
    if code < len(PALETTE):
        return PALETTE[code]
    return 17 + (code * 37) % 214
