"""Option types and the server options shared by ``lifenet server`` and ``lifenet up``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from server.broker import DEFAULT_MAX_CREDIT, DEFAULT_MAX_IO_LATENCY
from server.config import (
    DEFAULT_FALLBACK,
    DEFAULT_MEMORY_GUARD,
    DEFAULT_PROTECT,
    DEFAULT_TICK,
    DEFAULT_VERIFY,
    ServerConfig,
)
from server.verify import Verification
from server.world import DEFAULT_SIZE, pattern_world_size
from shared.errors import ConfigError
from shared.grid import MAX_PLAYER, parse_size
from shared.rules import Rule, parse_rule

F = TypeVar("F", bound=Callable[..., Any])


class SizeType(click.ParamType[tuple[int, int]]):
    name = "HxW"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_size(str(value))
        except ConfigError as e:
            self.fail(str(e), param, ctx)


class RuleType(click.ParamType[Rule]):
    name = "B/S"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Rule:
        if isinstance(value, Rule):
            return value
        try:
            return parse_rule(str(value))
        except ConfigError as e:
            self.fail(str(e), param, ctx)


class PointType(click.ParamType[tuple[int, int]]):
    name = "Y,X"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        parts = str(value).split(",")
        if len(parts) != 2 or not all(p.strip().lstrip("-").isdigit() for p in parts):
            self.fail(f"{value!r} is not Y,X (two integers)", param, ctx)
        return int(parts[0]), int(parts[1])


class VerifyType(click.ParamType[Verification]):
    name = "off|sample:P|all"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Verification:
        if isinstance(value, Verification):
            return value
        try:
            return Verification.parse(str(value))
        except ConfigError as e:
            self.fail(str(e), param, ctx)


class SecondsOrNever(click.ParamType[float | None]):
    name = "SECONDS|never"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float | None:
        if value is None or isinstance(value, float | int):
            return None if value is None else float(value)
        if str(value).strip().lower() == "never":
            return None
        try:
            seconds = float(value)
        except ValueError:
            self.fail(f"{value!r} is not a number of seconds or 'never'", param, ctx)
        if not 0.0 <= seconds <= 3600.0:
            self.fail(f"{value!r} is not between 0 and 3600 seconds", param, ctx)
        return seconds


class AddressType(click.ParamType[str]):
    """``HOST:PORT`` (``:PORT`` or ``PORT`` alone: loopback), kept as text so that
    ``lifenet up`` passes it on as it came."""

    name = "HOST:PORT"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        try:
            parse_address(str(value))
        except ConfigError as e:
            self.fail(str(e), param, ctx)
        return str(value)


def parse_address(text: str) -> tuple[str, int]:
    """``(host, port)`` of ``HOST:PORT``; ``ConfigError`` if it is not one."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{text!r} is not HOST:PORT (a port from 0 to 65535)")
    return host, int(port)


SIZE, RULE, POINT, VERIFY, SECONDS_OR_NEVER, ADDRESS = (
    SizeType(), RuleType(), PointType(), VerifyType(), SecondsOrNever(), AddressType())

