"""``lifenet loadtest``: many bots against one local server, generation times measured."""

from __future__ import annotations

import json
from pathlib import Path

import click

from server.cli.options import SIZE
from server.tools.loadtest import LoadTest, run_loadtest
from shared.policies import STRATEGIES


@click.command()
@click.option("--bots", type=click.IntRange(1, 254), default=200, help="Bots to run.")
@click.option("--strategy", type=click.Choice(sorted(STRATEGIES)), default="random",
              help="How the bots play.")
@click.option("--workers", type=click.IntRange(0, 64), default=2,
              help="Worker processes to start.")
@click.option("--size", type=SIZE, default="256x256", help="World size, HxW.")
@click.option("--tick", type=click.FloatRange(0.0), default=0.1,
              help="Minimum seconds between generations.")
@click.option("--seconds", type=click.FloatRange(0.1), default=30.0,
              help="How long to watch the frames.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the figures here as JSON.")
def loadtest(bots: int, strategy: str, workers: int, size: tuple[int, int], tick: float,
             seconds: float, json_path: Path | None) -> None:
    """Run bots against a local server; print p50/p99 of the step and of the interval."""
    h, w = size
    result = run_loadtest(LoadTest(bots, strategy, workers, f"{h}x{w}", tick, seconds))
    text = json.dumps(result, indent=2)
    click.echo(text)
    if json_path is not None:
        json_path.write_text(text + "\n")
        click.echo(f"wrote {json_path}", err=True)
