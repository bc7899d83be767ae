"""``lifenet web``: the browser gateway, on ``--http HOST:PORT`` (127.0.0.1:8080).

It reaches the server as ``lifenet client`` does (``--connect``, ``--server-key``, or
the keys of a local ``lifenet up`` found by the port) and watches its frames on
``--frame-port`` (default: a local ``up``'s, else the player port + 1, the server's
own default layout). The one line it prints when it listens names the URL to open.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click

from client.commands import connect_option, credentials, key_options
from shared.errors import ConfigError
from shared.http import DEFAULT_HTTP, parse_http
from shared.remote import host_and_port, is_loopback, local_ups


def _http(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, int]:
    try:
        return parse_http(value)
    except ConfigError as e:
        raise click.BadParameter(str(e), ctx, param) from None


def frame_endpoint(player: str, frame_port: int | None) -> str:
    """The frame publisher's endpoint beside the player endpoint ``player``."""
    host, port = host_and_port(player)
    if frame_port is None and port is not None and is_loopback(host):
        for up in local_ups():
            if up["player"] == port:
                frame_port = up["frame"]
    if frame_port is None:
        frame_port = (port or 5556) + 1
    return f"{player.rsplit(':', 1)[0]}:{frame_port}"


@click.command("web")
@connect_option
@click.option("--http", default=DEFAULT_HTTP, callback=_http,
              help="Where the page is served: HOST:PORT (port 0: any free port).")
@click.option("--frame-port", type=click.IntRange(1, 65535), default=None,
              help="The server's frame port [default: a local lifenet up's, else the "
                   "player port + 1].")
@click.option("--max-tabs-per-address", type=click.IntRange(1, 100_000), default=16,
              help="WebSockets one address may hold open.")
@click.option("--max-tabs", type=click.IntRange(1, 100_000), default=1024,
              help="WebSockets the gateway holds open in all.")
@click.option("--allow-origin", "allow_origins", multiple=True,
              help="Another origin (scheme://host:port) whose pages may open the "
                   "WebSocket, beside the gateway's own; may be given more than once.")
@click.option("--linger", type=click.FloatRange(0.0, 3600.0), default=30.0,
              help="Seconds a dropped tab's player keeps playing, waiting for it to "
                   "come back with its token.")
@key_options
def web(connect: str, http: tuple[str, int], frame_port: int | None,
        max_tabs_per_address: int, max_tabs: int, allow_origins: tuple[str, ...],
        linger: float, server_key: Path | None, key: Path | None) -> None:
    """Serve the browser client: a page and a WebSocket gateway to the server."""
    from client.web.gateway import Gateway, GatewayConfig  # aiohttp: only when it runs

    config = GatewayConfig(
        connect=connect, frame_endpoint=frame_endpoint(connect, frame_port),
        credentials=credentials(connect, server_key, key),
        max_tabs_per_address=max_tabs_per_address, max_tabs=max_tabs,
        allow_origins=allow_origins, linger=linger)
    asyncio.run(serve(Gateway(config), *http))


async def serve(gateway: object, host: str, port: int) -> None:
    """Run ``gateway`` (a ``Gateway``) on ``host:port`` until SIGTERM or SIGINT."""
    from aiohttp import web

    from client.web.gateway import Gateway

    assert isinstance(gateway, Gateway)
    runner = web.AppRunner(gateway.app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise ConfigError(f"cannot serve on {host}:{port}: {e.strerror or e}") from e
    bound = port
    server = getattr(site, "_server", None)
    with contextlib.suppress(AttributeError, IndexError, TypeError):
        bound = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"lifenet web: open http://{shown}:{bound}/ (players of "
               f"{gateway.config.connect}, frames from {gateway.config.frame_endpoint})",
               err=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
