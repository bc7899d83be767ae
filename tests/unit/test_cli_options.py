"""What a player types is checked before anything starts, in one line: ``--connect``
(every player command) and ``--name`` (``client``, ``bot``)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from client.commands import check_name
from server.cli import main


def errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error")]


@pytest.mark.parametrize("command", ["status", "bot", "client"])
@pytest.mark.parametrize("connect, says", [
    ("127.0.0.1:abc", "the port 'abc' is not a number"),
    ("http://127.0.0.1:6556", "tcp:// only, not http://"),
    ("127.0.0.1:99999", "the port 99999 is outside 1..65535"),
    (":5556", "names no host"),
])
def test_a_bad_connect_is_one_line_before_anything_starts(command: str, connect: str,
                                                          says: str) -> None:
    result = CliRunner().invoke(main, [command, "--connect", connect])
    assert result.exit_code == 2
    assert len(errors(result.output)) == 1, result.output
    assert "Invalid value for '--connect'" in errors(result.output)[0]
    assert says in errors(result.output)[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("name, says", [
    ("", "cannot be empty"),
    ("   ", "cannot be empty"),
    ("tab\there", "not printable"),
    ("x" * 33, "has 33 characters, outside 1..32"),
])
def test_a_bad_client_name_is_one_line(name: str, says: str) -> None:
    result = CliRunner().invoke(main, ["client", "--name", name])
    assert result.exit_code == 2
    assert len(errors(result.output)) == 1 and says in errors(result.output)[0], \
        result.output


def test_names_the_server_takes() -> None:
    assert check_name("alice") is None
    assert check_name("x" * 32) is None
    assert check_name("Zoë 🦋") is None
    assert check_name("x" * 33) is not None


def test_a_bot_name_must_leave_room_for_the_bots_numbers() -> None:
    result = CliRunner().invoke(main, ["bot", "--name", "b" * 29, "--count", "200"])
    assert result.exit_code == 2
    line = errors(result.output)[0]
    assert "Invalid value for '--name'" in line and "has 33 characters, outside 1..32" in line
    assert "bots are NAME-1 to NAME-200" in line
    assert check_name("b" * 28 + "-200") is None  # what a 28-character prefix makes
