#!/usr/bin/env python3
"""Before and after on the product path, in one command: ``lifenet up --headless`` of an
earlier tree (``--before DIR``: a ``git archive`` of it), of this one, and Golly's
QuickLife, alternated turn by turn on the same torus soups (fill 0.35, seed 1).

    .venv/bin/python scripts/product_bench.py --before /tmp/lifenet-main \\
        [--size 1024 --size 4096] [--turns 3] [--short 20] [--long 220]

Each figure is a long run minus a short run over the difference of generations (start-up,
the soup and the exit cancel out); medians of the turns, with every turn printed, and the
servers' largest resident size seen. "after, loop" is the same long runs timed by the
server's own loop (``lifenet server`` logs it: the generations after its first 10), which
the start-up's noise of a second or two does not reach. Golly's population after the short
run is checked against this tree's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from server.tools.product import LOOP_LINE, run_golly, run_up, soup_grid
from shared.formats import read_pattern
from shared.rle import write_rle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--size", type=int, action="append")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--short", type=int, default=20)
    parser.add_argument("--long", type=int, default=220)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    span = args.long - args.short
    for side in args.size or [1024, 4096]:
        shape = (side, side)
        ms: dict[str, list[float]] = {"before": [], "after": [], "golly": [],
                                      "after, loop": []}
        rss: dict[str, int] = {"before": 0, "after": 0}
        stages: list[str] = []
        with tempfile.TemporaryDirectory() as tmp:
            out, soup = Path(tmp) / "out.rle", Path(tmp) / "soup.rle"
            lines = write_rle(soup_grid(shape).codes).splitlines()
            soup.write_text("\n".join(line + f", rule = B3/S23:T{side},{side}"
                                      if line.startswith("x =") else line
                                      for line in lines) + "\n")
            for turn in range(args.turns):
                print(f"{side}x{side} turn {turn + 1}, load {os.getloadavg()[0]:.1f}",
                      flush=True)
                for which, code in (("before", args.before), ("after", None)):
                    short, _, _ = run_up(shape, args.short, args.workers, out, code=code)
                    if turn == 0 and which == "after":
                        mine = int((read_pattern(out).codes != 0).sum())
                        _, golly_pop = run_golly(soup, args.short)
                        assert mine == golly_pop, (mine, golly_pop)
                    long, log, peak = run_up(shape, args.long, args.workers, out, code=code)
                    ms[which].append((long - short) * 1000 / span)
                    rss[which] = max(rss[which], peak)
                    if which == "after":
                        stages = [line for line in log.splitlines()
                                  if "generation stages" in line][-1:]
                        loop = LOOP_LINE.search(log)
                        if loop:
                            ms["after, loop"].append(float(loop[1]))
                g_short, _ = run_golly(soup, args.short)
                g_long, _ = run_golly(soup, args.long)
                ms["golly"].append((g_long - g_short) * 1000 / span)
        med = {k: statistics.median(v) for k, v in ms.items() if v}
        print(f"== {side}x{side}, {args.workers} workers, generations {args.short} and "
              f"{args.long}, load at the end {os.getloadavg()[0]:.1f}")
        for k, v in ms.items():
            if not v:
                continue
            print(f"  {k:11s} median {med[k]:7.2f} ms   turns " + " ".join(f"{x:.2f}" for x in v))
        print(f"  lifenet before {med['golly'] / med['before']:.2f}x Golly, after "
              f"{med['golly'] / med['after']:.2f}x Golly; after vs before "
              f"{med['before'] / med['after']:.2f}x")
        if "after, loop" in med:
            print(f"  after, timed by its own loop after {10} warm-up generations: "
                  f"{med['golly'] / med['after, loop']:.2f}x Golly")
        print(f"  server resident (largest seen): before {rss['before'] / 1024:.0f} MiB, "
              f"after {rss['after'] / 1024:.0f} MiB")
        if stages:
            print("  after: " + stages[0].split("INFO ", 1)[-1])


if __name__ == "__main__":
    main()
