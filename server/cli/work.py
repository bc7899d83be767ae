"""``lifenet worker``: a process that answers the server's batches."""

from __future__ import annotations

import click

from server.worker import WorkerConfig, run_worker


@click.command()
@click.option("--connect", required=True, help="The server's worker endpoint, tcp://HOST:PORT.")
@click.option("--name", default="", help="How the server names this worker [default: host-pid].")
@click.option("--io-latency", type=click.FloatRange(0.0, 60.0), default=0.0,
              help="Seconds of simulated blocking I/O in every cell's game_logic.")
@click.option("--credit", type=click.IntRange(0, 256), default=0,
              help="Batches held at once [default: 2, or 256 with --io-latency].")
@click.option("--kernel", type=click.Choice(["numpy", "python"]), default="numpy",
              help="Vectorised game_logic, or the book's per-cell Python functions.")
@click.option("--heartbeat", type=click.FloatRange(0.05, 60.0), default=1.0,
              help="Seconds between heartbeats (the server's WELCOME may change it).")
def worker(connect: str, name: str, io_latency: float, credit: int, kernel: str,
           heartbeat: float) -> None:
    """Run a worker: compute count_neighbors and game_logic for the server's tiles."""
    if "://" not in connect:
        connect = f"tcp://{connect}"
    raise SystemExit(run_worker(WorkerConfig(
        connect=connect, name=name, io_latency=io_latency, credit=credit, kernel=kernel,
        heartbeat=heartbeat)))
