"""``Idle`` and ``DecisionRound.catch_up``: the generation waits, one decision window at
most, until the lobby has read what came before the last round closed."""

from __future__ import annotations

import threading
import time

import numpy as np

from server.players.board import Board
from server.players.decisions import DecisionRound
from server.players.lobby import Idle
from server.players.registry import PlayerRegistry, RegistryConfig
from shared.rules import CONWAY


def test_a_wait_ends_at_the_first_idle_moment_after_its_start_or_at_its_timeout() -> None:
    idle = Idle()
    idle.mark(time.monotonic())
    assert idle.wait_since(idle.at, 0.0)  # idle since then already: no wait
    woken: list[bool] = []
    idle.wake = lambda: woken.append(True)
    assert idle.wait_since(idle.at, 0.0) and not woken  # nothing to wake it for
    since = time.monotonic()
    began = time.monotonic()
    assert not idle.wait_since(since, 0.05)  # busy all along: the timeout
    assert woken == [True]  # its poll was woken to look again at once
    assert time.monotonic() - began >= 0.05
    marker = threading.Timer(0.05, lambda: idle.mark(time.monotonic()))
    marker.start()
    began = time.monotonic()
    assert idle.wait_since(since, 10.0)  # woken by the lobby's mark, not the timeout
    assert time.monotonic() - began < 5.0
    marker.join()


def test_catch_up_waits_for_the_lobby_after_a_round_closed_a_window_at_most() -> None:
    registry = PlayerRegistry(RegistryConfig())
    sent: list[object] = []
    decisions = DecisionRound(registry, CONWAY, 0.05, lambda identity, msg: sent.append(msg))
    assert decisions.catch_up()  # no lobby to wait for
    decisions.idle = idle = Idle()
    assert decisions.catch_up()  # no round closed yet
    board = Board.of(np.zeros((8, 8), dtype=np.uint8))
    decisions.ask(1, np.zeros((8, 8), dtype=np.uint8), board)
    decisions.collect(1)
    began = time.monotonic()
    assert not decisions.catch_up()  # the lobby never idle since: one window, no more
    assert 0.05 <= time.monotonic() - began < 5.0
    idle.mark(time.monotonic())
    began = time.monotonic()
    assert decisions.catch_up()
    assert time.monotonic() - began < 0.05
