"""The ``lifenet`` command: one click group, one module per command family.

This module is the one place in ``server`` that imports ``client``: it registers the
players' commands (``status``, ``bot``, ``client``) beside the server's.

Every option can also come from the environment: ``auto_envvar_prefix="LIFENET"`` maps
``lifenet worker --connect`` to ``LIFENET_WORKER_CONNECT`` and so on (what compose files
want). Any ``LifenetError`` becomes one red line and exit status 1 (httpx's habit).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from shared.errors import LifenetError


class LifenetGroup(click.Group):
    """A group whose commands turn lifenet errors into one clear line and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LifenetError as e:
            raise click.ClickException(str(e)) from e


@click.group(cls=LifenetGroup, context_settings={"auto_envvar_prefix": "LIFENET",
                                                  "help_option_names": ["-h", "--help"],
                                                  "show_default": True})
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", help="How much the processes log on stderr.")
@click.version_option(package_name="lifenet")
def main(log_level: str) -> None:
    """lifenet: a distributed, multiplayer Game of Life server over ZeroMQ."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper()), stream=sys.stderr,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")


def _register() -> None:
    from client.commands import bot, client_command, status
    from server.cli.bench import bench
    from server.cli.keys import keys
    from server.cli.loadtest import loadtest
    from server.cli.serve import server
    from server.cli.snapshot import snapshot
    from server.cli.up import up
    from server.cli.work import worker

    for command in (server, worker, up, status, bot, client_command, snapshot, keys, bench,
                    loadtest):
        main.add_command(command)


_register()
