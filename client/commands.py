"""``lifenet status``, ``lifenet bot`` and ``lifenet client``: clients of the player endpoint.

On a server with keys each takes ``--server-key FILE`` (the server's ``server.key``) and
makes a throwaway key of its own, or keeps one with ``--key FILE``. Without either, a
client of a local ``lifenet up`` finds the keys that ``up`` made.

What a user types is checked before anything starts, in one line each: ``--connect``
by ``shared.remote.player_endpoint`` (the one parser), ``--name`` by the protocol's own
schema for a JOIN (what the server would take) and as printable text. ``lifenet
client`` asks for the server's status before it opens its screen, so that no server, a
wrong port or a refused key is one line on the terminal, never a blank screen.
"""

from __future__ import annotations

import gc
import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from shared import protocol
from shared.errors import ConfigError, ProtocolError
from shared.keys import Credentials
from shared.local import state_dir
from shared.policies import MAX_BOTS, POLICIES, STRATEGIES
from shared.protocol import Kind
from shared.remote import credentials_for, player_endpoint
from shared.remote import status as get_status

F = TypeVar("F", bound=Callable[..., Any])
_FILE = click.Path(dir_okay=False, path_type=Path)


def key_options(func: F) -> F:
    """``--server-key FILE`` and ``--key FILE``: names of key files, never keys."""
    func = click.option("--key", type=_FILE, default=None,
                        help="Keep this key pair (a .key_secret file) instead of a "
                             "throwaway one: a session is bound to its key.")(func)
    return click.option("--server-key", type=_FILE, default=None,
                        help="The server's public key (its server.key) [default: none, or "
                             "a local `lifenet up`'s].")(func)


def credentials(connect: str, server_key: Path | None, key: Path | None) -> Credentials | None:
    return credentials_for(player_endpoint(connect), server_key, key)


def _endpoint(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``--connect`` as an endpoint, or one line of error (before anything starts)."""
    try:
        return player_endpoint(value)
    except ConfigError as e:
        raise click.BadParameter(str(e), ctx, param) from None


def connect_option(func: F) -> F:
    """``--connect HOST[:PORT]``: the server's player endpoint, checked when parsed."""
    return click.option(
        "--connect", default="127.0.0.1", callback=_endpoint,
        help="The server's player endpoint: HOST, HOST:PORT, [IPv6]:PORT or "
             "tcp://HOST:PORT (port 5556 unless given).")(func)


def check_name(name: str) -> str | None:
    """Why the server would not take ``name`` for a player, or ``None``: it must be
    printable, not blank, and within the JOIN message's limit (checked by the
    protocol's own schema, so the two cannot drift apart)."""
    if not name.strip():
        return "a name cannot be empty or blank"
    if not name.isprintable():
        return f"{name!r} has characters that are not printable"
    try:
        protocol.message(Kind.JOIN, version=protocol.PROTOCOL_VERSION, name=name)
    except ProtocolError as e:
        return f"{name[:40]!r} is not a name the server takes ({e})"
    return None


def _name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    why = check_name(value)
    if why is not None:
        raise click.BadParameter(why, ctx, param)
    return value


@click.command()
@connect_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--timeout", type=click.FloatRange(0.1), default=5.0,
              help="Seconds to wait for the answer.")
