"""Snapshots: the format, every refusal, and the openssl children (no sockets)."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from server import snapshot as snap
from server.cli import main
from server.snapshot import (
    KEY_ENV,
    MIN_ITERATIONS,
    SnapshotKey,
    Snapshotter,
    WorldState,
    Written,
    load_key,
    prune,
    read_snapshot,
    save_snapshot,
    snapshot_name,
    snapshots_in,
    verify_snapshot,
)
from server.snapshot import format as layout
from shared.errors import SnapshotError
from shared.rle import parse_rle
from shared.rules import parse_rule
from tests.conftest import wait_for

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None,
                                reason="snapshots need the openssl command")

KEY = SnapshotKey(b"correct horse battery staple")
FAST = 1000  # iterations for tests that only exercise the format (MIN_ITERATIONS patched)


def world(seed: int = 1, h: int = 12, w: int = 20, generation: int = 7) -> WorldState:
    rng = np.random.default_rng(seed)
    codes = rng.choice([0, 1, 2, 3], size=(h, w), p=[.5, .3, .1, .1]).astype(np.uint8)
    return WorldState(codes, generation, parse_rule("B36/S23"),
                      players=[{"id": 1, "name": "ada", "energy": 12}],
                      rng={"seed": seed, "fill": 0.25})


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Lower the minimum so format tests do not pay the real KDF hundreds of times."""
    monkeypatch.setattr(layout, "MIN_ITERATIONS", FAST)
    yield


def same(a: WorldState, b: WorldState) -> bool:
    return (np.array_equal(a.codes, b.codes) and a.generation == b.generation
            and a.rule == b.rule and a.players == b.players and a.rng == b.rng)


def processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


# --- the format ---------------------------------------------------------------------


def test_round_trip_with_the_real_minimum(tmp_path: Path) -> None:
    state = world()
    written = save_snapshot(tmp_path / "a.lns", state, KEY, iterations=MIN_ITERATIONS)
    assert written.size == (tmp_path / "a.lns").stat().st_size
    header, back = read_snapshot(tmp_path / "a.lns", KEY)
    assert same(back, state)
    assert header.generation == 7 and header.iterations == MIN_ITERATIONS
    assert [p.name for p in tmp_path.iterdir()] == ["a.lns"]  # no temporary file left


def test_saving_below_the_minimum_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="minimum"):
        save_snapshot(tmp_path / "a.lns", world(), KEY, iterations=MIN_ITERATIONS - 1)
    assert not list(tmp_path.iterdir())


@pytest.mark.timeout(240)  # one read (an openssl child) per byte tried
def test_flipped_bytes_anywhere_are_refused(tmp_path: Path, fast: None) -> None:
    path = tmp_path / "a.lns"
    save_snapshot(path, world(h=4, w=5), KEY, iterations=FAST)
    data = path.read_bytes()
    bad = tmp_path / "bad.lns"
    # Every fourth byte through header, ciphertext and checksum, and all of the tag.
    for i in sorted({*range(0, len(data), 4), *range(len(data) - 32, len(data))}):
        flipped = bytearray(data)
        flipped[i] ^= 0x01
        bad.write_bytes(flipped)
        with pytest.raises(SnapshotError):
            read_snapshot(bad, KEY)
    assert read_snapshot(path, KEY)[1].generation == 7


