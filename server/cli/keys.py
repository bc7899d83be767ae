"""``lifenet keys init|new``: CURVE key pairs and the server's allow-lists.

``init DIR`` makes the directory a server, its workers and its operators need (see
``shared.keys``); ``new NAME --dir DIR`` adds a pair, on an allow-list if asked (a
second worker key, a new operator). Nothing is ever overwritten. Each command prints
what it wrote and who gets which file.
"""

from __future__ import annotations

from pathlib import Path

import click

from shared.keys import (
    ALLOW_LISTS,
    PUBLIC_SUFFIX,
    SECRET_SUFFIX,
    authorized_path,
    init_keys,
    new_key,
)

_DIR = click.Path(file_okay=False, path_type=Path)


@click.group()
def keys() -> None:
    """CURVE keys: the server's, the workers', the operators'."""


@keys.command()
@click.argument("directory", type=_DIR)
def init(directory: Path) -> None:
    """Make DIR (mode 0700) with server, worker and operator key pairs and allow-lists."""
    pairs = init_keys(directory)
    click.echo(f"wrote {directory}/ (mode 0700):")
    for role, pair in pairs.items():
        click.echo(f"  {role + PUBLIC_SUFFIX:<14} {role + SECRET_SUFFIX:<20} public "
                   f"{pair.public.decode()}")
    for allow_list, role in ALLOW_LISTS.items():
        click.echo(f"  authorized/{allow_list}/{role}{PUBLIC_SUFFIX}")
    click.echo("the server: lifenet server --keys DIR (it needs server.key_secret and "
               "authorized/)\nworkers: lifenet worker --keys DIR (worker.key_secret, "
               "server.key)\nplayers: --server-key DIR/server.key; operators: "
               "operator.key_secret too", err=True)


@keys.command()
@click.argument("name")
@click.option("--dir", "directory", type=_DIR, required=True,
              help="The keys directory (made by `lifenet keys init`).")
@click.option("--authorize", "allow_list", type=click.Choice(sorted(ALLOW_LISTS)),
              default=None, help="Also put the public key on this allow-list.")
def new(name: str, directory: Path, allow_list: str | None) -> None:
    """Add the key pair NAME.key / NAME.key_secret to DIR (never overwriting)."""
    if not directory.is_dir():
        raise click.ClickException(f"no keys directory {directory}: make it with "
                                   f"`lifenet keys init {directory}`")
    pair = new_key(directory, name, allow_list)
    click.echo(f"wrote {directory / (name + PUBLIC_SUFFIX)} and "
               f"{directory / (name + SECRET_SUFFIX)}; public {pair.public.decode()}")
    if allow_list is not None:
        click.echo(f"authorized: {authorized_path(directory, allow_list, name)} (a running "
                   "server reads its lists again within a second)")
