"""Kernel-only ms a generation: NumPy's ``step_tile``, the bit kernel, Golly's QuickLife.

The stages are described in ``server/tools/kernels.py``. Prints the table and the load
average before and after (the machine is shared: compare figures of one run).

    .venv/bin/python scripts/kernel_bench.py [--sizes 1024,4096] [--repeats 15]
        [--fill 0.35] [--rule B3/S23] [--no-golly]
"""

from __future__ import annotations

import argparse
import os

from server.tools.kernels import measure_kernels, table
from shared.rules import parse_rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1024,4096", help="sides of the square soups")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls a stage")
    parser.add_argument("--fill", type=float, default=0.35, help="the soups' density")
    parser.add_argument("--rule", default="B3/S23", help="the rule stepped")
    parser.add_argument("--no-golly", action="store_true", help="skip bgolly")
    args = parser.parse_args()
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    figures = [measure_kernels((int(s), int(s)), args.repeats, args.fill,
                               parse_rule(args.rule), not args.no_golly)
               for s in args.sizes.split(",")]
    print(table(figures))
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