SERVER_OPTIONS: list[Callable[[F], F]] = [
    click.option("--host", default="127.0.0.1",
                 help="Address to listen on (0.0.0.0 for every interface)."),
    click.option("--worker-port", type=click.IntRange(0, 65535), default=5555,
                 help="Worker endpoint port (0: any free port)."),
    click.option("--player-port", type=click.IntRange(0, 65535), default=5556,
                 help="Player endpoint port (status, players)."),
    click.option("--frame-port", type=click.IntRange(0, 65535), default=5557,
                 help="Frame publisher port."),
    click.option("--view-port", type=click.IntRange(0, 65535), default=0,
                 help="View publisher port: the chunks viewers ask for (0: any free port, "
                      "told to players)."),
    click.option("--size", type=SIZE, default=None,
                 help="World size, HxW [default: 64x64; with --pattern, the file's :T "
                      "torus, or the pattern with 32 cells of room on every side, rounded "
                      "up to a multiple of 16, at least 64x64]."),
    click.option("--rule", type=RULE, default=None,
                 help="Life-like rule in B/S notation [default: the pattern's, or B3/S23]; "
                      "it wins over the pattern's, with a warning."),
    click.option("--pattern", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="A pattern file to place in the world: RLE (Golly's and the "
                      "LifeWiki's), plaintext .cells or Life 1.06, told apart by content."),
    click.option("--at", type=POINT, default=None,
                 help="Top-left corner of --pattern [default: centred]."),
    click.option("--seed", type=int, default=None, help="Seed of the random soup."),
    click.option("--fill", type=click.FloatRange(0.0, 1.0), default=None,
                 help="Share of live cells in the random soup [default: 0.25, or 0 with "
                      "--pattern]."),
    click.option("--tick", type=click.FloatRange(0.0), default=None,
                 help=f"Minimum seconds between generations [default: {DEFAULT_TICK}]."),
    click.option("--generations", type=click.IntRange(0), default=None,
                 help="Stop after this many generations."),
    click.option("--dispatchers", type=click.IntRange(1, 256), default=16,
                 help="Dispatcher threads: batches in flight at once."),
    click.option("--tile", type=SIZE, default=None,
                 help="Tile size HxW [default: bands chosen from the world size]."),
    click.option("--heartbeat", type=click.FloatRange(0.05, 60.0), default=1.0,
                 help="Seconds between heartbeats with workers."),
    click.option("--batch-timeout", type=click.FloatRange(0.1), default=10.0,
                 help="Seconds a worker may take for a batch before it is sent elsewhere."),
    click.option("--energy-cap", type=click.IntRange(0, 1 << 20), default=200,
                 help="Most energy a player can hold (one unit places or keeps a cell)."),
    click.option("--energy-regen", type=click.IntRange(0, 1 << 20), default=5,
                 help="Energy a connected player regains every generation."),
    click.option("--grace", type=click.FloatRange(0.0), default=15.0,
                 help="Seconds a disconnected player keeps its cells and may rejoin."),
    click.option("--round", type=click.IntRange(0, 1 << 30), default=0,
                 help="Generations a round lasts: each generation a player's live cells add "
                      "to its points, the most points wins the round, then every cell "
                      "turns neutral (0: no rounds)."),
    click.option("--protect", type=click.IntRange(0, 1 << 20), default=DEFAULT_PROTECT,
                 help="Generations a fresh placement (and 2 cells around it) evolves as "
                      "if alone, shielded from other players (0: no shields)."),
    click.option("--decision-window", type=click.FloatRange(0.0, 60.0), default=None,
                 help="Seconds players may take to answer a generation [default: half "
                      "the tick, at least 0.02]."),
    click.option("--snapshot-dir", type=click.Path(file_okay=False, path_type=Path),
                 default=None,
                 help="Write encrypted snapshots here (every --snapshot-every generations, "
                      "and on `lifenet snapshot save`)."),
    click.option("--snapshot-every", type=click.IntRange(1), default=None,
                 help="Generations between snapshots [default: only when asked]."),
    click.option("--snapshot-keep", type=click.IntRange(1), default=10,
                 help="How many of the newest snapshots to keep."),
    click.option("--restore", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                 default=None,
                 help="Start from this snapshot: its world, rule and generation count."),
    click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="The snapshot key, one line [default: $LIFENET_SNAPSHOT_KEY]."),
    click.option("--keys", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="A keys directory (`lifenet keys init DIR`): CURVE on every endpoint, "
                      "workers and operators by allow-list [default: no keys, loopback "
                      "only]."),
    click.option("--insecure", is_flag=True, default=False,
                 help="Listen beyond loopback without --keys all the same: whoever reaches "
                      "the ports computes, plays and takes snapshots."),
    click.option("--verify", type=VERIFY, default=f"sample:{DEFAULT_VERIFY:g}",
                 help="Check workers' answers against the server's own computation: none, "
                      "a random fraction P, or all; a worker caught lying is quarantined."),
    click.option("--fallback-after", type=SECONDS_OR_NEVER, default=str(DEFAULT_FALLBACK),
                 help="Seconds a batch may wait for a worker before the server computes it "
                      "itself ('never': wait for a worker)."),
    click.option("--max-credit", type=click.IntRange(1, 256), default=DEFAULT_MAX_CREDIT,
                 help="Most batches a worker may hold at once, whatever it asks for."),
    click.option("--max-players", type=click.IntRange(1, MAX_PLAYER), default=4096,
                 help="Player sessions at once (those in their grace after a disconnect "
                      f"too), up to {MAX_PLAYER}; a join beyond it evicts an idle player "
                      "without cells, or is refused."),
    click.option("--max-players-per-address", type=click.IntRange(1, MAX_PLAYER), default=32,
                 help="Player sessions one network address may hold (those in their "
                      "grace after a disconnect too); `lifenet up` raises it to its bots "
                      "and one more."),
    click.option("--joins-per-second", type=click.FloatRange(0.01, 1000.0), default=2.0,
                 help="New sessions one address may open a second, after a first burst of "
                      "--max-players-per-address (a refused join is told to try again)."),
    click.option("--handshake-timeout", type=click.FloatRange(0.1, 300.0), default=10.0,
                 help="Seconds a connection may take to finish its handshake before it is "
                      "closed (every endpoint)."),
    click.option("--memory-guard", type=click.FloatRange(0.0), default=DEFAULT_MEMORY_GUARD,
                 help="MiB the server may grow by before its endpoints drop their "
                      "connections, one endpoint at a time (0: never)."),
    click.option("--max-io-latency", type=click.FloatRange(0.0, 60.0),
                 default=DEFAULT_MAX_IO_LATENCY,
                 help="Most I/O seconds a worker may declare (it lengthens its deadline)."),
    click.option("--record", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Append every generation to this replay log (hash-chained; an "
                      "existing log is continued): `lifenet replay FILE --verify`."),
    click.option("--metrics", type=ADDRESS, default=None,
                 help="Serve Prometheus metrics at http://HOST:PORT/metrics (a port "
                      "alone: loopback) [default: none]."),
]


