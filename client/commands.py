"""``lifenet status`` (and, with the players issue, ``client`` and ``bot``)."""

from __future__ import annotations

import json

import click

from client.remote import player_endpoint
from client.remote import status as get_status


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
