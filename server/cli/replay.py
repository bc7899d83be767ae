"""``lifenet replay FILE``: re-derive a recorded game (``lifenet server --record``).

``--verify`` recomputes every generation from the log alone with the local kernel and
checks every world hash and every chain link; it exits 1 naming the first record that
fails. ``--to N --out world.rle`` writes the world at generation N (checked on the
way). ``--from-snapshot SNAP`` supplies the snapshot a log starts from (named in it by
its sha256): it is verified and decrypted with the snapshot key first.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from server.replay.log import file_hash
from server.replay.play import SnapshotWorld, replay
from server.replay.play import verify as verify_log
from server.snapshot import DEFAULT_TIMEOUT, load_key, read_snapshot
from server.world import write_world

log = logging.getLogger("lifenet.replay")

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.command("replay")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--verify", is_flag=True, default=False,
              help="Check every generation and link to the end; exit 1 at the first that "
                   "fails.")
@click.option("--to", "to", type=click.IntRange(0), default=None,
              help="Stop at this generation [default: the log's last].")
@click.option("--out", type=_FILE, default=None,
              help="Write the world where the replay stopped as RLE here.")
@click.option("--from-snapshot", type=click.Path(dir_okay=False, exists=True,
                                                 path_type=Path), default=None,
              help="The snapshot the log starts from (it names it by sha256).")
@click.option("--key-file", type=_FILE, default=None,
              help="The snapshot key, one line [default: $LIFENET_SNAPSHOT_KEY].")
def replay_command(file: Path, verify: bool, to: int | None, out: Path | None,
                   from_snapshot: Path | None, key_file: Path | None) -> None:
    """Replay a recorded game: verify its chain and every generation, or write one."""
    if not verify and out is None:
        raise click.UsageError("say what to do: --verify, or --out FILE (with --to N)")
    snapshot: SnapshotWorld | None = None
    if from_snapshot is not None:
        _, state = read_snapshot(from_snapshot, load_key(key_file), DEFAULT_TIMEOUT)
        snapshot = (file_hash(from_snapshot), state.grid(), state.rule, state.generation)
    if verify:
        done = verify_log(file, snapshot=snapshot)
        if to is not None:
            done = replay(file, to=to, snapshot=snapshot)  # the world at N, all verified
    else:
        done = replay(file, to=to, snapshot=snapshot)
        if done.torn:
            log.warning("%s: a torn last record (%d bytes, a crash mid-append) follows "
                        "the whole ones", file, done.torn)
    if out is not None:
        write_world(out, done.grid, done.rule, done.generation)
    click.echo(f"{file}: {done.checked} generations verified, chain intact, "
               f"from generation {done.first} to generation {done.generation}"
               + (f"; wrote generation {done.generation} to {out}" if out else ""))
