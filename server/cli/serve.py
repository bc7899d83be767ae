"""``lifenet server``: run a server in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from server.app import serve
from server.cli.options import server_config, server_options


@click.command()
@server_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the whole world as RLE here when the server stops.")
def server(out: Path | None, **kwargs: Any) -> None:
    """Run a lifenet server: the world, the worker and player endpoints, the frames."""
    raise SystemExit(serve(server_config(kwargs, out=out)))
