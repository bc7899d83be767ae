"""``lifenet snapshot save|verify|export|inspect``: encrypted, authenticated snapshots.

``save`` asks a running server (``SNAPSHOT`` on the player endpoint) and prints the path
of the written file once it exists. ``verify`` and ``export`` need the key
(``LIFENET_SNAPSHOT_KEY`` or ``--key-file``); both check the tag before anything is
decrypted, and ``export`` writes nothing unless every step succeeded. ``inspect`` prints
the public header and checks the keyless checksum, without the key.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from server.cli.options import peer_key_options
from server.snapshot import (
    DEFAULT_TIMEOUT,
    check_bytes,
    inspect_snapshot,
    load_key,
    read_snapshot,
    verify_snapshot,
    write_snapshot_bytes,
)
from server.world import write_world
from shared import protocol
from shared.errors import PeerGone
from shared.protocol import Kind
from shared.remote import credentials_for, player_endpoint, request

_FILE = click.Path(dir_okay=False, path_type=Path)
_key_file = click.option("--key-file", type=_FILE, default=None,
                         help="The snapshot key, one line [default: $LIFENET_SNAPSHOT_KEY].")
_timeout = click.option("--timeout", type=click.FloatRange(0.1), default=DEFAULT_TIMEOUT,
                        help="Seconds openssl may take before it is killed.")


@click.group()
def snapshot() -> None:
    """Encrypted, authenticated snapshots of a server's state."""


@snapshot.command()
@click.option("--connect", default="127.0.0.1",
              help="The server's player endpoint: HOST, HOST:PORT or tcp://HOST:PORT.")
@click.option("--timeout", type=click.FloatRange(0.1), default=120.0,
              help="Seconds to wait for the snapshot to be written.")
@click.option("--out", type=_FILE, default=None,
              help="Also fetch the (still encrypted) file and write it here.")
@peer_key_options("operator")
def save(connect: str, timeout: float, out: Path | None, keys: Path | None,
         key: Path | None, server_key: Path | None) -> None:
    """Ask a running server for a snapshot now; prints the written file's path.

    The server writes into its own --snapshot-dir, with its own key. With --out the file
    comes back over the connection and is written here too (whole, or not at all), after
    its keyless checksum is checked: verify it with the key like any other. On a server
    with keys only operators may ask: sign in with --keys DIR (its operator.key_secret)
    or --key FILE --server-key FILE.
    """
    ask = protocol.message(Kind.SNAPSHOT, version=protocol.PROTOCOL_VERSION)
    if out is not None:
        ask.body["send"] = True
    endpoint = player_endpoint(connect)
    reply = request(endpoint, ask, timeout, credentials=credentials_for(
        endpoint, server_key, key, keys=keys, role="operator"))
    if reply.kind is not Kind.SNAPSHOT_REPLY:
        raise PeerGone(f"{connect} answered {reply.kind}, not a snapshot reply")
    if out is not None:
        if not reply.payloads:
            raise PeerGone(f"{connect} did not send the snapshot's bytes")
        data = bytes(reply.payloads[0])
        check_bytes(data, out.name)
        write_snapshot_bytes(out, data)
        click.echo(out)
    else:
        click.echo(reply["path"])
    click.echo(f"generation {reply['generation']}, {reply['bytes']} bytes", err=True)


@snapshot.command()
@click.argument("file", type=_FILE)
@_key_file
@_timeout
def verify(file: Path, key_file: Path | None, timeout: float) -> None:
    """Exit 0 only if FILE's authentication tag verifies under the key."""
    header = verify_snapshot(file, load_key(key_file), timeout)
    meta = header.meta
    click.echo(f"{file}: verified, generation {meta['generation']}, world "
               f"{meta['height']}x{meta['width']} {meta['rule']}")


@snapshot.command()
@click.argument("file", type=_FILE)
@click.option("--rle", "out", type=_FILE, required=True,
              help="Write the whole world here as RLE.")
@_key_file
@_timeout
def export(file: Path, out: Path, key_file: Path | None, timeout: float) -> None:
    """Verify FILE, decrypt it and write its world as whole-world RLE."""
    _, state = read_snapshot(file, load_key(key_file), timeout)
    write_world(out, state.grid(), state.rule, state.generation)
    click.echo(f"wrote generation {state.generation} ({state.height}x{state.width}) to {out}")


@snapshot.command()
@click.argument("file", type=_FILE)
@click.option("--json", "as_json", is_flag=True, help="Print the header as JSON.")
@_timeout
def inspect(file: Path, as_json: bool, timeout: float) -> None:
    """Print FILE's public header; no key needed, nothing authenticated."""
    header, intact = inspect_snapshot(file, timeout)
    info = {**header.describe(), "checksum_ok": intact}
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
    else:
        for name, value in info.items():
            click.echo(f"{name:18} {value}")
        click.echo("(the checksum catches damage, not tampering: `verify` needs the key)")
    if not intact:
        raise click.ClickException(f"{file} is damaged: its checksum does not match")
