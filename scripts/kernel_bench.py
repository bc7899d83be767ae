"""Kernel-only ms a generation: NumPy's ``step_tile``, the bit kernel, Golly's QuickLife;
and with ``--rigs``, whole fan-out/fan-in generations through 2 worker processes whose
kernel is the bit kernel or NumPy's (``lifenet worker --kernel bits|numpy``).

The stages are described in ``server/tools/kernels.py``. Prints the tables and the load
average before and after (the machine is shared: compare figures of one run). The rigs
are measured in turns (``--rounds``), as ``lifenet bench`` measures its variants.

    .venv/bin/python scripts/kernel_bench.py [--sizes 1024,4096] [--repeats 15]
        [--fill 0.35] [--rule B3/S23] [--no-golly] [--rigs] [--rounds 3] [--crossover]
"""

from __future__ import annotations

import argparse
import os
import statistics

import numpy as np

from server.tools.bench import LifenetRig, measure
from server.tools.kernels import measure_kernels, soup, table, timed
from shared.bitlife import step_wire
from shared.grid import pack_bits, unpack_bits
from shared.kernel import rule_table, step_tile
from shared.rules import Rule, parse_rule


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def rigs(sizes: list[int], fill: float, rounds: int) -> None:
    """ms a generation through the engine (``Engine.compute``), workers' kernel each."""
    with LifenetRig(2, kernel="bits") as bits, LifenetRig(2, kernel="numpy") as numpy:
        for side in sizes:
            taken: dict[str, list[float]] = {"bits": [], "numpy": []}
            for turn in range(rounds):
                for name, rig in (("numpy", numpy), ("bits", bits)):
                    taken[name] += measure(rig.step, soup((side, side), fill), 5,
                                           0.5 if turn == 0 else 0.2, 0.5)
            medians = {k: statistics.median(v) for k, v in taken.items()}
            print(f"engine {side}x{side}, 2 workers: --kernel numpy "
                  f"{medians['numpy']:.2f} ms, --kernel bits {medians['bits']:.2f} ms "
                  f"({medians['numpy'] / medians['bits']:.2f}x; "
                  f"{len(taken['bits'])} and {len(taken['numpy'])} generations)")


CROSSOVER_TILES = ((30, 30), (126, 126), (14, 1022), (190, 190), (254, 254), (1022, 62),
                   (510, 510), (254, 1022))


def crossover(rules: list[str], repeats: int) -> None:
    """The worker's packed path before (unpack, ``step_tile``, pack) and now
    (``step_wire``) by tile size: where the bit kernel starts to pay."""
    for text in rules:
        for h, w in CROSSOVER_TILES:
            old, new = _before_and_now(parse_rule(text), h, w, repeats)
            print(f"{text:<10} {h}x{w:<6} before {old:.3f} ms, now {new:.3f} ms, "
                  f"{old / new:.2f}x")


def _before_and_now(rule: Rule, h: int, w: int, repeats: int) -> tuple[float, float]:
    table = rule_table(rule)
    tile = (np.random.default_rng(1).random((h + 2, w + 2)) < 0.35).astype(np.uint8)
    wire = bytes(pack_bits(tile))

    def before() -> object:
        return pack_bits(step_tile(unpack_bits(wire, (h + 2, w + 2)), table))

    def now() -> object:
        return step_wire(wire, h, w, rule)

    return statistics.median(timed(before, repeats)), statistics.median(timed(now, repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1024,4096", help="sides of the square soups")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls a stage")
    parser.add_argument("--fill", type=float, default=0.35, help="the soups' density")
    parser.add_argument("--rule", default="B3/S23", help="the rule stepped")
    parser.add_argument("--no-golly", action="store_true", help="skip bgolly")
    parser.add_argument("--rigs", action="store_true",
                        help="also whole engine generations, workers' kernel bits or numpy")
    parser.add_argument("--rounds", type=int, default=3, help="turns of the rigs")
    parser.add_argument("--crossover", action="store_true",
                        help="only the packed path before and now, by tile size "
                             "(B3/S23 and B36/S23)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load average before: {load()}")
    if args.crossover:
        crossover(["B3/S23", "B36/S23"], max(args.repeats, 41))
        print(f"load average after: {load()}")
        return
    figures = [measure_kernels((s, s), args.repeats, args.fill, parse_rule(args.rule),
                               not args.no_golly) for s in sizes]
    print(table(figures))
    if args.rigs:
        rigs(sizes, args.fill, args.rounds)
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