def peer_key_options(role: str) -> Callable[[F], F]:
    """``--keys DIR`` / ``--key FILE`` / ``--server-key FILE``: how a ``role`` (worker,
    operator) reaches a server with keys. Names of files, never keys themselves."""
    def decorate(func: F) -> F:
        for option in reversed([
            click.option("--keys", type=click.Path(file_okay=False, path_type=Path),
                         default=None,
                         help=f"A keys directory: its server.key and {role}.key_secret."),
            click.option("--key", type=click.Path(dir_okay=False, path_type=Path),
                         default=None,
                         help=f"This {role}'s own key pair (a .key_secret file)."),
            click.option("--server-key", type=click.Path(dir_okay=False, path_type=Path),
                         default=None, help="The server's public key (its server.key)."),
        ]):
            func = option(func)
        return func
    return decorate


def server_options(func: F) -> F:
    for option in reversed(SERVER_OPTIONS):
        func = option(func)
    return func


def server_config(kwargs: dict[str, Any], *, default_tick: float = DEFAULT_TICK,
                  out: Path | None = None) -> ServerConfig:
    """A ``ServerConfig`` from the shared server options."""
    tick = kwargs["tick"]
    return ServerConfig(
        host=kwargs["host"], worker_port=kwargs["worker_port"],
        player_port=kwargs["player_port"], frame_port=kwargs["frame_port"],
        view_port=kwargs["view_port"], size=world_size_of(kwargs), rule=kwargs["rule"],
        pattern=kwargs["pattern"], at=kwargs["at"],
        seed=kwargs["seed"], fill=kwargs["fill"],
        tick=default_tick if tick is None else tick, generations=kwargs["generations"],
        out=out, dispatchers=kwargs["dispatchers"], tile=kwargs["tile"],
        heartbeat=kwargs["heartbeat"], batch_timeout=kwargs["batch_timeout"],
        energy_cap=kwargs["energy_cap"], energy_regen=kwargs["energy_regen"],
        grace=kwargs["grace"], decision_window=kwargs["decision_window"],
        restore=kwargs["restore"], snapshot_dir=kwargs["snapshot_dir"],
        snapshot_every=kwargs["snapshot_every"], snapshot_keep=kwargs["snapshot_keep"],
        key_file=kwargs["key_file"], keys=kwargs["keys"], insecure=kwargs["insecure"],
        verify=kwargs["verify"], fallback_after=kwargs["fallback_after"],
        max_credit=kwargs["max_credit"], max_io_latency=kwargs["max_io_latency"],
        max_players_per_address=kwargs["max_players_per_address"],
        max_players=kwargs["max_players"],
        joins_per_second=kwargs["joins_per_second"],
        memory_guard=kwargs["memory_guard"] or None,
        handshake_timeout=kwargs["handshake_timeout"],
        round_length=kwargs["round"], protect=kwargs["protect"],
        record=kwargs.get("record"),
        metrics=parse_address(kwargs["metrics"]) if kwargs.get("metrics") else None)


def world_size_of(kwargs: dict[str, Any]) -> tuple[int, int]:
    """``--size``, else the size that fits ``--pattern`` (``server.world.world_size``:
    only an RLE's header is read for it), else 64x64. A snapshot (``--restore``) brings
    its own world: the pattern is not read for it."""
    if kwargs["size"] is not None:
        height, width = kwargs["size"]
        return int(height), int(width)
    if kwargs["pattern"] is not None and kwargs.get("restore") is None:
        return pattern_world_size(kwargs["pattern"])
    return DEFAULT_SIZE


def server_argv(kwargs: dict[str, Any], tick: float, out: Path | None) -> list[str]:
    """The same options as command-line words, for a child ``lifenet server``."""
    argv: list[str] = []
    for name, value in kwargs.items():
        if name == "fallback_after" and value is None:
            argv += ["--fallback-after", "never"]
            continue
        if value is None or name not in _SERVER_NAMES:
            continue
        flag = "--" + name.replace("_", "-")
        if name == "tick":
            continue
        if isinstance(value, bool):  # a flag: present or not
            if value:
                argv.append(flag)
            continue
        if isinstance(value, tuple):
            value = ("x" if name in ("size", "tile") else ",").join(map(str, value))
        argv += [flag, str(value)]
    argv += ["--tick", str(tick)]
    if out is not None:
        argv += ["--out", str(out)]
    return argv


def _option_names() -> set[str]:
    """The parameter names of ``SERVER_OPTIONS``, read off the options themselves."""
    def probe() -> None: ...
    params: list[click.Parameter] = getattr(server_options(probe), "__click_params__", [])
    return {p.name for p in params if p.name}


_SERVER_NAMES = _option_names()
