"""What the replay log costs a generation, and what it holds: a recorded game re-read.

Reads a log ``lifenet server --record`` wrote, then, for each of its generations, makes
the world again from the rule and the recorded inputs (as ``lifenet replay`` does) and
times what recording it costs (encoding the inputs, hashing the world, writing the
record, as the recorder's writer thread does it), appending to a scratch log. Prints
the bytes a generation the log takes and the p50/mean of that cost.

    .venv/bin/python scripts/replay_cost.py GAME.replay
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

from server.replay.inputs import apply, decode, encode
from server.replay.log import Recorder, cells_world, read_log, world_hash
from shared.grid import Grid
from shared.kernel import rule_table, step_tile
from shared.rules import parse_rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("log", type=Path, help="a replay log with its world inline")
    args = parser.parse_args()
    records = read_log(args.log).records
    start = records[0].body
    assert start is not None and "cells" in start, "the log must start with its world"
    grid, rule = cells_world(start), parse_rule(start["rule"])
    table = rule_table(rule)
    spent: list[float] = []
    sizes = [b.offset - a.offset for a, b in itertools.pairwise(records[1:])]
    with tempfile.TemporaryDirectory() as scratch:
        recorder = Recorder(Path(scratch) / "again.replay", rule, grid, start["g"])
        for record in records[1:]:
            body = record.body
            assert body is not None
            inputs = [decode(item, grid.height, grid.width) for item in body["in"]]
            codes = apply(grid.codes, step_tile(grid.padded(), table), inputs, table)
            began = time.perf_counter()
            recorder.write({"t": "gen", "g": body["g"],
                            "in": [encode(op) for op in inputs], "world": world_hash(codes)})
            spent.append(time.perf_counter() - began)
            grid = Grid(grid.height, grid.width, codes)
        recorder.close()
    print(f"{args.log}: {len(records) - 1} generations, {args.log.stat().st_size} bytes; "
          f"start record {records[1].offset - records[0].offset} bytes; a generation's "
          f"record p50 {statistics.median(sizes):.0f} bytes, mean "
          f"{statistics.fmean(sizes):.0f}, max {max(sizes)}")
    print(f"recording a generation (encode, hash, write): p50 "
          f"{statistics.median(spent) * 1000:.3f} ms, mean "
          f"{statistics.fmean(spent) * 1000:.3f} ms")


if __name__ == "__main__":
    main()
