"""Kernel-only ms a generation: NumPy's ``step_tile``, the bit kernel, Golly's QuickLife;
and with ``--rigs``, whole fan-out/fan-in generations through 2 worker processes whose
kernel is the bit kernel or NumPy's (``lifenet worker --kernel bits|numpy``).

The stages are described in ``server/tools/kernels.py``. Prints the tables and the load
average before and after (the machine is shared: compare figures of one run). The rigs
are measured in turns (``--rounds``), as ``lifenet bench`` measures its variants.

    .venv/bin/python scripts/kernel_bench.py [--sizes 1024,4096] [--repeats 15]
        [--fill 0.35] [--rule B3/S23] [--no-golly] [--rigs] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics

from server.tools.bench import LifenetRig, measure
from server.tools.kernels import measure_kernels, soup, table
from shared.rules import parse_rule


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
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load average before: {load()}")
    figures = [measure_kernels((s, s), args.repeats, args.fill, parse_rule(args.rule),
                               not args.no_golly) for s in sizes]
    print(table(figures))
    if args.rigs:
        rigs(sizes, args.fill, args.rounds)
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