@pytest.mark.parametrize("case, message", [
    ("wrong key", "wrong key"),
    ("flipped", "damaged or altered"),
    ("flipped tag", "altered"),
    ("truncated", "truncated"),
    ("empty", "is empty"),
    ("magic", "not a lifenet snapshot"),
    ("iterations", "fewer than the minimum"),
    ("version", "newer than this lifenet"),
    ("extra", "after its end"),
])
def test_export_refuses_with_one_line_and_writes_nothing(tmp_path: Path, case: str,
                                                         message: str) -> None:
    good = tmp_path / "good.lns"
    save_snapshot(good, world(), KEY, iterations=MIN_ITERATIONS)
    data = bytearray(good.read_bytes())
    env = {KEY_ENV: KEY.secret.decode()}
    if case == "wrong key":
        env = {KEY_ENV: "not the key"}
    elif case == "flipped":
        data[len(data) // 2] ^= 0x80
    elif case == "flipped tag":
        data[-1] ^= 0x80
    elif case == "truncated":
        del data[-100:]
    elif case == "empty":
        data.clear()
    elif case == "magic":
        data[1] = ord("X")
    elif case == "iterations":
        data[12:16] = (MIN_ITERATIONS - 1).to_bytes(4, "big")
    elif case == "version":
        data[8:10] = (snap.FORMAT_VERSION + 1).to_bytes(2, "big")
    elif case == "extra":
        data += b"\0"
    bad = tmp_path / "bad.lns"
    bad.write_bytes(data)
    out = tmp_path / "out.rle"
    runner = CliRunner()
    for command in (["snapshot", "export", str(bad), "--rle", str(out)],
                    ["snapshot", "verify", str(bad)]):
        result = runner.invoke(main, command, env=env)
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.output
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.lns", "good.lns"]


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_file_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path,
                                                              kind: str) -> None:
    if kind == "fifo":
        path = tmp_path / "pipe.lns"
        os.mkfifo(path)  # reading would block until a writer came
    else:
        path = Path("/dev/zero")  # reading would never end
    out = tmp_path / "out.rle"
    runner = CliRunner()
    for command in (["snapshot", "export", str(path), "--rle", str(out)],
                    ["snapshot", "verify", str(path)], ["snapshot", "inspect", str(path)]):
        result = runner.invoke(main, command, env={KEY_ENV: KEY.secret.decode()})
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "not a regular file" in lines[0], result.output
    assert not out.exists()


def test_verify_export_and_inspect_succeed(tmp_path: Path) -> None:
    path = tmp_path / "a.lns"
    state = world(h=9, w=11)
    save_snapshot(path, state, KEY, iterations=MIN_ITERATIONS)
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY.secret + b"\n")
    runner = CliRunner()
    result = runner.invoke(main, ["snapshot", "verify", str(path), "--key-file",
                                  str(key_file)], env={KEY_ENV: None})
    assert result.exit_code == 0 and "verified, generation 7" in result.output
    out = tmp_path / "out.rle"
    result = runner.invoke(main, ["snapshot", "export", str(path), "--rle", str(out),
                                  "--key-file", str(key_file)])
    assert result.exit_code == 0, result.output
    pattern = parse_rle(out.read_text())
    assert np.array_equal(pattern.codes, state.codes) and pattern.rule == state.rule
    result = runner.invoke(main, ["snapshot", "inspect", str(path)], env={KEY_ENV: None})
    assert result.exit_code == 0 and "generation" in result.output
    assert "B36/S23" in result.output and "checksum_ok        True" in result.output


def test_no_key_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["snapshot", "verify", str(tmp_path / "x.lns")],
                                env={KEY_ENV: None})
    assert result.exit_code == 1 and KEY_ENV in result.output


def test_keys(tmp_path: Path) -> None:
    f = tmp_path / "k"
    f.write_bytes(b"secret\r\n")
    assert load_key(f).secret == b"secret"
    assert load_key(None, {KEY_ENV: "from env"}).secret == b"from env"
    assert "secret" not in repr(load_key(f))
    for bad in (b"", b"two\nlines", b"x" * 2000):
        f.write_bytes(bad)
        with pytest.raises(SnapshotError):
            load_key(f)
    with pytest.raises(SnapshotError, match=KEY_ENV):
        load_key(None, {})


def test_names_sort_oldest_to_newest(tmp_path: Path) -> None:
    for g in (5, 120, 40, 1_000_000):
        (tmp_path / snapshot_name(g)).write_bytes(b"x")
    (tmp_path / "notes.txt").write_bytes(b"x")
    names = sorted(p.name for p in tmp_path.glob("world-*.lns"))
    assert names == [p.name for p in snapshots_in(tmp_path)]


