"""``lifenet up``: the embedded default, everything as local processes.

``up`` never joins a game it did not start. Before anything starts it checks that it
can listen on each of its three ports: a port the user left at its default and that is
taken (another ``lifenet up``, most likely) is replaced by a free one, said in one line;
a port the user gave (option or environment) that is taken is one line of error. Its
logs (with the live view) go to one place, ``log_dir()``, newest ``KEEP_LOGS`` kept.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from typing import IO, Any

import click
from click.core import ParameterSource

from server.cli.options import server_argv, server_config, server_options
from server.tools.children import free_port, port_in_use
from server.tools.up import Embedded, run_up
from server.world import build_world
from shared.errors import ConfigError
from shared.http import DEFAULT_HTTP, parse_http
from shared.local import EmbeddedKeys, state_dir
from shared.policies import MAX_BOTS, STRATEGIES
from shared.remote import record_local_ports

WATCH_TICK = 0.1
LIVE_BOTS = 3  # the embedded default shows a game: a few bots playing in the world
LIVE_ROUND = 600  # ... in rounds of a minute at the live tick
KEEP_LOGS = 10
WEB_PLAYERS = 64  # seats on up's server for the browser's players (one address: the gateway)
PORTS = {"worker_port": "workers", "player_port": "players", "frame_port": "frames"}
_LOG_NAME = re.compile(r"up-\d{8}-\d{6}-(\d+)\.log")


@click.command()
@click.option("--workers", type=click.IntRange(0, 64), default=2,
              help="Worker processes to start.")
@click.option("--bots", type=click.IntRange(0, MAX_BOTS), default=None,
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
@click.option("--web/--no-web", "web", default=None, show_default=False,
              help="Serve the browser client (`lifenet web`) [default: with the live "
                   "view; not with --headless].")
@click.option("--http", default=DEFAULT_HTTP,
              help="Where the browser client is served: HOST:PORT (a free port when the "
                   "default is taken).")
@server_options
@click.pass_context
def up(ctx: click.Context, /, workers: int, bots: int | None, bot_strategy: str,
       headless: bool,
       out: Path | None, io_latency: float, web: bool | None, http: str,
       **kwargs: Any) -> None:
    """Start a server and its workers locally and show the world live.

    With the live view the game has rounds of 600 generations (a minute) unless
    --round says otherwise; --headless has none."""
    # Check the world here, so a bad pattern or size is one line from `up` itself.
    build_world(server_config(kwargs), warn=False)  # the server child warns, once
    choose_ports(ctx, kwargs)
    if web is None:
        web = not headless
    http_address = choose_http(ctx, http) if web else None
    tick = kwargs["tick"]
    if tick is None:
        tick = 0.0 if headless else WATCH_TICK
    if bots is None:  # a headless run is for its --out: the world alone, reproducible
        bots = 0 if headless else LIVE_BOTS
    if not headless and ctx.get_parameter_source("round") is ParameterSource.DEFAULT:
        kwargs["round"] = LIVE_ROUND  # the live game has rounds unless told otherwise
    # Every bot joins from this machine, and so does its player's client, and every
    # browser tab's player through the gateway: room for all.
    seats = bots + 1 + (WEB_PLAYERS if web else 0)
    kwargs["max_players_per_address"] = max(kwargs["max_players_per_address"], seats)
    kwargs["max_players"] = max(kwargs["max_players"], seats)
    root = ctx.find_root().params
    own_keys = None
    if kwargs["keys"] is None:  # secure by default: keys of its own, for this run
        own_keys = EmbeddedKeys.claim(kwargs["player_port"])
        kwargs["keys"] = own_keys.directory
        click.echo(f"keys: {own_keys.directory} (CURVE on every endpoint; a local "
                   f"`lifenet client --connect 127.0.0.1:{kwargs['player_port']}` finds "
                   "them)", err=True)
    try:
        if own_keys is not None:  # so that a client pointed at a wrong port is told which
            record_local_ports(own_keys.directory, {
                "worker": kwargs["worker_port"], "player": kwargs["player_port"],
                "frame": kwargs["frame_port"]})
        run_embedded(kwargs, workers, bots, bot_strategy, headless, out, io_latency, tick,
                     root.get("log_level", "info"), http_address)
    finally:
        if own_keys is not None:
            own_keys.release()


def choose_ports(ctx: click.Context, kwargs: dict[str, Any]) -> None:
    """Settle the three ports before anything starts: 0 is a free port; a default that
    is taken becomes a free port (said in one line); a port given that is taken, or
    one port given twice, is a ``ClickException`` naming it."""
    host = kwargs["host"]
    bind_host = "" if host in ("0.0.0.0", "*") else host
    moved = []
    for name, role in PORTS.items():
        port = kwargs[name]
        if port == 0:
            kwargs[name] = free_port(bind_host)
            continue
        if not port_in_use(host, port):
            continue
        source = ctx.get_parameter_source(name)
        if source in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
            kwargs[name] = free_port(bind_host)
            moved.append(f"{kwargs[name]} ({role})")
            continue
        option = "--" + name.replace("_", "-")
        given = (f"{option} or {_envvar(ctx, name)}"
                 if source is ParameterSource.ENVIRONMENT else option)
        raise click.ClickException(
            f"port {port} is already in use (another lifenet up?); choose another with "
            f"{given} or leave the defaults to pick free ports")
    if moved:
        click.echo(f"the default ports are in use (another lifenet up?): this one listens "
                   f"on {', '.join(moved)}; players connect with --connect "
                   f"127.0.0.1:{kwargs['player_port']}", err=True)
    ports = [kwargs[name] for name in PORTS]
    if len(set(ports)) < len(ports):
        raise click.ClickException(f"the worker, player and frame ports must differ, not "
                                   f"{', '.join(map(str, ports))}")


def choose_http(ctx: click.Context, http: str) -> str:
    """The browser client's ``HOST:PORT``: the default, or a free port when it is taken
    (said in one line); one given that is taken is a ``ClickException``."""
    try:
        host, port = parse_http(http)
    except ConfigError as e:
        raise click.BadParameter(str(e), ctx, param_hint="'--http'") from None
    if port == 0:
        port = free_port("" if host in ("0.0.0.0", "::") else host)
    elif port_in_use(host, port):
        if ctx.get_parameter_source("http") not in (ParameterSource.DEFAULT,
                                                     ParameterSource.DEFAULT_MAP):
            raise click.ClickException(
                f"port {port} is already in use: choose another with --http HOST:PORT or "
                "leave the default to pick a free port")
        taken, port = port, free_port("" if host in ("0.0.0.0", "::") else host)
        click.echo(f"port {taken} is in use (another lifenet up?): the browser client "
                   f"listens on {port} instead", err=True)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _envvar(ctx: click.Context, name: str) -> str:
    """The environment variable an option of this command is read from."""
    prefix = ctx.auto_envvar_prefix or "LIFENET_UP"
    return f"{prefix}_{name.upper()}"


def log_dir() -> Path:
    """Where ``up`` keeps its logs: ``$LIFENET_LOG_DIR``, else ``logs`` in lifenet's state
    directory (``$LIFENET_STATE_DIR``, else ``$XDG_STATE_HOME/lifenet``, else
    ``~/.local/state/lifenet``)."""
    if os.environ.get("LIFENET_LOG_DIR"):
        return Path(os.environ["LIFENET_LOG_DIR"])
    return state_dir() / "logs"


def open_log(directory: Path | None = None, keep: int = KEEP_LOGS) -> IO[str]:
    """A new log file, ``up-YYYYMMDD-HHMMSS-PID.log`` (local start time), after removing
    the oldest of this directory's ``up`` logs so that with it ``keep`` remain (never
    the log of an ``up`` still running)."""
    directory = directory or log_dir()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise click.ClickException(f"cannot make the log directory {directory}: "
                                   f"{e.strerror} (set LIFENET_LOG_DIR)") from e
    logs = sorted((p for p in directory.iterdir() if _LOG_NAME.fullmatch(p.name)),
                  key=lambda p: p.name)
    for old in logs[:max(0, len(logs) - (keep - 1))]:
        match = _LOG_NAME.fullmatch(old.name)
        if match and _running(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            old.unlink()
    path = directory / f"up-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    try:
        return open(path, "a", encoding="utf-8")  # lives as long as `up`
    except OSError as e:
        raise click.ClickException(f"cannot write the log {path}: {e.strerror} "
                                   "(set LIFENET_LOG_DIR)") from e


def _running(pid: int) -> bool:
    """Whether a process ``pid`` runs (an ``up`` that is still writing its log)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_embedded(kwargs: dict[str, Any], workers: int, bots: int, bot_strategy: str,
                 headless: bool, out: Path | None, io_latency: float, tick: float,
                 log_level: str, http: str | None = None) -> None:
    """Start everything, watch or wait, stop everything; the log file's name said."""
    log_file = open_log() if not headless else None
    embedded = Embedded(
        server_argv=server_argv(kwargs, tick, out.resolve() if out else None),
        worker_argv=["--io-latency", str(io_latency)] if io_latency else [],
        workers=workers, bots=bots, bot_strategy=bot_strategy, host=kwargs["host"],
        player_port=kwargs["player_port"],
        frame_port=kwargs["frame_port"], worker_port=kwargs["worker_port"],
        log_level=log_level, log_file=log_file, keys=kwargs["keys"], http=http)
    try:
        code = run_up(embedded, headless)
    finally:
        if log_file is not None:
            log_file.close()
            click.echo(f"logs of the server and workers: {log_file.name}", err=True)
    if code:
        raise click.ClickException(embedded.exit_message(code))

