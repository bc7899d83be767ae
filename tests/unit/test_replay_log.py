"""The replay log's file: chain, framing, hashes, torn tails, and what a replay names
when a log was tampered with (no sockets: the log is written here with ``Recorder``,
its generations made by ``inputs.apply`` itself; the integration tier records a real
server)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from server.replay.inputs import Input, Neutral, Place, RoundEnd, Write, Zones, apply
from server.replay.log import MAGIC, Recorder, file_hash, read_log, world_hash
from server.replay.play import replay, verify
from shared.errors import ReplayError
from shared.grid import Grid, player_code
from shared.kernel import rule_table, step_tile
from shared.rules import CONWAY

pytestmark = pytest.mark.timeout(120)

GENERATIONS = 6
SIZE = 24


def inputs_of(gen: int, rng: np.random.Generator) -> list[Input]:
    """A few inputs of every kind, as a game makes them."""
    ys, xs = rng.integers(0, SIZE, (2, 12))
    made: list[Input] = [Zones(((1, 1, 6, 6),)),
                         Write(ys[:4], xs[:4], player_code(2)),
                         Write(ys[4:6], xs[4:6], 0),
                         Place(ys[6:], xs[6:], player_code(1 + gen % 3))]
    if gen == 3:
        made.append(Neutral(2))
    if gen == 4:
        made.append(RoundEnd())
    return made


def first_world() -> Grid:
    rng = np.random.default_rng(7)
    return Grid(SIZE, SIZE, rng.choice(np.array([0, 0, 0, 1, 2, 3], dtype=np.uint8),
                                       (SIZE, SIZE)))


def record_game(path: Path, grid: Grid | None = None, start: int = 0,
                generations: int = GENERATIONS, snapshot: Path | None = None) -> Grid:
    """Record ``generations`` generations from ``grid`` (the first world) at ``start``;
    returns the last world."""
    grid = grid or first_world()
    rng = np.random.default_rng(start)
    table = rule_table(CONWAY)
    recorder = Recorder(path, CONWAY, grid, start, snapshot=snapshot)
    for gen in range(start, start + generations):
        inputs = inputs_of(gen, rng)
        grid = Grid(SIZE, SIZE, apply(grid.codes, step_tile(grid.padded(), table), inputs,
                                      table))
        recorder.append(gen + 1, inputs, grid.codes)
    recorder.close()
    return grid


def test_a_log_replays_to_the_world_it_recorded(tmp_path: Path) -> None:
    log = tmp_path / "game.replay"
    last = record_game(log)
    done = verify(log)
    assert (done.generation, done.checked, done.records) == (GENERATIONS, GENERATIONS,
                                                             GENERATIONS + 1)
    assert done.grid == last
    assert replay(log, to=2).generation == 2


def test_the_world_hash_does_not_depend_on_the_codes_width() -> None:
    codes = first_world().codes
    assert world_hash(codes) == world_hash(codes.astype(np.uint16))
    wide = codes.astype(np.uint16)
    wide[0, 0] = 300
    assert world_hash(wide) != world_hash(codes)
    assert world_hash(codes) != world_hash(codes.T.copy())  # cells and owners, placed


def record_index(log: Path, byte: int) -> int | None:
    """The record holding ``byte`` (None: the magic line)."""
    whole = read_log(log)
    index = None
    for record in whole.records:
        if record.offset <= byte:
            index = record.index
    return index


def test_flipping_any_byte_fails_naming_its_record(tmp_path: Path) -> None:
    log = tmp_path / "game.replay"
    record_game(log, generations=3)
    data = log.read_bytes()
    bad = tmp_path / "bad.replay"
    for byte in range(len(data)):
        flipped = bytearray(data)
        flipped[byte] ^= 0x01
        bad.write_bytes(bytes(flipped))
        with pytest.raises(ReplayError) as caught:
            verify(bad)
        index = record_index(log, byte)
        if index is None:
            assert "not a lifenet replay log" in str(caught.value)
        else:
            assert re.search(rf"\brecord {index}\b", str(caught.value)), (byte, caught.value)


def frames(log: Path) -> tuple[bytes, list[bytes]]:
    """The magic line and every record's bytes."""
    data = log.read_bytes()
    records = read_log(log).records
    ends = [r.offset for r in records[1:]] + [len(data)]
    return data[:records[0].offset], [data[r.offset:end] for r, end in zip(records, ends,
                                                                          strict=True)]


def test_dropping_or_swapping_records_breaks_a_link_where_it_happened(tmp_path: Path) -> None:
    log = tmp_path / "game.replay"
    record_game(log)
    head, parts = frames(log)
    dropped = tmp_path / "dropped.replay"
    dropped.write_bytes(head + b"".join(parts[:3] + parts[4:]))
    with pytest.raises(ReplayError, match=r"record 3 \(generation 4\): broken link"):
        verify(dropped)
    swapped = tmp_path / "swapped.replay"
    swapped.write_bytes(head + b"".join([*parts[:2], parts[3], parts[2], *parts[4:]]))
    with pytest.raises(ReplayError, match=r"record 2 \(generation 3\): broken link"):
        verify(swapped)
    last_gone = tmp_path / "short.replay"  # the end cut at a record's edge: still a chain
    last_gone.write_bytes(head + b"".join(parts[:-1]))
    assert verify(last_gone).generation == GENERATIONS - 1


def test_a_wrong_world_names_its_generation(tmp_path: Path) -> None:
    log = tmp_path / "game.replay"
    grid = first_world()
    recorder = Recorder(log, CONWAY, grid, 0)
    nxt = step_tile(grid.padded(), rule_table(CONWAY))
    recorder.append(1, [], nxt)
    wrong = nxt.copy()
    wrong[0, 0] = 5 if wrong[0, 0] != 5 else 0  # a world the inputs do not make
    recorder.append(2, [], wrong)
    recorder.close()
    with pytest.raises(ReplayError, match=r"^generation 2 differs \(record 2"):
        verify(log)


