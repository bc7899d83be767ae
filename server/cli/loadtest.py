"""``lifenet loadtest``: many bots against one local server, generation times measured."""

from __future__ import annotations

import json
from pathlib import Path

import click

from server.cli.options import SIZE
from server.tools.loadtest import BOT_NICE, LoadTest, run_loadtest
from shared.policies import MAX_BOTS, STRATEGIES


@click.command()
@click.option("--bots", type=click.IntRange(1, MAX_BOTS), default=200, help="Bots to run.")
@click.option("--bot-processes", type=click.IntRange(1, 64), default=None,
              help="`lifenet bot` processes the bots are shared among "
                   "[default: one per 250 bots].")
@click.option("--strategy", type=click.Choice(sorted(STRATEGIES)), default="random",
              help="How the bots play.")
@click.option("--workers", type=click.IntRange(0, 64), default=2,
              help="Worker processes to start.")
@click.option("--size", type=SIZE, default="256x256", help="World size, HxW.")
@click.option("--tick", type=click.FloatRange(0.0), default=0.1,
              help="Minimum seconds between generations.")
@click.option("--seconds", type=click.FloatRange(0.1), default=30.0,
              help="How long to watch the frames.")
@click.option("--viewport", type=SIZE, default=None,
              help="Watch through a viewport of HxW cells in the middle of the world "
                   "(bytes a generation as a client of a big world gets them) instead of "
                   "the whole-world frames.")
@click.option("--bot-nice", type=click.IntRange(0, 19), default=BOT_NICE, show_default=True,
              help="How much lower the bots' processes run in the scheduler's priority: "
                   "they stand in for players on other machines, so they take the CPU "
                   "the server and its workers leave (0: the same priority). Whether "
                   "they kept up is in the report (answered_in_time).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the figures here as JSON.")
def loadtest(bots: int, bot_processes: int | None, strategy: str, workers: int,
             size: tuple[int, int], tick: float, seconds: float,
             viewport: tuple[int, int] | None, bot_nice: int,
             json_path: Path | None) -> None:
    """Run bots against a local server; print p50/p99 of the step and of the interval.

    Also how many stayed connected, and the bytes one viewer received a generation (the
    whole world, or a --viewport)."""
    h, w = size
    result = run_loadtest(LoadTest(bots, strategy, workers, f"{h}x{w}", tick, seconds,
                                   viewport, bot_processes, bot_nice))
    text = json.dumps(result, indent=2)
    click.echo(text)
    if json_path is not None:
        json_path.write_text(text + "\n")
        click.echo(f"wrote {json_path}", err=True)