def test_prune_removes_only_its_own_snapshots_and_never_the_newest(tmp_path: Path) -> None:
    """Files planted with huge generation numbers (a same-user attacker, or a restore
    from an older snapshot) are not the writer's: they neither survive in place of its
    new snapshots nor make it delete them."""
    planted = [tmp_path / snapshot_name(g) for g in (99_999_999_999, 99_999_999_998)]
    for p in planted:
        p.write_bytes(b"planted")
    written = []
    for g in (5, 40, 120):
        (tmp_path / snapshot_name(g)).write_bytes(b"x")
        written.append(Written(tmp_path / snapshot_name(g), g, 1))
    removed = prune(written, 2)
    assert [w.generation for w in removed] == [5]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [snapshot_name(40), snapshot_name(120), *(p.name for p in planted)])
    assert prune(written[-1:], 0) == []  # never the newest
    assert (tmp_path / snapshot_name(120)).exists()


def test_the_writer_removes_what_killed_writes_left_once_it_is_stale(tmp_path: Path,
                                                                      fast: None) -> None:
    stale = tmp_path / f".{snapshot_name(40)}.k2j4x9.tmp"  # as mkstemp names them
    fresh = tmp_path / f".{snapshot_name(41)}.a8f3zq.tmp"  # a write still under way
    other = tmp_path / ".notes.txt.tmp"
    odd = tmp_path / f".{snapshot_name(39)}.zzzzzz.tmp"  # a directory: left, and no stop
    odd.mkdir()
    for p in (stale, fresh, other):
        p.write_bytes(b"half a snapshot")
    an_hour_ago = time.time() - 3600
    for p in (stale, other, odd):
        os.utime(p, (an_hour_ago, an_hour_ago))
    writer = Snapshotter(tmp_path, KEY, iterations=FAST, timeout=30)
    writer.start()
    done = threading.Event()
    writer.submit(world(generation=50), [lambda written, error: done.set()])
    writer.stop()
    assert done.wait(30)
    writer.join(30)
    assert writer.failures == 0
    assert not stale.exists()
    assert fresh.exists() and other.exists() and odd.is_dir()
    assert [p.name for p in snapshots_in(tmp_path)] == [snapshot_name(50)]


def test_a_restarted_writer_adopts_its_earlier_snapshots_and_nothing_else(
        tmp_path: Path, fast: None) -> None:
    """A server restarted on its directory keeps ``keep`` snapshots in all: those of
    the earlier run that verify with its key and whose name says their generation count
    (oldest written first, whatever their generation), and are pruned in that order;
    a file that is not one of them is never touched."""
    earlier = [tmp_path / snapshot_name(g) for g in (300, 100, 200)]  # written in order
    for i, path in enumerate(earlier):
        save_snapshot(path, world(generation=int(path.stem.split("-")[1])), KEY,
                      iterations=FAST)
        os.utime(path, (1000.0 + i, 1000.0 + i))
    foreign = tmp_path / snapshot_name(900)
    save_snapshot(foreign, world(generation=900), SnapshotKey(b"another server's key"),
                  iterations=FAST)
    misnamed = tmp_path / snapshot_name(901)
    save_snapshot(misnamed, world(generation=5), KEY, iterations=FAST)
    junk = tmp_path / snapshot_name(902)
    junk.write_bytes(b"not a snapshot")
    writer = Snapshotter(tmp_path, KEY, keep=3, iterations=FAST, timeout=30)
    writer.start()
    for generation in (400, 401):
        done = threading.Event()

        def finished(written: Written | None, error: SnapshotError | None,
                     done: threading.Event = done) -> None:
            done.set()

        writer.submit(world(generation=generation), [finished])
        assert done.wait(30)
    writer.stop()
    writer.join(30)
    assert writer.failures == 0
    # Written 300, 100, 200, then 400, 401: the three newest written stay.
    assert sorted(p.name for p in snapshots_in(tmp_path)) == sorted(
        [snapshot_name(200), snapshot_name(400), snapshot_name(401),
         foreign.name, misnamed.name, junk.name])