def test_a_torn_tail_is_dropped_when_the_log_is_continued(tmp_path: Path) -> None:
    log = tmp_path / "game.replay"
    last = record_game(log)
    size = log.stat().st_size
    with log.open("r+b") as f:
        f.truncate(size - 20)  # the last record cut short, as by kill -9
    with pytest.raises(ReplayError, match=rf"record {GENERATIONS} is a torn last record"):
        verify(log)
    assert replay(log).generation == GENERATIONS - 1  # what is whole still replays
    # The server that restarts from where the log ends (a snapshot of generation 5)...
    before = replay(log).grid
    record_game(log, before, start=GENERATIONS - 1, generations=3)
    whole = read_log(log)
    assert whole.torn == 0
    starts = [r.body for r in whole.records if r.body and r.body["t"] == "start"]
    assert starts[1]["continues"] is True and "cells" not in starts[1]
    done = verify(log)
    assert done.generation == GENERATIONS + 2 and done.grid != last
    # ... and one that starts afresh: its world is in its start record, the chain goes on.
    record_game(log, generations=2)
    assert verify(log).generation == 2


def test_a_damaged_log_is_not_continued(tmp_path: Path) -> None:
    log = tmp_path / "game.replay"
    record_game(log)
    data = bytearray(log.read_bytes())
    data[len(MAGIC) + 20] ^= 0xFF
    log.write_bytes(bytes(data))
    with pytest.raises(ReplayError, match=r"cannot continue .*record 0"):
        Recorder(log, CONWAY, first_world(), 0)
    assert log.read_bytes() == bytes(data)  # left as it was


def test_a_game_from_a_snapshot_needs_that_snapshot(tmp_path: Path) -> None:
    snapshot = tmp_path / "gen-000010.snap"
    snapshot.write_bytes(b"an encrypted snapshot, as far as the log knows")
    log = tmp_path / "game.replay"
    grid = first_world()
    record_game(log, grid, start=10, snapshot=snapshot)
    assert "cells" not in (read_log(log).records[0].body or {})
    with pytest.raises(ReplayError, match=r"record 0 .*give it with --from-snapshot"):
        verify(log)
    done = verify(log, snapshot=(file_hash(snapshot), grid, CONWAY, 10))
    assert done.generation == 10 + GENERATIONS
    other = Grid(SIZE, SIZE, np.zeros((SIZE, SIZE), dtype=np.uint8))
    with pytest.raises(ReplayError, match="generation 10 differs"):
        verify(log, snapshot=(file_hash(snapshot), other, CONWAY, 10))


def test_a_replay_may_start_from_a_snapshot_the_log_names(tmp_path: Path) -> None:
    log = tmp_path / "game.replay"
    grid = first_world()
    rng = np.random.default_rng(0)
    table = rule_table(CONWAY)
    recorder = Recorder(log, CONWAY, grid, 0)
    worlds = [grid]
    for gen in range(GENERATIONS):
        inputs = inputs_of(gen, rng)
        grid = Grid(SIZE, SIZE, apply(grid.codes, step_tile(grid.padded(), table), inputs,
                                      table))
        worlds.append(grid)
        recorder.append(gen + 1, inputs, grid.codes)
        if gen + 1 == 3:  # the snapshot of generation 3 is written a little later
            snapshot = tmp_path / "world-3.lns"
            snapshot.write_bytes(b"the snapshot of generation 3")
    recorder.snapshot_written(snapshot, 3)
    recorder.close()
    done = verify(log, snapshot=(file_hash(snapshot), worlds[3], CONWAY, 3))
    assert (done.first, done.generation, done.checked) == (3, GENERATIONS, GENERATIONS - 3)
    assert done.grid == worlds[-1]
    assert verify(log).checked == GENERATIONS  # without it: from the first world, as ever
    with pytest.raises(ReplayError, match=r"generation 3 differs \(record 3"):
        verify(log, snapshot=(file_hash(snapshot), worlds[2], CONWAY, 3))
    other = tmp_path / "other.lns"
    other.write_bytes(b"not named")
    with pytest.raises(ReplayError, match="names no snapshot"):
        verify(log, snapshot=(file_hash(other), worlds[3], CONWAY, 3))


def test_a_hostile_but_well_chained_log_is_refused_without_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chain only proves a log is consistent: anyone can write a consistent one.
    A shield zone larger than the world (3 GiB to evolve on a 24x24 world) and a start
    world that inflates to 50 MiB (a zlib bomb) are each one ``ReplayError``, found
    before anything of their size is allocated."""
    log = tmp_path / "zones.replay"
    recorder = Recorder(log, CONWAY, first_world(), 0)
    recorder.append(1, [Zones(((0, 0, 60000, 60000),))], first_world().codes)
    recorder.close()
    with pytest.raises(ReplayError, match="not a zone of a 24x24 world"):
        verify(log)
    import zlib

    from server.replay import log as log_module

    bomb = tmp_path / "bomb.replay"
    monkeypatch.setattr(log_module, "world_cells", lambda codes: {
        "cells": zlib.compress(bytes(50 << 20)), "wide": False})
    Recorder(bomb, CONWAY, first_world(), 0).close()
    with pytest.raises(ReplayError, match="do not fill the world"):
        verify(bomb)
    monkeypatch.setattr(log_module, "world_cells", lambda codes: {
        "cells": b"not zlib at all", "wide": False})
    junk = tmp_path / "junk.replay"
    Recorder(junk, CONWAY, first_world(), 0).close()
    with pytest.raises(ReplayError, match="not zlib data"):
        verify(junk)
