"""``lifenet worker``: a process that answers the server's batches."""

from __future__ import annotations

from pathlib import Path

import click

from server.cli.options import ADDRESS, parse_address, peer_key_options
from server.worker import WorkerConfig, run_worker
from shared.errors import KeyFileError
from shared.remote import DEFAULT_WORKER_PORT, credentials_for, player_endpoint


@click.command()
@click.option("--connect", required=True, help="The server's worker endpoint, tcp://HOST:PORT.")
@click.option("--name", default="", help="How the server names this worker [default: host-pid].")
@click.option("--io-latency", type=click.FloatRange(0.0, 60.0), default=0.0,
              help="Seconds of simulated blocking I/O in every cell's game_logic.")
@click.option("--credit", type=click.IntRange(0, 256), default=0,
              help="Batches held at once [default: 2, or 16 with --io-latency].")
@click.option("--kernel", type=click.Choice(["bits", "numpy", "python"]), default="bits",
              help="Vectorised game_logic: neutral tiles bit-parallel, tiles with owners "
                   "by NumPy (bits); every tile by NumPy (numpy); or the book's per-cell "
                   "Python functions (python).")
@click.option("--heartbeat", type=click.FloatRange(0.05, 60.0), default=1.0,
              help="Seconds between heartbeats (the server's WELCOME may change it).")
@click.option("--metrics", type=ADDRESS, default=None,
              help="Serve Prometheus metrics at http://HOST:PORT/metrics (a port alone: "
                   "loopback) [default: none].")
@peer_key_options("worker")
def worker(connect: str, name: str, io_latency: float, credit: int, kernel: str,
           heartbeat: float, metrics: str | None, keys: Path | None, key: Path | None,
           server_key: Path | None) -> None:
    """Run a worker: compute count_neighbors and game_logic for the server's tiles.

    With keys (--keys DIR, or --key FILE --server-key FILE) the connection is CURVE and
    the server admits this worker only if its public key is on the server's
    authorized/workers list.
    """
    connect = player_endpoint(connect, DEFAULT_WORKER_PORT)  # one line if malformed
    if server_key is not None and key is None:
        raise KeyFileError("a worker needs its own key with --server-key: --key FILE, a "
                           ".key_secret whose public half is on the server's "
                           "authorized/workers")
    credentials = credentials_for(connect, server_key, key, keys=keys, role="worker") \
        if keys or server_key or key else None
    raise SystemExit(run_worker(WorkerConfig(
        connect=connect, name=name, io_latency=io_latency, credit=credit, kernel=kernel,
        heartbeat=heartbeat, credentials=credentials,
        metrics=parse_address(metrics) if metrics else None)))
