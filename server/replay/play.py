"""Re-deriving a game from its log: every generation recomputed with the local kernel.

``replay`` walks the records in order and checks, for each: that its bytes match its
digest, that it links to the record before it, that it holds the next generation, and
that the world recomputed from the rule and the record's inputs hashes as the server's
did. The first record that fails raises ``ReplayError`` naming it (its index and
generation). Nothing of the server is trusted but the first world (or the snapshot a
start record names by hash, which the caller supplies).

Given a snapshot that a ``snap`` record names (one the server wrote while recording),
the replay starts there instead: every record before it is still checked for its
digest and its link, and the snapshot's world must hash as the log's world of its
generation; the generations after it are recomputed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.replay.inputs import Input, apply, decode
from server.replay.log import GENESIS, LogFile, Record, cells_world, read_log, world_hash
from shared.errors import ConfigError, ReplayError
from shared.grid import Grid, narrowest
from shared.kernel import rule_table, step_tile
from shared.rules import Rule, parse_rule


@dataclass
class Replayed:
    """Where a replay stopped: the world at ``generation``, its rule, and how many
    generation records were checked."""

    generation: int
    grid: Grid
    rule: Rule
    checked: int
    first: int  # the generation the recomputation started from
    records: int  # whole records read
    torn: int  # bytes of a torn tail after the last whole record (a crash mid-append)


SnapshotWorld = tuple[bytes, Grid, Rule, int]  # file hash, world, rule, generation


def replay(path: Path, *, to: int | None = None, snapshot: SnapshotWorld | None = None,
           progress: Callable[[int], None] | None = None) -> Replayed:
    """Replay the log at ``path`` up to generation ``to`` (its end: ``None``)."""
    logfile = read_log(path)
    return replay_records(logfile, to=to, snapshot=snapshot, progress=progress)


def replay_records(logfile: LogFile, *, to: int | None = None,
                   snapshot: SnapshotWorld | None = None,
                   progress: Callable[[int], None] | None = None) -> Replayed:
    """``replay`` of a log already read."""
    prev = GENESIS
    grid: Grid | None = None
    rule: Rule | None = None
    table = None
    generation = -1
    checked = 0
    first: int | None = None
    skip_to = _snapshot_record(logfile, snapshot)
    for record in logfile.records:
        body = _body(record)
        if body.get("prev") != prev:
            raise ReplayError(f"{record.where()}: broken link: it does not follow "
                              + (f"record {record.index - 1}" if record.index
                                 else "the start of the log"))
        prev = record.digest
        kind = body.get("t")
        if skip_to is not None and record.index <= skip_to:
            if kind == "start":  # the rule the snapshot's game runs
                rule = _rule_of(record, body)
                table = rule_table(rule)
            if record.index == skip_to:  # the log's record of the snapshot's generation
                assert snapshot is not None
                grid, generation = snapshot[1], body["g"]
                if world_hash(grid.codes) != body.get("world") or snapshot[2] != rule:
                    raise ReplayError(f"generation {generation} differs "
                                      f"({record.where()}): the snapshot's world (or rule) "
                                      "is not the one the log recorded")
                grid = Grid(grid.height, grid.width, narrowest(grid.codes))
                first = generation
            continue
        if kind == "start":
            grid, rule, generation = _start(record, body, grid, generation, snapshot)
            table = rule_table(rule)
            if first is None:
                first = generation
        elif kind == "gen":
            if grid is None or rule is None or table is None:
                raise ReplayError(f"{record.where()}: a generation before any start record")
            if to is not None and generation >= to:
                break
            if body.get("g") != generation + 1:
                raise ReplayError(f"{record.where()}: holds generation {body.get('g')} "
                                  f"where {generation + 1} was expected")
            try:
                inputs: list[Input] = [decode(item, grid.height, grid.width)
                                       for item in body.get("in", [])]
            except ValueError as e:
                raise ReplayError(f"{record.where()}: {e}") from e
            stepped = step_tile(grid.padded(), table)
            codes = apply(grid.codes, stepped, inputs, table)
            generation += 1
            if world_hash(codes) != body.get("world"):
                raise ReplayError(f"generation {generation} differs ({record.where()}): "
                                  "the world recomputed from the rule and the recorded "
                                  "inputs does not hash as the server's did")
            grid = Grid(grid.height, grid.width, codes)
            checked += 1
            if progress is not None:
                progress(generation)
        elif kind == "snap":
            if type(body.get("g")) is not int or body["g"] > generation:
                raise ReplayError(f"{record.where()}: names a snapshot of a generation "
                                  "not made yet")
        else:
            raise ReplayError(f"{record.where()}: not a record lifenet writes ({kind!r})")
    if logfile.damage:
        raise ReplayError(logfile.damage)
    if grid is None or rule is None:
        raise ReplayError("the log holds no start record")
    if to is not None and generation < to:
        raise ReplayError(f"the log ends at generation {generation}, before {to}")
    return Replayed(generation, grid, rule, checked, first if first is not None else 0,
                    len(logfile.records), logfile.torn)


def verify(path: Path, *, snapshot: SnapshotWorld | None = None) -> Replayed:
    """``replay`` of the whole log, which must end with a whole record: a torn tail (a
    crash mid-append, which ``--record`` drops when it continues the log) fails too,
    after everything before it was checked."""
    done = replay(path, snapshot=snapshot)
    if done.torn:
        raise ReplayError(f"record {done.records} is a torn last record ({done.torn} "
                          "bytes: a crash mid-append, or a damaged length); everything "
                          f"before it verified, up to generation {done.generation}; "
                          "`lifenet server --record` drops it when it continues the log")
    return done


def _snapshot_record(logfile: LogFile, snapshot: SnapshotWorld | None) -> int | None:
    """The index of the generation record a replay from ``snapshot`` starts at: the
    last one of the snapshot's generation before the ``snap`` record that names it;
    ``None`` when a start record names it instead (or no snapshot is given)."""
    if snapshot is None:
        return None
    bodies = [(r.index, r.body) for r in logfile.records if r.body is not None]
    if any(b.get("t") == "start" and b.get("snapshot") == snapshot[0] for _, b in bodies):
        return None
    for index, body in bodies:
        if body.get("t") == "snap" and body.get("snapshot") == snapshot[0]:
            if body.get("g") != snapshot[3]:
                raise ReplayError(f"record {index}: names this snapshot as generation "
                                  f"{body.get('g')}, but it holds {snapshot[3]}")
            made = [i for i, b in bodies if i < index and b.get("t") == "gen"
                    and b.get("g") == body["g"]]
            if not made:
                raise ReplayError(f"record {index}: names a snapshot of generation "
                                  f"{body['g']}, which the log does not hold")
            return made[-1]
    raise ReplayError(f"the log names no snapshot with sha256 {snapshot[0].hex()}")


def _rule_of(record: Record, body: dict[str, Any]) -> Rule:
    try:
        return parse_rule(str(body["rule"]))
    except (KeyError, ConfigError) as e:
        raise ReplayError(f"{record.where()}: not a start record: {e}") from e


def _body(record: Record) -> dict[str, Any]:
    if record.body is None:
        raise ReplayError(f"{record.where()} is damaged: its body is not a record")
    if not record.intact:
        raise ReplayError(f"{record.where()} is damaged: its bytes do not match its digest")
    return record.body


def _start(record: Record, body: dict[str, Any], grid: Grid | None, generation: int,
           snapshot: SnapshotWorld | None) -> tuple[Grid, Rule, int]:
    """The world, rule and generation a start record begins (or goes on) with."""
    try:
        rule = parse_rule(str(body["rule"]))
        g, height, width = body["g"], body["h"], body["w"]
        if not all(type(v) is int and v >= 0 for v in (g, height, width)):
            raise ValueError("generation and size are not integers")
        if "cells" in body:
            start = cells_world(body)
        elif "snapshot" in body:
            if snapshot is None or snapshot[0] != body["snapshot"]:
                raise ReplayError(
                    f"{record.where()}: the game starts from the snapshot with sha256 "
                    f"{bytes(body['snapshot']).hex()}: give it with --from-snapshot")
            _, start, snap_rule, snap_gen = snapshot
            if snap_gen != g or snap_rule != rule:
                raise ReplayError(f"{record.where()}: the snapshot holds generation "
                                  f"{snap_gen} of {snap_rule}, not {g} of {rule}")
        elif body.get("continues") and grid is not None:
            if generation != g:
                raise ReplayError(f"{record.where()}: continues generation {g}, but the "
                                  f"log reached {generation}")
            start = grid
        else:
            raise ValueError("no world")
    except (KeyError, ValueError, TypeError, ConfigError) as e:
        raise ReplayError(f"{record.where()}: not a start record: {e}") from e
    if (start.height, start.width) != (height, width):
        raise ReplayError(f"{record.where()}: the world is {start.height}x{start.width}, "
                          f"not {height}x{width}")
    if world_hash(start.codes) != body.get("world"):
        raise ReplayError(f"generation {g} differs ({record.where()}): the start world "
                          "does not hash as the log says")
    return Grid(height, width, narrowest(start.codes)), rule, g
