"""CURVE key files: made as zmq.auth writes them, never overwritten, refused when too open."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import zmq.auth
from click.testing import CliRunner

from server.auth import check_exposure
from server.cli import main
from shared.errors import ConfigError, KeyFileError, NotAllowed
from shared.keys import (
    Credentials,
    KeyPair,
    init_keys,
    load_allow_list,
    load_public,
    load_secret,
    write_pair,
)
from shared.local import EmbeddedKeys, embedded_keys_dir
from shared.remote import credentials_for, host_and_port, is_loopback


def test_init_makes_the_layout_zmq_auth_reads(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    pairs = init_keys(keys)
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for role, pair in pairs.items():
        public, secret = zmq.auth.load_certificate(keys / f"{role}.key_secret")
        assert (public, secret) == (pair.public, pair.secret)
        assert zmq.auth.load_certificate(keys / f"{role}.key") == (pair.public, None)
        assert stat.S_IMODE((keys / f"{role}.key_secret").stat().st_mode) == 0o600
        assert load_secret(keys / f"{role}.key_secret") == pair
    assert load_allow_list(keys / "authorized" / "workers") == {pairs["worker"].public}
    assert load_allow_list(keys / "authorized" / "operators") == {pairs["operator"].public}
    assert len({p.public for p in pairs.values()}) == 3


def test_nothing_is_ever_overwritten(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    init_keys(keys)
    before = {p: p.read_bytes() for p in keys.rglob("*") if p.is_file()}
    with pytest.raises(KeyFileError, match="never overwrites"):
        init_keys(keys)
    with pytest.raises(KeyFileError, match="never overwrites"):
        write_pair(keys, "worker")
    (keys / "other.key_secret").symlink_to(keys / "server.key_secret")
    with pytest.raises(KeyFileError, match="never overwrites"):
        write_pair(keys, "other")
    assert {p: p.read_bytes() for p in keys.rglob("*") if p.is_file()
            and not p.is_symlink()} == before


def test_a_secret_readable_by_others_is_refused_as_ssh_does(tmp_path: Path) -> None:
    pair = write_pair(tmp_path, "w")
    secret = tmp_path / "w.key_secret"
    for mode in (0o640, 0o604, 0o644):
        os.chmod(secret, mode)
        with pytest.raises(KeyFileError, match="may be read by others"):
            load_secret(secret)
    os.chmod(secret, 0o400)
    assert load_secret(secret) == pair
    assert load_public(secret) == KeyPair(pair.public)  # the public half: no such rule


@pytest.mark.parametrize("text, why", [
    ("", "no public key"),
    ('curve\n    public-key = "short"\n', "no public key"),
    ('curve\n    public-key = "' + "~" * 40 + '"\n', "no public key"),  # not Z85
])
def test_malformed_key_files_are_refused(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(text)
    with pytest.raises(KeyFileError, match=why):
        load_public(path)


def test_a_secret_that_is_not_its_public_halfs_is_refused(tmp_path: Path) -> None:
    a, b = write_pair(tmp_path, "a"), KeyPair.generate()
    path = tmp_path / "a.key_secret"
    os.chmod(path, 0o600)
    assert a.secret is not None and b.secret is not None
    path.write_text(path.read_text().replace(a.secret.decode(), b.secret.decode()))
    with pytest.raises(KeyFileError, match="not its secret key's"):
        load_secret(path)


def test_not_a_regular_file_and_too_large_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_public(tmp_path)
    big = tmp_path / "big.key"
    big.write_bytes(b"#" * 5000)
    with pytest.raises(KeyFileError, match="too large"):
        load_public(big)
    with pytest.raises(KeyFileError, match="no key file"):
        load_public(tmp_path / "missing.key")


def test_the_cli_makes_keys_and_adds_one_to_an_allow_list(tmp_path: Path) -> None:
    runner = CliRunner()
    keys = tmp_path / "k"
    result = runner.invoke(main, ["keys", "init", str(keys)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(main, ["keys", "init", str(keys)]).exit_code == 1
    result = runner.invoke(main, ["keys", "new", "w2", "--dir", str(keys),
                                  "--authorize", "workers"])
    assert result.exit_code == 0, result.output
    w2 = load_secret(keys / "w2.key_secret")
    assert w2.public in load_allow_list(keys / "authorized" / "workers")
    result = runner.invoke(main, ["keys", "new", "w2", "--dir", str(keys)])
    assert result.exit_code == 1 and "never overwrites" in result.output
    result = runner.invoke(main, ["keys", "new", "../escape", "--dir", str(keys)])
    assert result.exit_code == 1 and "key name" in result.output
    assert "secret" not in result.output.lower() or "key_secret" in result.output


def test_credentials_from_options_and_from_a_local_up(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "k"
    pairs = init_keys(keys)
    worker = Credentials.in_dir(keys, "worker")
    assert worker.server == pairs["server"].public and worker.own == pairs["worker"]
    throwaway = credentials_for("tcp://10.1.2.3:5556", keys / "server.key")
    assert throwaway is not None and throwaway.own.public not in {
        p.public for p in pairs.values()}
    with pytest.raises(KeyFileError, match="needs --server-key"):
        credentials_for("tcp://127.0.0.1:5556", None, keys / "worker.key_secret")
    # A local `lifenet up`: found by port while it holds its lock, never on another host.
    monkeypatch.setenv("LIFENET_STATE_DIR", str(tmp_path / "state"))
    assert credentials_for("tcp://127.0.0.1:7001") is None
    claim = EmbeddedKeys.claim(7001)
    local_server = load_public(claim.directory / "server.key")
    found = credentials_for("tcp://127.0.0.1:7001")
    assert found is not None and found.server == local_server.public
    operator = credentials_for("tcp://localhost:7001", role="operator")
    assert operator is not None
    assert operator.own == load_secret(claim.directory / "operator.key_secret")
    assert credentials_for("tcp://192.0.2.1:7001") is None
    with pytest.raises(ConfigError, match="another lifenet up"):
        EmbeddedKeys.claim(7001)
    claim.release()
    assert not claim.directory.exists() and credentials_for("tcp://127.0.0.1:7001") is None
    # Left behind by an up that was killed (no lock held): never trusted, and replaced.
    stale = embedded_keys_dir(7001)
    stale_key = init_keys(stale)["server"].public
    assert credentials_for("tcp://127.0.0.1:7001") is None
    again = EmbeddedKeys.claim(7001)
    fresh = credentials_for("tcp://127.0.0.1:7001")
    assert fresh is not None and fresh.server != stale_key
    again.release()
    # A state directory others may write in is not trusted.
    base = tmp_path / "state" / "up"
    held = EmbeddedKeys.claim(7002)
    os.chmod(base, 0o777)
    try:
        assert credentials_for("tcp://127.0.0.1:7002") is None
    finally:
        os.chmod(base, 0o700)
        held.release()


def test_hosts_and_exposure() -> None:
    assert host_and_port("tcp://[::1]:5556") == ("::1", 5556)
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "*", "10.0.0.1", "example.org"))
    check_exposure("127.0.0.1", None, False)
    check_exposure("0.0.0.0", Path("k"), False)
    check_exposure("0.0.0.0", None, True)
    with pytest.raises(ConfigError, match="without --keys"):
        check_exposure("0.0.0.0", None, False)


def test_a_key_pairs_repr_hides_the_secret() -> None:
    pair = KeyPair.generate()
    assert pair.secret is not None and pair.secret.decode() not in repr(pair)


def test_modes_are_exact_whatever_the_umask_and_an_existing_dir_is_made_private(
        tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o777)
    os.chmod(keys, 0o777)
    old = os.umask(0o077)
    try:
        init_keys(keys)
    finally:
        os.umask(old)
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys / "server.key").stat().st_mode) == 0o644
    assert stat.S_IMODE((keys / "server.key_secret").stat().st_mode) == 0o600
    for listed in ("authorized", "authorized/workers", "authorized/operators"):
        assert stat.S_IMODE((keys / listed).stat().st_mode) == 0o755, listed
    assert stat.S_IMODE((keys / "authorized/workers/worker.key").stat().st_mode) == 0o644


def test_keys_new_refuses_before_writing_anything(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    init_keys(keys)
    (keys / "authorized" / "workers" / "w3.key").write_text("in the way\n")
    result = CliRunner().invoke(main, ["keys", "new", "w3", "--dir", str(keys),
                                       "--authorize", "workers"])
    assert result.exit_code == 1 and "never overwrites" in result.output
    assert not (keys / "w3.key_secret").exists() and not (keys / "w3.key").exists()


def test_a_fifo_swapped_in_for_a_key_file_is_refused_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "server.key"
    os.mkfifo(fifo)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_public(fifo)  # would block for ever if it were opened for a blocking read


def test_an_allow_list_skips_a_broken_file_and_fails_closed(tmp_path: Path) -> None:
    from server.auth import AllowList

    keys = tmp_path / "keys"
    pairs = init_keys(keys)
    workers = keys / "authorized" / "workers"
    listed = AllowList(workers)
    assert pairs["worker"].public in listed
    (workers / "broken.key").write_text('curve\n    public-key = "' + "#" * 40 + '"\n')
    new = write_pair(tmp_path, "new")
    (workers / "new.key").write_text((tmp_path / "new.key").read_text())
    listed.reload()
    assert new.public in listed and pairs["worker"].public in listed  # the rest still read
    (workers / "worker.key").unlink()
    listed.reload()
    assert pairs["worker"].public not in listed  # removed although a file is broken
    for path in workers.iterdir():
        path.unlink()
    workers.rmdir()
    listed.reload()
    assert new.public not in listed  # the list is gone: it admits no one


def test_a_restored_session_stays_bound_to_its_key() -> None:
    from server.players.registry import PlayerRegistry

    before = PlayerRegistry()
    alice, _ = before.join(b"a", "alice", None, key=b"K" * 40)
    after = PlayerRegistry()
    after.restore(before.export())
    with pytest.raises(NotAllowed, match="another key"):
        after.join(b"m", "mallory", alice.token, key=b"M" * 40)
    again, rejoined = after.join(b"a2", "alice", alice.token, key=b"K" * 40)
    assert rejoined and again.id == alice.id