@key_options
@click.option("--keys", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A keys directory: sign in as its operator (who also sees the workers' "
                   "names).")
def status(connect: str, as_json: bool, timeout: float, server_key: Path | None,
           key: Path | None, keys: Path | None) -> None:
    """Ask a running server for its status, once."""
    report = get_status(connect, timeout, credentials_for(connect, server_key, key,
                                                          keys=keys, role="operator"
                                                          if keys else "player"))
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
        return
    for line in status_lines(report):
        click.echo(line)


def status_lines(report: dict[str, Any]) -> list[str]:
    """``lifenet status`` in words: the world, the server's numbers, the round (with
    rounds on) and the players, by points then live cells (those away marked)."""
    h, w = report["size"]
    lines = [f"generation {report['generation']}  world {h}x{w} {report['rule']}  "
             f"population {report['population']}",
             f"workers {report['workers']}  players {report['players']}  "
             f"{report['ms_per_generation']:.1f} ms per generation  tick {report['tick']:g} s"]
    game = report.get("round")
    points: dict[str, int] = {}
    if isinstance(game, dict):
        points = game.get("points") or {}
        line = (f"round {game.get('number')} of {game.get('length')} generations, ends at "
                f"generation {game.get('ends_at')}")
        last = [r for r in game.get("last") or [] if isinstance(r, dict)]
        if last:
            won = last[0]
            line += (f"; round {won.get('round')} won by {won['winner']} "
                     f"({won.get('points')} points)" if won.get("winner")
                     else f"; nobody won round {won.get('round')}")
        lines.append(line)
    away = set(report.get("away") or ())
    rows = sorted(report["scores"].items(), key=lambda kv: (-points.get(kv[0], 0), -kv[1]))
    if rows:
        lines.append("     cells" + ("    points" if game else "") + "  player")
    for name, cells in rows:
        lines.append(f"  {cells:8d}" + (f"  {points.get(name, 0):8d}" if game else "")
                     + f"  {name}" + ("  (away)" if name in away else ""))
    return lines


@click.command()
@connect_option
@click.option("--count", type=click.IntRange(1, MAX_BOTS), default=1,
              help="Bots to run (one socket each, all in this process).")
@click.option("--strategy", type=click.Choice(sorted(STRATEGIES)), default="follow",
              help="How the bots play.")
@click.option("--name", default="bot", help="Name prefix; bots are NAME-1, NAME-2, ...")
@click.option("--seed", type=int, default=None, help="Seed of the bots' choices.")
@click.option("--seconds", type=click.FloatRange(0.0), default=None,
              help="Stop after this many seconds [default: until SIGTERM/Ctrl-C].")
@key_options
def bot(connect: str, count: int, strategy: str, name: str, seed: int | None,
        seconds: float | None, server_key: Path | None, key: Path | None) -> None:
    """Run headless players that join, place patterns and answer game_logic requests."""
    from client.bot import run_bots  # NumPy and the strategies: only when bots run

    why = check_name(f"{name}-{count}")  # the longest name a bot of these will have
    if why is not None:
        raise click.BadParameter(f"{why} (bots are NAME-1 to NAME-{count})",
                                 param_hint="'--name'")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    gc.freeze()  # the modules live as long as the process: no full collection walks them
    bots = run_bots(connect, count, strategy, name=name, seed=seed, stop=stop,
                    seconds=seconds, credentials=credentials(connect, server_key, key))
    unsent = sum(b.session.unsent for b in bots)
    dropped = f"; {unsent} messages dropped, the server not taking them" if unsent else ""
    click.echo(f"{len(bots)} bots: answered {sum(b.answered for b in bots)} requests "
               f"({sum(b.stale for b in bots)} left for a newer one), "
               f"placed {sum(b.placed for b in bots)} patterns{dropped}", err=True)


@click.command("client")
@connect_option
@click.option("--name", default="player", callback=_name,
              help="Your name on the scoreboard (printable, at most 32 characters).")
@click.option("--token", default=None,
              help="Rejoin as the player this session token belongs to (printed on exit; "
                   "better from $LIFENET_CLIENT_TOKEN than on the command line).")
@click.option("--policy", type=click.Choice(list(POLICIES)), default="follow",
              help="How your cells answer the server's per-cell requests (d switches).")
@click.option("--timeout", type=click.FloatRange(0.1), default=5.0,
              help="Seconds to wait for the server's answers.")
@click.option("--patterns", "pattern_dirs", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A directory of your own patterns (RLE, .cells, Life 1.06), beside the "
                   "shipped ones; may be given more than once.")
@click.option("--intro/--no-intro", default=None, show_default=False,
              help="Show the first-run screen (the goal, how to start) [default: on the "
                   "first run only].")
@key_options
def client_command(connect: str, name: str, token: str | None, policy: str,
                   timeout: float, pattern_dirs: tuple[Path, ...], intro: bool | None,
                   server_key: Path | None, key: Path | None) -> None:
    """Play in a terminal: the live world, a cursor, patterns to place, the scoreboard."""
    keys = credentials(connect, server_key, key)
    # One request first: no server, a worker port or a refused key is one line here,
    # before the full screen opens (and never a blank one).
    get_status(connect, timeout, keys)
    from client.tui import LifenetClient  # only `lifenet client` pays for importing Textual

    # A local `lifenet up` makes new keys each run: found again if it restarts.
    rekey = (lambda: credentials(connect, None, key)) if server_key is None else None
    app = LifenetClient(connect, name, token=token, policy=policy, timeout=timeout,
                        credentials=keys, intro=first_run() if intro is None else intro,
                        rekey=rekey, pattern_dirs=pattern_dirs)
    token = app.run()
    if app.failure:
        raise click.ClickException(app.failure)
    if token:
        # Through the environment: a command line is readable by every local user.
        again = f"LIFENET_CLIENT_TOKEN={token} lifenet client ..."
        if keys is not None and key is None:
            again += " with the same --key FILE (a session is bound to its key; this one " \
                     "was a throwaway key: keep one with --key FILE next time)"
        grace = "" if app.grace is None else f" ({app.grace:g} s)"
        click.echo(f"session token {token}: your cells stay yours for the grace "
                   f"period{grace}; rejoin within it with {again}")


def first_run() -> bool:
    """Whether ``lifenet client`` runs for the first time for this user (a marker in
    the state directory says it did before; made now)."""
    marker = state_dir() / "client-intro-seen"
    if marker.exists():
        return False
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass  # a read-only home: the intro shows every time, which does no harm
    return True