# --- wide worlds (codes above 255), and format 1 -----------------------------------------

# A real format-1 file, written by lifenet before format 2 (commit 07ce6d7's
# save_snapshot, KEY, MIN_ITERATIONS): a 4x5 world at generation 41, one byte a cell.
V1_FILE = base64.b64decode(
    "iUxOUw0KGgoAAQEBAAMNQEp6jIAKOC+lGJNmohp/8wzPwkYqEwVl6S7kJWEQWpaiAAAAAAAAAIAANoWqZ2Vu"
    "ZXJhdGlvbimmaGVpZ2h0BKV3aWR0aAWkcnVsZadCMzYvUzIzp2NyZWF0ZWTOawzdrNL1HRzFUE/ksXbOFFpi"
    "YyttXCNRL3lesRLE5y6KzCXrPaUoFlgS07pIhRlAp7+Q42L0ZD1V5pt/zUk7yg4BeSxUfKOB/stF/bQJUo6V"
    "1MJyOGPeVttl196PC8J/CuAow1vQqpsUch+3OXEjK6FJGHUi2WoL38Fwtw/3Pt3tWtuJp7pOizdmONMvCTcK"
    "TWsB6ulq/YZr//xuzrzWhsJ3j/VmTi4YOVcC2KyH1vRETzzVeNHLqnlSeE7lE6ajXFKWGg=="
)
V1_CODES = [[0, 1, 2, 0, 0], [0, 0, 1, 3, 0], [255, 1, 1, 0, 0], [0, 0, 0, 0, 17]]


def wide_world(seed: int = 2, h: int = 12, w: int = 20) -> WorldState:
    """A world with cells of players up to the last one (codes up to 65 535)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 65536, size=(h, w), dtype=np.uint16)
    codes[rng.random((h, w)) < 0.4] = 0
    codes[0, :3] = [1, 256, 65535]
    return WorldState(codes, 9, parse_rule("B3/S23"), players=[{"id": 65534, "name": "z"}],
                      rng={"seed": seed, "fill": 0.25})


def state_body(state: WorldState) -> dict[str, Any]:
    body: dict[str, Any] = msgpack.unpackb(layout.pack_state(state))
    return body


def test_a_wide_world_round_trips_through_a_real_file(tmp_path: Path, fast: None) -> None:
    state = wide_world()
    path = tmp_path / "wide.lns"
    save_snapshot(path, state, KEY, iterations=FAST)
    header, back = read_snapshot(path, KEY)
    assert header.version == snap.FORMAT_VERSION == 2
    assert back.codes.dtype == np.uint16 and same(back, state)
    assert back.grid().wide and back.grid().owner(0, 2) == 65534


@settings(max_examples=100, deadline=None)
@given(arrays(np.uint16, st.tuples(st.integers(1, 16), st.integers(1, 16)),
              elements=st.one_of(st.sampled_from([0, 1, 2, 255, 256, 65535]),
                                 st.integers(0, 65535))))
def test_the_state_keeps_every_code_and_the_narrowest_width(codes: np.ndarray) -> None:
    state = WorldState(codes, 3, parse_rule("B3/S23"))
    body = state_body(state)
    wide = int(codes.max(initial=0)) > 255
    assert body["wide"] is wide
    assert len(body["codes"]) == codes.size * (2 if wide else 1)
    back = layout.unpack_state(layout.pack_state(state))
    assert np.array_equal(back.codes, codes)
    assert back.codes.dtype == (np.uint16 if wide else np.uint8)


def test_wide_codes_are_little_endian_and_narrow_ones_a_byte_a_cell() -> None:
    codes = np.array([[0, 256, 65535, 2]], dtype=np.uint16)
    assert state_body(WorldState(codes, 1, parse_rule("B3/S23")))["codes"] == (
        b"\x00\x00" b"\x00\x01" b"\xff\xff" b"\x02\x00")
    # Held wide but every code fits a byte (the high players left): written narrow.
    fits = np.array([[0, 255, 1, 2]], dtype=np.uint16)
    body = state_body(WorldState(fits, 1, parse_rule("B3/S23")))
    assert body["wide"] is False and body["codes"] == b"\x00\xff\x01\x02"


def test_a_format_1_file_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / snapshot_name(41)
    path.write_bytes(V1_FILE)
    header, state = read_snapshot(path, KEY)
    assert header.version == 1 and header.generation == 41
    assert state.codes.dtype == np.uint8 and state.codes.tolist() == V1_CODES
    assert state.rule == parse_rule("B36/S23") and state.players[0]["name"] == "ada"
    assert verify_snapshot(path, KEY).version == 1
    result = CliRunner().invoke(main, ["snapshot", "inspect", str(path)],
                                env={KEY_ENV: None})
    assert result.exit_code == 0 and "format" in result.output


def test_a_format_1_state_built_as_the_old_code_did_is_read() -> None:
    """Format 1's state: no ``wide``, one byte a cell (the old ``pack_state``)."""
    codes = np.random.default_rng(4).integers(0, 256, size=(30, 40), dtype=np.uint8)
    old = msgpack.packb({"generation": 5, "height": 30, "width": 40, "rule": "B3/S23",
                         "codes": codes.tobytes(), "players": [], "rng": {}},
                        use_bin_type=True)
    state = layout.unpack_state(old, 1)
    assert state.codes.dtype == np.uint8 and np.array_equal(state.codes, codes)
    with pytest.raises(SnapshotError, match=r"fields of a lifenet world \(format 2\)"):
        layout.unpack_state(old, 2)  # format 2 says its width
    with pytest.raises(SnapshotError, match=r"fields of a lifenet world \(format 1\)"):
        layout.unpack_state(layout.pack_state(wide_world()), 1)
    with pytest.raises(SnapshotError, match="unknown format version 3"):
        layout.unpack_state(old, 3)


