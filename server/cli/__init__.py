"""The ``lifenet`` command: one click group, one module per command family.

This module is the one place in ``server`` that imports ``client``: it registers the
players' commands (``status``, ``bot``, ``client``, ``web``) beside the server's.

The group is lazy (click's "LazyGroup" pattern): it knows every command's name and
short help, and imports a command's module only when that command runs or shows its
help. So ``lifenet --version`` and ``lifenet --help`` import click and nothing heavy
(no NumPy, ZeroMQ or Textual): they answer in a tenth of the time every command took
when all of them were imported up front (``docs/benchmarks.md``, "Start-up time").
``tests/unit/test_cli_lazy.py`` holds the short help below equal to each command's own.

Every option can also come from the environment: ``auto_envvar_prefix="LIFENET"`` maps
``lifenet worker --connect`` to ``LIFENET_WORKER_CONNECT`` and so on (what compose files
want). Any ``LifenetError`` becomes one red line and exit status 1 (httpx's habit).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from typing import Any

import click

from shared.errors import LifenetError

# Each command's short help (its docstring's first paragraph), shown by `lifenet --help`
# without importing the command.
COMMANDS: dict[str, str] = {
    "bench": "Measure the book's approaches and lifenet with per-cell I/O and without.",
    "bot": "Run headless players that join, place patterns and answer game_logic "
           "requests.",
    "client": "Play in a terminal: the live world, a cursor, patterns to place, the "
              "scoreboard.",
    "keys": "CURVE keys: the server's, the workers', the operators'.",
    "loadtest": "Run bots against a local server; print p50/p99 of the step and of the "
                "interval.",
    "replay": "Replay a recorded game: verify its chain and every generation, or write "
              "one.",
    "server": "Run a lifenet server: the world, the worker and player endpoints, the "
              "frames.",
    "snapshot": "Encrypted, authenticated snapshots of a server's state.",
    "status": "Ask a running server for its status, once.",
    "up": "Start a server and its workers locally and show the world live.",
    "web": "Serve the browser client: a page and a WebSocket gateway to the server.",
    "worker": "Run a worker: compute count_neighbors and game_logic for the server's "
              "tiles.",
}


def load(name: str) -> click.Command:
    """Import the command called ``name`` (one of ``COMMANDS``) and return it."""
    match name:
        case "bench":
            from server.cli.bench import bench
            return bench
        case "bot":
            from client.commands import bot
            return bot
        case "client":
            from client.commands import client_command
            return client_command
        case "keys":
            from server.cli.keys import keys
            return keys
        case "loadtest":
            from server.cli.loadtest import loadtest
            return loadtest
        case "replay":
            from server.cli.replay import replay_command
            return replay_command
        case "server":
            from server.cli.serve import server
            return server
        case "snapshot":
            from server.cli.snapshot import snapshot
            return snapshot
        case "status":
            from client.commands import status
            return status
        case "up":
            from server.cli.up import up
            return up
        case "web":
            from client.web.command import web
            return web
        case "worker":
            from server.cli.work import worker
            return worker
    raise KeyError(name)


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands: every name of ``COMMANDS`` from the start, each command
    imported the first time it is looked up (``get``, ``[]``, ``values()``...), so that
    whoever reads ``group.commands`` (click, a test walking every option) sees them all.
    Listing the names or asking ``in`` imports nothing."""

    def __init__(self) -> None:
        self.names = set(COMMANDS)
        self.loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self.loaded:
            if name not in self.names:
                raise KeyError(name)
            self.loaded[name] = load(name)
        return self.loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self.names.add(name)
        self.loaded[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self.names:
            raise KeyError(name)
        self.names.discard(name)
        self.loaded.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.names))

    def __len__(self) -> int:
        return len(self.names)


class LifenetGroup(click.Group):
    """A lazy group whose commands turn lifenet errors into one clear line and exit 1."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = LazyCommands()
        for name, command in self.commands.items():  # any given to the constructor
            self.lazy[name] = command
        self.commands = self.lazy

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their short help, as click writes them, without importing
        a command that has not been loaded."""
        rows = []
        for name in self.list_commands(ctx):
            # a command not loaded yet stands in as a stub with its short help
            command = self.lazy.loaded.get(name) or click.Command(name, help=COMMANDS[name])
            if not command.hidden:
                rows.append((name, command))
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        with formatter.section("Commands"):
            formatter.write_dl([(name, command.get_short_help_str(limit))
                                for name, command in rows])

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
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              help="Log lines as text, or as JSON objects (time, level, logger, event, "
                   "fields); the processes `lifenet up` starts log the same way.")
@click.version_option(package_name="lifenet")
def main(log_level: str, log_format: str) -> None:
    """lifenet: a distributed, multiplayer Game of Life server over ZeroMQ."""
    from shared.logs import configure

    configure(log_level, log_format)
    # The children a command starts (``lifenet up``'s server, workers and bots) read
    # their options from the environment too: they log as their parent does.
    os.environ["LIFENET_LOG_FORMAT"] = log_format
