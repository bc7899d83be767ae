"""``lifenet status`` in words, from a report (no server: the request is replaced)."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

import client.commands
from client.commands import status_lines
from server.cli import main

REPORT: dict[str, Any] = {
    "generation": 1234, "size": [64, 160], "rule": "B3/S23", "population": 800,
    "workers": 2, "players": 2, "ms_per_generation": 3.25, "tick": 0.1,
    "scores": {"ada": 120, "bob": 300, "cy": 0}, "running": True, "away": ["cy"],
}


def test_without_rounds_the_players_by_live_cells() -> None:
    assert status_lines(REPORT) == [
        "generation 1234  world 64x160 B3/S23  population 800",
        "workers 2  players 2  3.2 ms per generation  tick 0.1 s",
        "     cells  player",
        "       300  bob",
        "       120  ada",
        "         0  cy  (away)",
    ]


def test_with_rounds_the_round_and_the_players_by_points() -> None:
    game = {"number": 3, "length": 600, "ends_at": 1800, "points": {"ada": 900, "bob": 450},
            "last": [{"round": 2, "winner": "bob", "player": 2, "points": 700,
                      "ended_at": 1200}]}
    lines = status_lines({**REPORT, "round": game})
    assert lines[2:] == [
        "round 3 of 600 generations, ends at generation 1800; round 2 won by bob "
        "(700 points)",
        "     cells    points  player",
        "       120       900  ada",
        "       300       450  bob",
        "         0         0  cy  (away)",
    ]
    nobody = {**game, "last": [{"round": 2, "winner": None, "player": None, "points": 0,
                                "ended_at": 1200}]}
    assert status_lines({**REPORT, "round": nobody})[2].endswith("; nobody won round 2")


def test_the_command_prints_them(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, float]] = []

    def fake_status(endpoint: str, timeout: float, credentials: object) -> dict[str, Any]:
        asked.append((endpoint, timeout))
        return REPORT

    monkeypatch.setattr(client.commands, "get_status", fake_status)
    result = CliRunner().invoke(main, ["status", "--connect", "game.example.org:7000",
                                       "--timeout", "2"])
    assert result.exit_code == 0, result.output
    assert asked == [("tcp://game.example.org:7000", 2.0)]
    assert result.output.splitlines() == status_lines(REPORT)