@pytest.mark.parametrize("wide, cells, says", [
    (True, 1, "the state's codes are 240 bytes, not 480 (12x20 cells, two bytes a cell)"),
    (False, 2, "the state's codes are 480 bytes, not 240 (12x20 cells, one byte a cell)"),
    (True, 3, "the state's codes are 720 bytes, not 480"),
    (1, 2, "the state's 'wide' is not bool"),
    (None, 1, "the state's 'wide' is not bool"),
])
def test_a_width_that_does_not_match_the_bytes_is_refused(wide: Any, cells: int,
                                                          says: str) -> None:
    body = state_body(world())
    body["wide"], body["codes"] = wide, bytes(12 * 20 * cells)
    with pytest.raises(SnapshotError) as refused:
        layout.unpack_state(msgpack.packb(body, use_bin_type=True))
    assert says in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("version, says", [
    (0, "has an unknown format version 0 (this lifenet reads 1, 2)"),
    (3, "has format version 3, newer than this lifenet reads (2): upgrade lifenet"),
    (0xFFFF, "has format version 65535, newer than this lifenet reads (2): upgrade lifenet"),
])
def test_an_unknown_version_is_refused_in_one_line(tmp_path: Path, fast: None,
                                                    version: int, says: str) -> None:
    path = tmp_path / "a.lns"
    save_snapshot(path, wide_world(), KEY, iterations=FAST)
    data = bytearray(path.read_bytes())
    data[8:10] = version.to_bytes(2, "big")
    path.write_bytes(data)
    for read in (verify_snapshot, read_snapshot):
        with pytest.raises(SnapshotError) as refused:
            read(path, KEY)
        assert str(refused.value) == f"a.lns {says}"


