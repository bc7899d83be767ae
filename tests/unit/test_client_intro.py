"""The client's first-run screen shows on a user's first ``lifenet client`` only."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.commands import first_run


def test_the_first_run_is_the_first_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFENET_STATE_DIR", str(tmp_path / "state"))
    assert first_run() is True
    assert (tmp_path / "state" / "client-intro-seen").exists()
    assert first_run() is False


def test_a_state_directory_that_cannot_be_written_shows_the_intro(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("LIFENET_STATE_DIR", str(blocked / "state"))
    assert first_run() is True and first_run() is True
