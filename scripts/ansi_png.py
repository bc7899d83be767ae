#!/usr/bin/env python3
"""Render a terminal capture with colours (``tmux capture-pane -e -p``) to a PNG.

Usage: ``tmux capture-pane -t SESSION -e -p | scripts/ansi_png.py OUT.png``

It reads SGR colour codes (the 8/16 colours, 256 colours and true colour, bold,
reverse) and draws each cell: the block characters the client draws the world with
(``▀ ▄ █``) as rectangles, so that two world rows share one text row without seams,
everything else with DejaVu Sans Mono. Needs Pillow (the ``bench`` extra has it).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, replace

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
SIZE = 15
DEFAULT_FG = (229, 229, 229)
DEFAULT_BG = (12, 12, 12)
BASIC = [(0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16), (36, 114, 200),
         (188, 63, 188), (17, 168, 205), (229, 229, 229), (102, 102, 102), (241, 76, 76),
         (35, 209, 139), (245, 245, 67), (59, 142, 234), (214, 112, 214), (41, 184, 219),
         (255, 255, 255)]
SGR = re.compile(r"\x1b\[([0-9;]*)m")
RGB = tuple[int, int, int]


def palette(n: int) -> RGB:
    """The xterm 256-colour palette."""
    if n < 16:
        return BASIC[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return steps[n // 36], steps[n // 6 % 6], steps[n % 6]
    grey = 8 + 10 * (n - 232)
    return grey, grey, grey


@dataclass(frozen=True)
class Style:
    fg: RGB = DEFAULT_FG
    bg: RGB = DEFAULT_BG
    bold: bool = False
    reverse: bool = False


def apply(style: Style, params: str) -> Style:
    """``style`` after one SGR sequence's parameters."""
    codes = [int(c) if c else 0 for c in params.split(";")] if params else [0]
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            style = Style()
        elif c == 1:
            style = replace(style, bold=True)
        elif c == 22:
            style = replace(style, bold=False)
        elif c == 7:
            style = replace(style, reverse=True)
        elif c == 27:
            style = replace(style, reverse=False)
        elif 30 <= c <= 37 or 90 <= c <= 97:
            style = replace(style, fg=BASIC[c - 30 if c < 90 else c - 82])
        elif 40 <= c <= 47 or 100 <= c <= 107:
            style = replace(style, bg=BASIC[c - 40 if c < 100 else c - 92])
        elif c == 39:
            style = replace(style, fg=DEFAULT_FG)
        elif c == 49:
            style = replace(style, bg=DEFAULT_BG)
        elif c in (38, 48) and i + 1 < len(codes):
            if codes[i + 1] == 5 and i + 2 < len(codes):
                colour = palette(codes[i + 2])
                i += 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                colour = (codes[i + 2], codes[i + 3], codes[i + 4])
                i += 4
            else:
                break
            style = replace(style, fg=colour) if c == 38 else replace(style, bg=colour)
        i += 1
    return style


def cells(text: str) -> list[list[tuple[str, Style]]]:
    """Each line of the capture as (character, style) cells."""
    rows = []
    style = Style()
    for line in text.split("\n"):
        row = []
        pos = 0
        for m in SGR.finditer(line):
            row += [(ch, style) for ch in line[pos:m.start()] if ch >= " "]
            style = apply(style, m.group(1))
            pos = m.end()
        row += [(ch, style) for ch in line[pos:] if ch >= " "]
        rows.append(row)
    while rows and not rows[-1]:
        rows.pop()
    return rows


def render(text: str) -> Image.Image:
    font = ImageFont.truetype(FONT, SIZE)
    width = round(font.getlength("M"))
    height = SIZE + 4
    rows = cells(text)
    columns = max((len(r) for r in rows), default=1)
    image = Image.new("RGB", (columns * width, len(rows) * height), DEFAULT_BG)
    draw = ImageDraw.Draw(image)
    for y, row in enumerate(rows):
        for x, (ch, style) in enumerate(row):
            fg, bg = (style.bg, style.fg) if style.reverse else (style.fg, style.bg)
            left, top = x * width, y * height
            box = (left, top, left + width - 1, top + height - 1)
            half = top + height // 2
            draw.rectangle(box, fill=bg)
            if ch == "▀":
                draw.rectangle((left, top, left + width - 1, half - 1), fill=fg)
            elif ch == "▄":
                draw.rectangle((left, half, left + width - 1, top + height - 1), fill=fg)
            elif ch == "█":
                draw.rectangle(box, fill=fg)
            elif ch != " ":
                draw.text((left, top + 1), ch, font=font, fill=fg)
                if style.bold:
                    draw.text((left + 1, top + 1), ch, font=font, fill=fg)
    return image


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    render(sys.stdin.read()).save(sys.argv[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