def test_the_limits_hold_a_wide_world_of_the_most_cells() -> None:
    """Two bytes a cell for ``MAX_CELLS`` cells fit the plaintext, ciphertext and file
    limits; and a wide state of more than ``MAX_CELLS`` bytes of codes (format 1's
    ``max_bin_len``) is read."""
    from shared.grid import MAX_CELLS

    overhead = len(layout.pack_state(WorldState(np.zeros((1, 1), np.uint8), 0,
                                                parse_rule("B3/S23"))))
    assert 2 * MAX_CELLS + overhead + (1 << 16) <= layout.MAX_PLAINTEXT
    assert layout.MAX_CIPHERTEXT >= layout.MAX_PLAINTEXT
    assert layout.MAX_FILE_BYTES > layout.MAX_CIPHERTEXT
    codes = np.zeros((4097, 8192), dtype=np.uint16)  # 64 MiB + 16 KiB of codes
    codes[4096, 8191] = 65535
    codes[0, 0] = 300
    back = layout.unpack_state(layout.pack_state(WorldState(codes, 1, parse_rule("B3/S23"))))
    assert back.codes.dtype == np.uint16 and back.codes[4096, 8191] == 65535
    assert back.codes[0, 0] == 300 and int(np.count_nonzero(back.codes)) == 2


def test_the_last_player_s_code_is_kept_and_exported(tmp_path: Path, fast: None) -> None:
    """Code 65 535 (player 65 534, the last) is a code like any other: a snapshot keeps
    it and ``snapshot export --rle`` writes it as a ``z`` name that reads back."""
    path = tmp_path / "wide.lns"
    state = wide_world(h=9, w=11)
    save_snapshot(path, state, KEY, iterations=FAST)
    out = tmp_path / "out.rle"
    result = CliRunner().invoke(main, ["snapshot", "export", str(path), "--rle", str(out)],
                                env={KEY_ENV: KEY.secret.decode()})
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "zyOyO" in text and "zA." in text
    pattern = parse_rle(text)
    assert pattern.codes.dtype == np.uint16 and np.array_equal(pattern.codes, state.codes)


# --- the openssl children -----------------------------------------------------------


