"""The ``lifenet`` group imports a command only when it is used: ``--version`` and
``--help`` stay light, and the group still lists, documents and configures every
command as if all were loaded."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from server.cli import COMMANDS, load, main
from tests.conftest import ROOT

HEAVY = ("numpy", "zmq", "textual", "aiohttp")


@pytest.mark.parametrize("args", [["--version"], ["--help"], []])
def test_version_and_help_import_nothing_heavy(args: list[str]) -> None:
    code = ("import sys\n"
            "from server.cli import main\n"
            "try:\n"
            f"    main({args!r})\n"
            "except SystemExit:\n"
            "    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]", result.stdout


def test_help_lists_every_command_with_its_own_short_help() -> None:
    assert set(COMMANDS) == {"bench", "bot", "client", "keys", "loadtest", "replay",
                             "server", "snapshot", "status", "up", "web", "worker"}
    for name, text in COMMANDS.items():
        command = load(name)
        for limit in (30, 45, 60, 200):  # the lazy stand-in is shortened as the real one
            assert click.Command(name, help=text).get_short_help_str(limit) == \
                command.get_short_help_str(limit), name
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    listed = result.output.split("Commands:")[1].splitlines()
    assert sorted(line.split()[0] for line in listed if line.strip()) == sorted(COMMANDS)
    assert "  status    Ask a running server for its status, once." in result.output


def test_an_unknown_command_is_refused() -> None:
    result = CliRunner().invoke(main, ["nope"])
    assert result.exit_code == 2 and "No such command 'nope'" in result.output
    with pytest.raises(KeyError):
        load("nope")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_reads_its_options_from_the_environment(name: str) -> None:
    """``auto_envvar_prefix="LIFENET"``: ``lifenet NAME --opt`` from
    ``LIFENET_NAME_OPT``, loaded lazily or not (compose files rely on it)."""
    parent = main.make_context("lifenet", [name], resilient_parsing=True)
    command = main.get_command(parent, name)
    assert command is not None
    child = command.make_context(name, [], parent=parent, resilient_parsing=True)
    assert child.auto_envvar_prefix == f"LIFENET_{name.upper()}"


def test_the_environment_reaches_a_lazy_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFENET_WORKER_CONNECT", "tcp://server:5555")
    parent = main.make_context("lifenet", ["worker"], resilient_parsing=True)
    worker = main.get_command(parent, "worker")
    assert worker is not None
    assert worker.make_context("worker", [], parent=parent).params["connect"] == \
        "tcp://server:5555"
    monkeypatch.setenv("LIFENET_STATUS_CONNECT", "127.0.0.1:abc")
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2
    assert "Invalid value for '--connect': '127.0.0.1:abc': the port 'abc' is not a " \
           "number" in result.output
