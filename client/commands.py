"""``lifenet status``, ``lifenet bot`` and ``lifenet client``: clients of the player endpoint."""

from __future__ import annotations

import json
import signal
import threading
from types import FrameType

import click

from client.bot import run_bots
from shared.policies import POLICIES, STRATEGIES
from shared.remote import player_endpoint
from shared.remote import status as get_status


@click.command()
@click.option("--connect", default="127.0.0.1",
              help="The server's player endpoint: HOST, HOST:PORT or tcp://HOST:PORT.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--timeout", type=click.FloatRange(0.1), default=5.0,
              help="Seconds to wait for the answer.")
def status(connect: str, as_json: bool, timeout: float) -> None:
    """Ask a running server for its status, once."""
    report = get_status(player_endpoint(connect), timeout)
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
        return
    h, w = report["size"]
    click.echo(f"generation {report['generation']}  world {h}x{w} {report['rule']}  "
               f"population {report['population']}")
    click.echo(f"workers {report['workers']}  players {report['players']}  "
               f"{report['ms_per_generation']:.1f} ms per generation  tick {report['tick']:g} s")
    for name, score in sorted(report["scores"].items(), key=lambda kv: -kv[1]):
        click.echo(f"  {score:8d}  {name}")


@click.command()
@click.option("--connect", default="127.0.0.1",
              help="The server's player endpoint: HOST, HOST:PORT or tcp://HOST:PORT.")
@click.option("--count", type=click.IntRange(1, 254), default=1, help="Bots to run.")
@click.option("--strategy", type=click.Choice(sorted(STRATEGIES)), default="follow",
              help="How the bots play.")
@click.option("--name", default="bot", help="Name prefix; bots are NAME-1, NAME-2, ...")
@click.option("--seed", type=int, default=None, help="Seed of the bots' choices.")
@click.option("--seconds", type=click.FloatRange(0.0), default=None,
              help="Stop after this many seconds [default: until SIGTERM/Ctrl-C].")
def bot(connect: str, count: int, strategy: str, name: str, seed: int | None,
        seconds: float | None) -> None:
    """Run headless players that join, place patterns and answer game_logic requests."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    bots = run_bots(connect, count, strategy, name=name, seed=seed, stop=stop,
                    seconds=seconds)
    click.echo(f"{len(bots)} bots: answered {sum(b.answered for b in bots)} requests, "
               f"placed {sum(b.placed for b in bots)} patterns", err=True)


@click.command("client")
@click.option("--connect", default="127.0.0.1",
              help="The server's player endpoint: HOST, HOST:PORT or tcp://HOST:PORT.")
@click.option("--name", default="player", help="Your name on the scoreboard.")
@click.option("--token", default=None,
              help="Rejoin as the player this session token belongs to (printed on exit).")
@click.option("--policy", type=click.Choice(list(POLICIES)), default="follow",
              help="How your cells answer the server's per-cell requests (d switches).")
@click.option("--timeout", type=click.FloatRange(0.1), default=5.0,
              help="Seconds to wait for the server's answers.")
def client_command(connect: str, name: str, token: str | None, policy: str,
                   timeout: float) -> None:
    """Play in a terminal: the live world, a cursor, patterns to place, the scoreboard."""
    from client.tui import LifenetClient  # only `lifenet client` pays for importing Textual

    app = LifenetClient(connect, name, token=token, policy=policy, timeout=timeout)
    token = app.run()
    if app.failure:
        raise click.ClickException(app.failure)
    if token:
        click.echo(f"session token {token} (rejoin within the grace period with "
                   f"--token {token})")