def stand_in(tmp_path: Path, body: str) -> Path:
    """A directory holding an ``openssl`` script, to put first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "openssl"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def test_decryption_gets_no_byte_before_the_tag_verifies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: None) -> None:
    """``enc -d`` starts early (its key derivation overlaps the tag's), but is fed the
    ciphertext only once the tag verifies: a stand-in logs what reaches its stdin."""
    real = shutil.which("openssl")
    fed = tmp_path / "fed"
    bin_dir = stand_in(tmp_path, f'''case " $* " in
  *" enc -d "*) tee -a "{fed}" | "{real}" "$@" ;;
  *) exec "{real}" "$@" ;;
esac''')
    good = tmp_path / "good.lns"
    save_snapshot(good, world(), KEY, iterations=FAST)
    data = good.read_bytes()
    tampered = tmp_path / "tampered.lns"
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01  # inside the ciphertext
    tampered.write_bytes(flipped)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    for path, key in ((tampered, KEY), (good, SnapshotKey(b"not the key"))):
        fed.write_bytes(b"")
        with pytest.raises(SnapshotError):
            read_snapshot(path, key)
        assert fed.read_bytes() == b"", f"{path.name}: decryption was fed before the check"
    fed.write_bytes(b"")
    header, state = read_snapshot(good, KEY)
    assert same(state, world())
    assert len(fed.read_bytes()) == header.ciphertext_len  # the stand-in does see input


def test_a_file_asking_for_a_long_key_derivation_is_stopped_by_the_timeout(
        tmp_path: Path) -> None:
    """The iteration count is the file's to choose (up to the maximum, seconds of work):
    ``--timeout`` bounds Python's PBKDF2 as it bounds the openssl children."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    path = tmp_path / "slow.lns"
    save_snapshot(path, world(), KEY, iterations=MIN_ITERATIONS)
    data = bytearray(path.read_bytes())
    data[12:16] = snap.MAX_ITERATIONS.to_bytes(4, "big")  # about 7 s of PBKDF2 here
    path.write_bytes(data)
    result = subprocess.run([sys.executable, "-m", "server", "snapshot", "verify", str(path),
                             "--timeout", "1"], capture_output=True, text=True, timeout=60,
                            cwd=ROOT, env={**os.environ, KEY_ENV: KEY.secret.decode()})
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "deriving the key (20000000 iterations) took longer than 1 s" \
        in lines[0], result.stderr


def test_openssl_missing_from_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "snaps"
    out.mkdir()
    with pytest.raises(SnapshotError, match="openssl was not found on PATH"):
        save_snapshot(out / "a.lns", world(), KEY, iterations=MIN_ITERATIONS)
    assert not list(out.iterdir())


@pytest.mark.parametrize("stage", ["save", "export"])
def test_a_hung_openssl_is_killed_within_the_timeout(tmp_path: Path, stage: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    marker = f"{300 + os.getpid() % 97}.{time.monotonic_ns() % 10**6}"
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    good = snaps / "good.lns"
    save_snapshot(good, world(), KEY, iterations=MIN_ITERATIONS)
    # The script's own child (sleep) holds the pipes too: it must die with it.
    bin_dir = stand_in(tmp_path, f"sleep {marker}\nexit 0")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    began = time.monotonic()
    out = tmp_path / "out.rle"
    with pytest.raises(SnapshotError, match="did not finish within 1 s"):
        if stage == "save":
            save_snapshot(snaps / "new.lns", world(), KEY, iterations=MIN_ITERATIONS,
                          timeout=1.0)
        else:
            result = CliRunner().invoke(
                main, ["snapshot", "export", str(good), "--rle", str(out), "--timeout", "1"],
                env={KEY_ENV: KEY.secret.decode()})
            assert result.exit_code == 1
            raise SnapshotError(result.output.strip())
    assert time.monotonic() - began < 5
    assert [p.name for p in snaps.iterdir()] == ["good.lns"]
    assert not out.exists()
    # SIGKILL is delivered when the killed process is next scheduled: on a busy machine
    # the stand-in's own child may take a moment to be gone.
    wait_for(lambda: not processes_mentioning(marker), 10, what="the stand-in's sleep to die")
    assert processes_mentioning(str(bin_dir)) == []


@pytest.mark.parametrize("body, message", [
    ("echo 'enc: bad decrypt' >&2\nexit 3", "failed with status 3: enc: bad decrypt"),
    ("cat >/dev/null\nexit 0", "gave 0 bytes"),  # a stage that exits 0 on empty output
])
def test_a_failing_openssl_is_a_clear_error(tmp_path: Path, body: str, message: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = stand_in(tmp_path, body)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    with pytest.raises(SnapshotError, match=message):
        save_snapshot(snaps / "a.lns", world(), KEY, iterations=MIN_ITERATIONS, timeout=10)
    assert not list(snaps.iterdir())


def test_the_key_is_on_no_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"k3y-{os.getpid()}-{time.monotonic_ns()}"
    key = SnapshotKey(secret.encode())
    monkeypatch.setenv(KEY_ENV, secret)  # children must not get it in their environment
    done = threading.Event()
    seen_openssl = 0
    leaks: list[bytes] = []

    def watch() -> None:
        nonlocal seen_openssl
        while not done.is_set():
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if secret.encode() in cmdline:
                    leaks.append(cmdline)
                if b"openssl" in cmdline and b"enc" in cmdline:
                    seen_openssl += 1

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        state = world(h=512, w=512)
        for i in range(3):
            save_snapshot(tmp_path / f"{i}.lns", state, key, iterations=MIN_ITERATIONS)
            verify_snapshot(tmp_path / f"{i}.lns", key)
        read_snapshot(tmp_path / "0.lns", key)
    finally:
        done.set()
        watcher.join()
    assert seen_openssl > 0, "the watcher never saw openssl running"
    assert leaks == []


def test_children_do_not_inherit_the_key_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sekrit")
    assert KEY_ENV not in snap.Children(1, "test")._env
