"""``lifenet bench``: the book's approaches and lifenet's engine, measured in one run."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from server.tools.bench import PROFILES, count_steps, plot, progress_bar, run_bench, table


@click.command()
@click.option("--quick", "profile", flag_value="quick", default=True,
              help="The short run: medians of 3, slow baselines once (under 2 minutes).")
@click.option("--full", "profile", flag_value="full",
              help="The long run: medians of 5, slow baselines 3 times.")
@click.option("--tiny", "profile", flag_value="tiny", hidden=True,
              help="Tiny worlds and 10 ms of I/O: checks the machinery, in seconds.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write every figure, ratio and target here as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Draw ms per generation against cells here (PNG; "
                                 "needs matplotlib, the `bench` extra).")
@click.option("--workers", type=click.IntRange(1, 64), default=2,
              help="lifenet worker processes.")
@click.option("--server", "product", is_flag=True,
              help="Only the product path: whole `lifenet up` generations on torus soups "
                   "(fill 0.35) beside Golly's QuickLife (when bgolly is installed), the "
                   "engine alone and NumPy, with where a server generation goes.")
@click.option("--size", "sizes", type=int, multiple=True, default=(1024, 4096),
              show_default=True, help="With --server: the side of each square soup.")
@click.option("--turns", type=click.IntRange(1, 50), default=3, show_default=True,
              help="With --server: turns of lifenet and Golly, alternated.")
def bench(profile: str, json_path: Path | None, plot_path: Path | None, workers: int,
          product: bool, sizes: tuple[int, ...], turns: int) -> None:
    """Measure the book's approaches and lifenet with per-cell I/O and without."""
    # The server's and broker's INFO lines would tear the progress bar; warnings still show.
    lifenet_log = logging.getLogger("lifenet")
    lifenet_log.setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
    if product:
        from server.tools.product import measure_beside, measure_product, product_table

        found = []
        for side in sizes:
            click.echo(f"{side}x{side}: {turns} turns of lifenet up and Golly ...", err=True)
            figures = measure_product((side, side), workers, turns=turns)
            measure_beside(figures)
            found.append(figures)
        click.echo(product_table(found))
        if json_path is not None:
            from dataclasses import asdict

            json_path.write_text(json.dumps([asdict(f) for f in found], indent=2) + "\n")
        return
    chosen = PROFILES[profile]
    if workers != chosen.workers:
        from dataclasses import replace

        chosen = replace(chosen, workers=workers)
    with progress_bar(count_steps(chosen)) as advance:
        report = run_bench(chosen, advance)
    click.echo(table(report))
    command = "lifenet " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] \
        else f"lifenet bench --{chosen.name}"
    if json_path is not None:
        json_path.write_text(json.dumps(report.as_json(command), indent=2) + "\n")
        click.echo(f"wrote {json_path}", err=True)
    if plot_path is not None:
        plot(report, plot_path)
        click.echo(f"wrote {plot_path}", err=True)
