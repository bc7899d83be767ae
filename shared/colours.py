"""The colour of each cell code, shared by every view of the world.

One table, so that the server's live view (``lifenet up``) and the player's terminal
client show a player in the same colour. Colours are indices of the xterm 256-colour
palette: code 0 (empty) is a dark grey background, code 1 (neutral) a mid grey, then one
colour per player.

The players' colours are the fully saturated hues of the 6x6x6 colour cube (one channel
at full, one off, the third at any of its six levels: 30 hues around the wheel), with
pure red left out (it marks what cannot be done: occupied cells under a preview, an
unaffordable pattern) and no grey, white or near-white among them (neutral cells and the
cursor). They are dealt with a stride of 11 hues (132 degrees), so players who join one
after the other get colours far apart; after 29 players the colours repeat, and a client
tells its own cells apart by other means (``client.tui`` dims the others of its colour).
"""

from __future__ import annotations

EMPTY_BG = 234
NEUTRAL = 244
CURSOR = 231     # white: no player's colour is near it
WARNING = 196    # pure red: no player's colour is it
HUE_STRIDE = 11


def _cube(r: int, g: int, b: int) -> int:
    return 16 + 36 * r + 6 * g + b


def _wheel() -> list[int]:
    """The 30 saturated hues of the colour cube, in order around the wheel from red."""
    hues = []
    for step in range(30):
        edge, level = divmod(step, 5)
        rising, falling = level, 5 - level
        rgb = [(5, rising, 0), (falling, 5, 0), (0, 5, rising), (0, falling, 5),
               (rising, 0, 5), (5, 0, falling)][edge]
        hues.append(_cube(*rgb))
    return hues


def _players() -> list[int]:
    wheel = _wheel()[1:]  # without pure red
    return [wheel[(i * HUE_STRIDE) % len(wheel)] for i in range(len(wheel))]


PLAYERS = _players()
PALETTE = [EMPTY_BG, NEUTRAL, *PLAYERS]


def colour(code: int) -> int:
    """The 256-colour index that shows cell code ``code``."""
    if code < 2:
        return PALETTE[code]
    return PLAYERS[(code - 2) % len(PLAYERS)]
