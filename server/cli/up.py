"""``lifenet up``: the embedded default, everything as local processes."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

from server.cli.options import server_argv, server_config, server_options
from server.tools.children import free_port
from server.tools.up import Embedded, run_up
from server.world import build_world
from shared.local import EmbeddedKeys
from shared.policies import STRATEGIES

WATCH_TICK = 0.1
LIVE_BOTS = 3  # the embedded default shows a game: a few bots playing in the world


@click.command()
@click.option("--workers", type=click.IntRange(0, 64), default=2,
              help="Worker processes to start.")
@click.option("--bots", type=click.IntRange(0, 254), default=None,
              help="Headless players to start (one `lifenet bot` process) "
                   f"[default: {LIVE_BOTS} with the live view, 0 with --headless].")
@click.option("--bot-strategy", type=click.Choice(sorted(STRATEGIES)), default="random",
              show_default=True, help="The bots' strategy.")
@click.option("--headless", is_flag=True,
              help="No live view; run as fast as possible unless --tick is given.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the final whole world as RLE here (with --generations).")
@click.option("--io-latency", type=click.FloatRange(0.0, 60.0), default=0.0,
              help="Seconds of simulated blocking I/O in every cell (passed to workers).")
@server_options
@click.pass_context
def up(ctx: click.Context, /, workers: int, bots: int | None, bot_strategy: str,
       headless: bool,
       out: Path | None, io_latency: float,
       **kwargs: Any) -> None:
    """Start a server and its workers locally and show the world live."""
    # Check the world here, so a bad pattern or size is one line from `up` itself.
    build_world(server_config(kwargs))
    for port in ("worker_port", "player_port", "frame_port"):
        if kwargs[port] == 0:
            kwargs[port] = free_port(kwargs["host"] if kwargs["host"] != "0.0.0.0" else "")
    tick = kwargs["tick"]
    if tick is None:
        tick = 0.0 if headless else WATCH_TICK
    if bots is None:  # a headless run is for its --out: the world alone, reproducible
        bots = 0 if headless else LIVE_BOTS
    # Every bot joins from this machine, and so does its player's client: room for all.
    kwargs["max_players_per_address"] = max(kwargs["max_players_per_address"], bots + 1)
    root = ctx.find_root().params
    own_keys = None
    if kwargs["keys"] is None:  # secure by default: keys of its own, for this run
        own_keys = EmbeddedKeys.claim(kwargs["player_port"])
        kwargs["keys"] = own_keys.directory
        click.echo(f"keys: {own_keys.directory} (CURVE on every endpoint; a local "
                   f"`lifenet client --connect 127.0.0.1:{kwargs['player_port']}` finds "
                   "them)", err=True)
    try:
        run_embedded(kwargs, workers, bots, bot_strategy, headless, out, io_latency, tick,
                     root.get("log_level", "info"))
    finally:
        if own_keys is not None:
            own_keys.release()


def run_embedded(kwargs: dict[str, Any], workers: int, bots: int, bot_strategy: str,
                 headless: bool, out: Path | None, io_latency: float, tick: float,
                 log_level: str) -> None:
    """Start everything, watch or wait, stop everything; the log file's name said."""
    log_file = None
    if not headless:
        log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as `up`
            "w", prefix="lifenet-up-", suffix=".log", delete=False)
    embedded = Embedded(
        server_argv=server_argv(kwargs, tick, out.resolve() if out else None),
        worker_argv=["--io-latency", str(io_latency)] if io_latency else [],
        workers=workers, bots=bots, bot_strategy=bot_strategy, host=kwargs["host"],
        player_port=kwargs["player_port"],
        frame_port=kwargs["frame_port"], worker_port=kwargs["worker_port"],
        log_level=log_level, log_file=log_file, keys=kwargs["keys"])
    try:
        code = run_up(embedded, headless)
    finally:
        if log_file is not None:
            log_file.close()
            click.echo(f"logs of the server and workers: {log_file.name}", err=True)
    if code:
        raise click.ClickException(f"the server exited with status {code}")

