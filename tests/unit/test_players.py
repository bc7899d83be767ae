"""The game's rules without sockets: sessions, energy, placements, decisions."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from server.players import registry as registry_module
from server.players.board import Board, Ranking
from server.players.decisions import neighbour_counts
from server.players.placing import placement_cells
from server.players.registry import Landed, PlayerRegistry, RegistryConfig, Request
from shared.errors import NotAllowed, ProtocolError
from shared.grid import Codes, Grid, LockingGrid, player_code

GLIDER = "x = 3, y = 3\nbo$2bo$3o!"


def registry(**kw: float) -> PlayerRegistry:
    return PlayerRegistry(RegistryConfig(**kw))  # type: ignore[arg-type]


def land(reg: PlayerRegistry, codes: Codes, generation: int) -> list[Landed]:
    """The placements of ``generation`` written into ``codes`` as a generation does."""
    target = LockingGrid(codes.shape[0], codes.shape[1], codes)
    return [reg.refund(pl, target.fill_empty(pl.ys, pl.xs, pl.code))
            for pl in reg.take_placements(generation)]


def test_join_rejoin_and_tokens() -> None:
    reg = registry()
    alice, rejoined = reg.join(b"a", "alice", None)
    assert (alice.id, alice.code, rejoined) == (1, 2, False)
    bob, _ = reg.join(b"b", "alice", None)
    assert bob.name == "alice#2" and bob.id == 2
    again, rejoined = reg.join(b"a2", "whatever", alice.token)
    assert again is alice and rejoined and alice.identity == b"a2"
    with pytest.raises(NotAllowed):
        reg.join(b"m", "mallory", "0" * 32)
    with pytest.raises(NotAllowed):
        reg.auth(alice.id, bob.token, b"b")
    assert reg.auth(alice.id, alice.token, b"a3") is alice


def test_silence_disconnects_then_grace_frees_the_id() -> None:
    reg = registry(heartbeat=1.0, grace=10.0)
    p, _ = reg.join(b"a", "p", None)
    assert reg.expire(p.last_seen + 2.9) == []
    assert p.connected
    assert reg.expire(p.last_seen + 3.5) == []
    assert not p.connected and reg.connected() == []
    assert reg.expire(p.last_seen + 3.5 + 10.5) == [p.id] and p.id not in reg.players


def test_a_pattern_wider_than_the_world_is_placed_and_paid_once_per_square() -> None:
    reg = registry(energy_cap=10, energy_regen=0)
    p, _ = reg.join(b"a", "p", None)
    line = placement_cells(None, [[0, 0], [1, 0], [2, 0]], 0, 2, 0, False, 1, 10)
    assert reg.place(p, line) == (1, 1) and p.energy == 9  # one square, 1x10
    codes = np.zeros((1, 10), dtype=np.uint8)
    [landed] = land(reg, codes, 1)
    assert (landed.cells, landed.placed, landed.occupied) == (1, 1, 0)
    assert codes.tolist() == [[0, 0, p.code, 0, 0, 0, 0, 0, 0, 0]]


def test_energy_placements_and_refunds() -> None:
    reg = registry(energy_cap=10, energy_regen=3)
    p, _ = reg.join(b"a", "p", None)
    with pytest.raises(NotAllowed, match="needs 11 energy"):
        reg.place(p, np.array([[0, i] for i in range(11)], dtype=np.int64))
    cells = placement_cells(GLIDER, None, 7, 7, 0, False, 8, 8)
    assert reg.place(p, cells) == (5, 1) and p.energy == 5
    codes = np.zeros((8, 8), dtype=np.uint8)
    codes[7, 0] = 1  # one of the glider's wrapped cells is occupied
    [landed] = land(reg, codes, 1)
    assert (landed.player, landed.cells, landed.placed, landed.occupied) == (p.id, 5, 4, 1)
    assert landed.energy == p.energy == 6  # 5 left + 1 refunded
    assert reg.place(p, cells[:1]) == (1, 2)  # queued now: lands in generation 2
    assert p.energy == 5  # 5 left + 1 refunded - 1 reserved for the next one
    assert int(np.count_nonzero(codes == p.code)) == 4
    reg.regenerate()
    assert p.energy == 8
    reg.regenerate()
    assert p.energy == 10


def test_decisions_are_checked_against_verdict_owner_and_energy() -> None:
    reg = registry(energy_cap=1)
    p, _ = reg.join(b"a", "p", None)
    request = Request(np.array([0, 1, 2]), np.array([0, 0, 0]), np.array([False, True, False]))
    reg.open_requests(5, {p.id: request})
    with pytest.raises(NotAllowed, match="generation 4"):
        reg.post_decision(p, 4, [0], [])
    reg.post_decision(p, 5, [0, 0, 1, 2, 99], [1, 0])
    with pytest.raises(NotAllowed, match="already"):
        reg.post_decision(p, 5, [], [])
    codes = np.zeros((3, 1), dtype=np.uint8)
    codes[1, 0] = p.code  # the survivor, as the workers computed it
    writes, results = reg.close_decisions()
    target = LockingGrid(3, 1, codes)
    for write in writes:
        target.write(write.ys, write.xs, write.code)
    result = results[p.id]
    # keep 0: kept (1 energy); keep 1: alive anyway; keep 2: no energy left; 99: no cell;
    # let_die 1: dies; let_die 0: the rule kills it anyway... but it was kept: refused.
    assert (result.kept, result.died, result.refused) == (1, 1, 4)
    assert codes[:, 0].tolist() == [p.code, 0, 0]
    assert p.energy == result.energy == 0


def test_only_an_answer_in_time_makes_a_silent_player_waited_for_again() -> None:
    reg = registry()
    p, _ = reg.join(b"a", "p", None)
    request = Request(np.array([0]), np.array([0]), np.array([True]))
    for gen in (1, 2, 3):
        reg.open_requests(gen, {p.id: request}, deadline=time.monotonic() + 60)
        reg.close_decisions()
    assert p.missed == 3 and reg.awaited() == set()
    reg.open_requests(4, {p.id: request}, deadline=time.monotonic() + 60)
    for stale in (1, 2, 5):  # a round long closed, or one not open: no sign of life
        with pytest.raises(NotAllowed):
            reg.post_decision(p, stale, [], [])
        assert p.missed == 3
    reg.close_decisions()  # closed early, before its window ran out
    with pytest.raises(NotAllowed, match="late"):
        reg.post_decision(p, 4, [], [])  # before its deadline: counts
    assert p.missed == 0
    p.missed = 3
    reg.open_requests(5, {p.id: request}, deadline=time.monotonic() - 1)
    reg.close_decisions()
    with pytest.raises(NotAllowed):
        reg.post_decision(p, 5, [], [])  # after its deadline: does not
    assert p.missed == 4
    reg.open_requests(6, {p.id: request}, deadline=time.monotonic() + 60)
    reg.post_decision(p, 6, [], [])  # in time
    assert p.missed == 0


def test_a_player_with_three_answers_unread_is_not_asked_until_one_is_read() -> None:
    """What the lobby has still to read is bounded by the players: a player is asked
    at most ``MAX_UNREAD`` times with no answer read; an answer read (late or not, to
    any of them) frees the requests up to its generation; after ``UNREAD_EXPIRY`` they
    are forgotten (lost on the way); a round dropped before it left counts for none."""
    clock = [100.0]
    reg = registry()
    reg.clock = lambda: clock[0]
    p, _ = reg.join(b"a", "p", None)
    q, _ = reg.join(b"b", "q", None)
    request = Request(np.array([0]), np.array([0]), np.array([True]))
    for gen in (1, 2, 3):
        assert {pl.id for pl in reg.askable(reg.connected())} == {p.id, q.id}
        reg.open_requests(gen, {p.id: request, q.id: request}, deadline=clock[0] + 1)
        if gen != 2:
            reg.post_decision(q, gen, [], [])  # q answers rounds 1 and 3 in time
        reg.close_decisions()
    assert p.unread == [1, 2, 3] and q.unread == []  # 3 read: 2 is done with it
    assert [pl.id for pl in reg.askable(reg.connected())] == [q.id] and reg.held_total == 1
    with pytest.raises(NotAllowed, match="late"):
        reg.post_decision(p, 2, [], [])  # read, though late: 1 and 2 are done
    assert p.unread == [3] and {pl.id for pl in reg.askable(reg.connected())} == {p.id, q.id}
    reg.open_requests(4, {p.id: request}, deadline=clock[0] + 1)
    reg.open_requests(5, {p.id: request}, deadline=clock[0] + 1)
    assert [pl.id for pl in reg.askable(reg.connected())] == [q.id]
    clock[0] += registry_module.UNREAD_EXPIRY + 0.1
    read = [clock[0] - registry_module.UNREAD_EXPIRY - 0.2]  # a lobby still behind
    reg.read_at = lambda: read[0]
    assert [pl.id for pl in reg.askable(reg.connected())] == [q.id]  # may hold them yet
    clock[0] += registry_module.UNREAD_GIVE_UP  # never idle since: given up all the same
    assert {pl.id for pl in reg.askable(reg.connected())} == {p.id, q.id} and p.unread == []
    reg.open_requests(5, {p.id: request}, deadline=clock[0] + 1)
    reg.open_requests(6, {p.id: request}, deadline=clock[0] + 1)
    reg.open_requests(7, {p.id: request}, deadline=clock[0] + 1)
    clock[0] += registry_module.UNREAD_EXPIRY + 0.1
    read[0] = clock[0]  # it has read all that came: lost on the way, forgotten
    assert {pl.id for pl in reg.askable(reg.connected())} == {p.id, q.id} and p.unread == []
    reg.open_requests(8, {p.id: request}, deadline=clock[0] + 1)
    reg.unsent(8)  # dropped before it left
    assert p.unread == [] and reg.request_gen == 8


def test_an_evicted_or_expired_players_queue_is_not_inherited() -> None:
    reg = registry(heartbeat=1.0, grace=1.0, energy_cap=10)
    first, _ = reg.join(b"a", "first", None)
    reg.place(first, np.array([[0, 0]], dtype=np.int64))
    reg.open_requests(1, {first.id: Request(np.array([0]), np.array([0]),
                                            np.array([True]))})
    reg.expire(first.last_seen + 10)  # silent: disconnected...
    assert reg.expire(first.last_seen + 20) == [first.id]  # ...and past its grace
    second, _ = reg.join(b"b", "second", None)
    assert second.id == first.id  # the id is given again...
    assert reg.take_placements(1) == []  # ...but not the placement
    with pytest.raises(NotAllowed):
        reg.post_decision(second, 1, [0], [])  # nor the request
    evicting = registry(per_address=1000, joins_per_second=1e9, max_players=254)
    for i in range(1, 255):
        evicting.join(bytes([i]), f"p{i}", None, address="h")
    idle = evicting.players[1]
    idle.last_seen -= 100
    evicting.place(idle, np.array([[0, 0]], dtype=np.int64))
    newcomer, _ = evicting.join(b"new", "new", None, address="h")
    assert newcomer.id == 1 and evicting.evicted == 1
    assert evicting.take_placements(1) == []


@pytest.mark.parametrize("rotate, flip, expected", [
    (0, False, {(0, 1), (1, 2), (2, 0), (2, 1), (2, 2)}),
    (1, False, {(1, 2), (2, 1), (0, 0), (1, 0), (2, 0)}),
    (0, True, {(0, 1), (1, 0), (2, 2), (2, 1), (2, 0)}),
    (2, False, {(2, 1), (1, 0), (0, 2), (0, 1), (0, 0)}),
])
def test_rotate_and_flip(rotate: int, flip: bool, expected: set[tuple[int, int]]) -> None:
    cells = placement_cells(GLIDER, None, 0, 0, rotate, flip, 16, 16)
    assert {(int(y), int(x)) for y, x in cells} == expected


def test_cells_lists_and_refusals() -> None:
    cells = placement_cells(None, [[0, 0], [1, 1]], 5, 6, 0, False, 16, 16)
    assert {(int(y), int(x)) for y, x in cells} == {(5, 6), (6, 7)}
    for rle, listed in [(None, None), (GLIDER, [[0, 0]]), ("x = 1, y = 1\nb!", None),
                        ("x = 300, y = 1\n300o!", None), ("x = 2, y = 2\nzz!", None)]:
        with pytest.raises(ProtocolError):
            placement_cells(rle, listed, 0, 0, 0, False, 16, 16)


def test_neighbour_counts_wrap() -> None:
    grid = Grid(4, 5)
    grid.codes[0, 0] = 3
    counts = neighbour_counts(grid.codes)
    assert counts[3, 4] == 1 and counts[1, 1] == 1 and counts[0, 0] == 0
    assert int(counts.sum()) == 8


def test_players_survive_a_snapshot_round_trip_as_disconnected() -> None:
    reg = registry(grace=5.0)
    alice, _ = reg.join(b"a", "alice", None)
    alice.energy = 17
    restored = registry(grace=5.0)
    restored.restore([*reg.export(), {"id": "bad"}])
    again, rejoined = restored.join(b"new", "alice", alice.token)
    assert rejoined and (again.id, again.name, again.energy) == (1, "alice", 17)
    assert again.connected


def test_keep_alives_and_the_regeneration_are_one_step() -> None:
    """Closing a round with ``regenerate`` pays the keep-alives and regains the
    generation's energy under one lock: what ``energies`` (and so DECIDED, PONG and a
    refused PLACE) says next is the energy after both."""
    reg = registry(energy_cap=10, energy_regen=3)
    p, _ = reg.join(b"a", "p", None)
    p.energy = 5
    reg.open_requests(1, {p.id: Request(np.array([0, 1]), np.array([0, 0]),
                                        np.array([False, False]))})
    reg.post_decision(p, 1, [0, 1], [])
    _, results = reg.close_decisions(regenerate=True)
    assert (results[p.id].kept, results[p.id].energy) == (2, 3)  # after paying
    assert reg.energies() == {p.id: 6} == {p.id: reg.energy_of(p.id)}  # 5 - 2 + 3


def test_the_ranking_orders_by_points_then_cells_then_id() -> None:
    codes = np.zeros((4, 8), dtype=np.uint8)
    codes[0, :3] = player_code(1)   # player 1: 3 cells
    codes[1, :5] = player_code(2)   # player 2: 5 cells
    codes[2, :5] = player_code(3)   # player 3: 5 cells
    board = Board.of(codes)
    names = {1: "ann", 2: "ben", 3: "cy", 4: "dee"}
    ranking = Ranking.of(board, names, {1: 10})
    assert [row[0] for row in ranking.rows] == [1, 2, 3, 4]  # points first, then cells
    assert ranking.owning == 3
    assert ranking.standing(3) == {"rank": 3, "ranked": 4, "cells": 5, "points": 0}
    assert ranking.standing(9) == {}
    assert ranking.top(2) == ((1, "ann", 3, 10), (2, "ben", 5, 0))
    plain = Ranking.of(board, names, {})
    assert [row[0] for row in plain.rows] == [2, 3, 1, 4]


def test_news_rides_on_the_next_request_while_the_server_runs_behind() -> None:
    """``fold``: what a player's answers got (DECIDED) and how its placements landed
    (LANDED) wait for its next GAME_LOGIC, in which the client finds them again, in
    order, before the request; a player not asked next gets its news alone, first;
    without ``fold`` the news leaves at once, as it did."""
    from server.players.decisions import Decided, DecisionRound
    from server.players.registry import DecisionResult
    from shared import protocol
    from shared.protocol import Kind, Message
    from shared.rules import CONWAY

    reg = registry()
    alice, _ = reg.join(b"a", "alice", None)
    bob, _ = reg.join(b"b", "bob", None)
    sent: list[tuple[bytes, Message]] = []
    decisions = DecisionRound(reg, CONWAY, 0.0, lambda who, msg: sent.append((who, msg)))
    decisions.fold = True
    codes = np.zeros((16, 16), np.uint8)
    codes[2, 2:5] = alice.code  # a blinker of alice's; bob owns nothing
    decisions.ask(1, codes, Board.of(codes))
    decisions.registry.close_decisions(regenerate=True)
    decided = Decided(results={alice.id: DecisionResult(kept=1, energy=9),
                               bob.id: DecisionResult(died=2, energy=7)})
    decisions._asked[bob.id] = bob.identity  # as if bob had been asked too
    landed = [Landed(alice.id, b"a", 5, 4, 9)] * 3
    sent.clear()
    decisions.tell(1, decided, landed)
    assert sent == []  # nothing alone: it waits for the next request
    decisions.ask(2, codes, Board.of(codes))
    [(who_b, alone), (who_a, request)] = sent
    assert (who_b, alone.kind, alone["died"]) == (b"b", Kind.DECIDED, 2)
    assert who_a == b"a" and request.kind is Kind.GAME_LOGIC
    wire = protocol.decode(protocol.encode(request))
    unfolded = protocol.unfold(wire)
    assert [m.kind for m in unfolded] == [Kind.DECIDED, Kind.LANDED, Kind.LANDED,
                                          Kind.LANDED, Kind.GAME_LOGIC]
    assert unfolded[0]["kept"] == 1 and unfolded[1]["occupied"] == 1
    assert unfolded[-1].body == {"gen": 2, "count": 3, "deadline_ms": 0.0}
    assert unfolded[-1].payloads == wire.payloads
    # More landings than a request carries: all alone, in order, before the request.
    decisions.registry.close_decisions(regenerate=True)
    sent.clear()
    decisions.tell(2, Decided(), [Landed(alice.id, b"a", 5, 5, 9)] * (protocol.MAX_NEWS + 1))
    decisions.ask(3, codes, Board.of(codes))
    assert [m.kind for _, m in sent] == [Kind.LANDED] * (protocol.MAX_NEWS + 1) + [
        Kind.GAME_LOGIC]
    assert "landed" not in sent[-1][1].body
    # Not behind: the news goes at once; flush sends whatever waits.
    decisions.registry.close_decisions(regenerate=True)
    sent.clear()
    decisions.fold = False
    decisions.tell(3, decided, landed[:1])
    assert [(who, m.kind) for who, m in sent] == [
        (b"a", Kind.DECIDED), (b"a", Kind.LANDED)]
    sent.clear()
    decisions.fold = True
    decisions.tell(3, decided, [])  # bob was not asked about generation 3: no news
    assert sent == []
    decisions.flush()
    assert [(who, m.kind) for who, m in sent] == [(b"a", Kind.DECIDED)]


def test_the_lobby_outbox_holds_at_most_its_limit_of_messages() -> None:
    """What other threads hand the lobby to send is bounded in messages, not in hand-
    overs: a batch that would pass ``OUTBOX_LIMIT`` is dropped whole and counted, and
    what the lobby takes out makes room again."""
    import zmq

    from server.players.lobby import OUTBOX_LIMIT, PlayerEndpoint, WorldInfo
    from shared import protocol
    from shared.protocol import Kind

    context = zmq.Context()
    try:
        lobby = PlayerEndpoint(context, "tcp://127.0.0.1:0", lambda full: {}, registry(),
                               WorldInfo(8, 8, "B3/S23", 0), lambda: 0)
        pong = protocol.message(Kind.PONG, generation=1, energy=2)
        lobby.send_all([(b"p", pong)] * (OUTBOX_LIMIT - 1))
        lobby.send_all([(b"p", pong)] * 2)  # one too many: dropped whole
        assert lobby.dropped == 2
        lobby.send(b"p", pong)              # the last place
        lobby.send(b"p", pong)
        assert lobby.dropped == 3
        sent: list[bytes] = []

        class Sink:
            def send(self, identity: bytes, frames: list[bytes]) -> int:
                sent.append(identity)
                return 0

        lobby._send_outbox(Sink())  # type: ignore[arg-type]
        assert len(sent) == OUTBOX_LIMIT and lobby._queued == 0
        lobby.send_all([(b"p", pong)] * OUTBOX_LIMIT)
        assert lobby.dropped == 3
    finally:
        context.term()


def test_the_round_ends_when_the_last_awaited_player_answers_or_is_gone() -> None:
    """``wait_decisions`` returns once every awaited player answered (kept as a set
    of those still waited for, not a scan at each answer); a player forgotten meanwhile
    is waited for no more; the one silent player keeps it waiting to the deadline."""
    import threading

    reg = registry(per_address=5000, max_players=5000)
    players = [reg.join(b"p%d" % i, f"p{i}", None)[0] for i in range(1000)]
    request = Request(np.array([0]), np.array([0]), np.array([True]))
    reg.open_requests(1, {p.id: request for p in players},
                      deadline=time.monotonic() + 60)
    assert len(reg.waiting) == 1000
    returned: list[float] = []

    def wait() -> None:
        reg.wait_decisions(time.monotonic() + 60)
        returned.append(time.monotonic())

    waiter = threading.Thread(target=wait)
    waiter.start()
    for p in players[:-1]:
        reg.post_decision(p, 1, [], [])
    assert not returned and reg.waiting == {players[-1].id}
    with reg.lock:
        reg._forget(players[-1].id)  # evicted or expired mid-round
    waiter.join(5)
    assert returned and not reg.waiting
    reg.close_decisions()
    reg.open_requests(2, {p.id: request for p in players[:2]},
                      deadline=time.monotonic() + 0.2)
    reg.post_decision(players[0], 2, [], [])
    began = time.monotonic()
    reg.wait_decisions(time.monotonic() + 0.2)  # players[1] stays silent
    assert time.monotonic() - began >= 0.15


def test_a_players_window_counts_from_when_its_request_left() -> None:
    """The round opens with the latest deadline it may have; ``sent`` (the lobby, once
    the requests have left) brings it to a window from then, never later than it
    opened with, and only for the round it names: the waiter wakes to the new deadline
    at once, not at the one it started waiting for."""
    import threading

    reg = registry()
    alice, _ = reg.join(b"a", "alice", None)
    request = Request(np.array([0]), np.array([0]), np.array([True]))
    reg.open_requests(3, {alice.id: request}, deadline=time.monotonic() + 60)
    reg.sent(2, 0.01)  # another round's: nothing moves
    assert reg._deadline > time.monotonic() + 50
    done = threading.Event()

    def wait() -> None:
        reg.wait_decisions()
        done.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert not done.wait(0.05)  # alice is silent: it waits for the opening deadline
    began = time.monotonic()
    reg.sent(3, 0.05)
    assert done.wait(30), "the waiter slept on to the deadline the round opened with"
    assert time.monotonic() - began >= 0.04
    waiter.join(5)
    reg.close_decisions()
    reg.open_requests(4, {alice.id: request}, deadline=time.monotonic() + 0.05)
    reg.sent(4, 60)  # a slow hand-over never keeps the round open past its deadline
    assert reg._deadline <= time.monotonic() + 0.05


def test_asking_starts_the_window_when_the_requests_have_left() -> None:
    """``DecisionRound.ask`` opens the round with ``HANDOVER_WINDOWS`` windows at the
    most and hands its requests over with a callback: the window starts when the
    callback runs (the lobby sent them), not when the round opened."""
    from collections.abc import Callable

    from server.players.decisions import HANDOVER_WINDOWS, DecisionRound
    from shared.protocol import Message
    from shared.rules import CONWAY

    reg = registry()
    alice, _ = reg.join(b"a", "alice", None)
    handed: list[tuple[list[tuple[bytes, Message]], Callable[[], None] | None]] = []
    window = 10.0
    def hand_over(messages: list[tuple[bytes, Message]],
                  then: Callable[[], None] | None) -> bool:
        handed.append((messages, then))
        return True

    decisions = DecisionRound(reg, CONWAY, window, lambda who, msg: None, hand_over)
    codes = np.zeros((16, 16), np.uint8)
    codes[2, 2:5] = alice.code
    opened = time.monotonic()
    assert decisions.ask(1, codes, Board.of(codes)) == 1
    [(messages, then)] = [(m, t) for m, t in handed if m]
    assert [who for who, _ in messages] == [b"a"] and then is not None
    assert reg._deadline >= opened + HANDOVER_WINDOWS * window - 1
    then()
    assert time.monotonic() + window - 1 < reg._deadline <= time.monotonic() + window


def test_a_round_whose_requests_were_dropped_waits_for_nobody() -> None:
    """When the lobby's outbox cannot take a round's requests (``send_all`` says
    False), nobody can answer: the round's deadline is now, not two windows on."""
    from server.players.decisions import DecisionRound
    from shared.rules import CONWAY

    reg = registry()
    alice, _ = reg.join(b"a", "alice", None)
    decisions = DecisionRound(reg, CONWAY, 30.0, lambda who, msg: None,
                              lambda messages, then: not messages)
    codes = np.zeros((16, 16), np.uint8)
    codes[2, 2:5] = alice.code
    assert decisions.ask(1, codes, Board.of(codes)) == 1
    assert reg._deadline <= time.monotonic()
    decisions.collect(1)  # returns at once (the test's timeout guards it)
    assert reg.unanswered == 1


def test_the_lobby_says_when_a_batch_has_left() -> None:
    """``send_all``'s ``then`` runs once every message of its batch was handed to the
    socket (so a round's window starts after its requests left), and at once for an
    empty batch; a batch dropped whole (outbox full) never calls it."""
    import zmq

    from server.players.lobby import OUTBOX_LIMIT, PlayerEndpoint, WorldInfo
    from shared import protocol
    from shared.protocol import Kind

    context = zmq.Context()
    try:
        lobby = PlayerEndpoint(context, "tcp://127.0.0.1:0", lambda full: {}, registry(),
                               WorldInfo(8, 8, "B3/S23", 0), lambda: 0)
        pong = protocol.message(Kind.PONG, generation=1, energy=2)
        events: list[str] = []
        lobby.send_all([], lambda: events.append("empty"))
        assert events == ["empty"]
        lobby.send_all([(b"p", pong)] * 3, lambda: events.append("left"))
        lobby.send_all([(b"p", pong)] * OUTBOX_LIMIT, lambda: events.append("dropped"))
        assert events == ["empty"]  # nothing sent yet

        class Sink:
            def send(self, identity: bytes, frames: list[bytes]) -> int:
                events.append("sent")
                return 0

        lobby._send_outbox(Sink())  # type: ignore[arg-type]
        assert events == ["empty", "sent", "sent", "sent", "left"]
        assert lobby.dropped == OUTBOX_LIMIT
    finally:
        context.term()


def test_held_news_says_the_energy_as_it_stands_when_it_leaves() -> None:
    """News held for the next request says the player's energy when it is sent: a
    placement the lobby took since ``tell`` already spent some (its PLACED said so),
    and a client keeps the last energy it hears."""
    from server.players.decisions import Decided, DecisionRound
    from server.players.registry import DecisionResult
    from shared.protocol import Kind, Message
    from shared.rules import CONWAY

    reg = registry(energy_cap=100)
    alice, _ = reg.join(b"a", "alice", None)
    sent: list[tuple[bytes, Message]] = []
    decisions = DecisionRound(reg, CONWAY, 0.0, lambda who, msg: sent.append((who, msg)))
    decisions.fold = True
    codes = np.zeros((16, 16), np.uint8)
    codes[2, 2:5] = alice.code
    decisions.ask(1, codes, Board.of(codes))
    reg.close_decisions()
    decisions.tell(1, Decided(results={alice.id: DecisionResult(energy=alice.energy)}),
                   [Landed(alice.id, b"a", 3, 3, alice.energy)])
    before = alice.energy
    reg.place(alice, placement_cells(None, [[0, 0], [0, 1]], 9, 9, 0, False, 16, 16))
    assert alice.energy == before - 2
    decisions.ask(2, codes, Board.of(codes))
    [(_, request)] = [(w, m) for w, m in sent if m.kind is Kind.GAME_LOGIC and m["gen"] == 2]
    assert request["decided"]["energy"] == before - 2
    assert request["landed"][0]["energy"] == before - 2
    # And alone (the loop idles, or stops): the same.
    reg.close_decisions()
    decisions.tell(2, Decided(results={alice.id: DecisionResult(energy=alice.energy)}), [])
    reg.place(alice, placement_cells(None, [[0, 0]], 12, 12, 0, False, 16, 16))
    sent.clear()
    decisions.flush()
    [(_, alone)] = sent
    assert alone.kind is Kind.DECIDED and alone["energy"] == before - 3


def test_a_batch_that_cannot_be_encoded_takes_no_room_in_the_outbox() -> None:
    import zmq

    from server.players.lobby import PlayerEndpoint, WorldInfo
    from shared.protocol import Kind, Message

    context = zmq.Context()
    try:
        lobby = PlayerEndpoint(context, "tcp://127.0.0.1:0", lambda full: {}, registry(),
                               WorldInfo(8, 8, "B3/S23", 0), lambda: 0)
        bad = Message(Kind.PONG, {"generation": object(), "energy": 1})
        with pytest.raises(TypeError):
            lobby.send_all([(b"p", bad)] * 1000)
        assert lobby._queued == 0 and lobby.dropped == 0
    finally:
        context.term()


def test_a_late_answer_is_told_once_in_a_while_and_always_counted() -> None:
    """A ``DECIDE`` for a closed round: the first gets its error reply, the next ones
    from the same player within ``LATE_NOTICE_SECONDS`` none (an overloaded server
    would double its messages), every one is counted (``on_late``); another player's
    first is told, and the same player is told again once the time has passed. A new
    player given a departed one's id is a new session: its first is told too."""
    import zmq

    from server.players.lobby import (
        LATE_NOTICE_SECONDS,
        MAX_CONNECTIONS_TRACKED,
        Peer,
        PlayerEndpoint,
        WorldInfo,
    )
    from shared import protocol
    from shared.protocol import ErrorCode, Kind

    reg = registry()
    alice, _ = reg.join(b"a", "alice", None)
    bob, _ = reg.join(b"b", "bob", None)
    now = [1000.0]
    context = zmq.Context()
    try:
        lobby = PlayerEndpoint(context, "tcp://127.0.0.1:0", lambda full: {}, reg,
                               WorldInfo(8, 8, "B3/S23", 0), lambda: 0)
        counted: list[int] = []
        lobby.on_late = lambda: counted.append(1)
        lobby.clock = lambda: now[0]

        def late(player: Any) -> protocol.Message | None:
            frames = protocol.encode(protocol.message(
                Kind.DECIDE, player=player.id, token=player.token, gen=77, keep=[],
                let_die=[]))
            return lobby.handle(Peer(player.identity), frames)

        first = late(alice)
        assert first is not None and first.kind is Kind.ERROR
        assert first["code"] == ErrorCode.NOT_ALLOWED and "late" in first["reason"]
        assert late(alice) is None and late(alice) is None
        told_bob = late(bob)
        assert told_bob is not None and told_bob.kind is Kind.ERROR
        now[0] += LATE_NOTICE_SECONDS
        assert late(alice) is not None
        assert len(counted) == lobby.late_answers == 5
        assert lobby.bad_messages == 3  # the replies, as every refusal is counted
        assert late(alice) is None
        with reg.lock:
            reg._forget(alice.id)
        carol, _ = reg.join(b"c", "carol", None)
        assert carol.id == alice.id and carol.token != alice.token
        assert late(carol) is not None
        for i in range(MAX_CONNECTIONS_TRACKED + 100):  # the sessions remembered: bounded
            lobby._tell_late(f"{i:032x}")
        assert len(lobby._late_told) == MAX_CONNECTIONS_TRACKED
    finally:
        context.term()


def test_closing_a_round_checks_each_answer_as_the_rules_say() -> None:
    """``close_decisions`` on random answers (repeated indices, out of range, overrides
    that change nothing, more keep-alives than energy, cells in another player's
    shield) equals the rules applied one player, one index at a time: keep-alives paid
    in order while energy lasts, every refusal counted, the cells written."""
    from server.players.registry import DecisionResult
    from server.players.shields import Shield, Shields

    rng = np.random.default_rng(17)
    for trial in range(40):
        reg = PlayerRegistry(RegistryConfig(energy_cap=6, per_address=100, max_players=100),
                             Shields(64, 64, 5))
        players = [reg.join(b"p%d" % i, f"p{i}", None)[0] for i in range(12)]
        for p in players:
            p.energy = int(rng.integers(0, 7))
        zone = (int(rng.integers(64)), int(rng.integers(64)), 20, 20)
        reg.shields.live.append(Shield(*zone, until=50, player=players[0].id))
        requests = {}
        owned = rng.permutation(64 * 64)  # each cell has one owner, as in a world
        for k, p in enumerate(players):
            n = int(rng.integers(1, 30))
            ys, xs = np.divmod(owned[30 * k:30 * k + n], 64)
            requests[p.id] = Request(ys, xs, rng.random(n) < 0.5)
        reg.open_requests(3, requests, deadline=time.monotonic() + 60)
        answers = {p.id: ([int(v) for v in rng.integers(0, 34, int(rng.integers(0, 6)))],
                          [int(v) for v in rng.integers(0, 34, int(rng.integers(0, 6)))])
                   for p in players if rng.random() < 0.9}
        energy = {p.id: p.energy for p in players}
        for p in players:
            if p.id in answers:
                reg.post_decision(p, 3, *answers[p.id])
        writes, results = reg.close_decisions(regenerate=False)
        cells: dict[tuple[int, int], int] = {}
        for write in writes:
            for y, x in zip(write.ys.tolist(), write.xs.tolist(), strict=True):
                cells[(y, x)] = write.code
        expected_cells: dict[tuple[int, int], int] = {}
        for p in players:
            if p.id not in answers:
                continue
            request, (keep, let_die) = requests[p.id], answers[p.id]
            n, left, want = len(request.ys), energy[p.id], DecisionResult()

            owner_of_zone = players[0].id
            foreign = [p.id != owner_of_zone and (y - zone[0]) % 64 < 20
                       and (x - zone[1]) % 64 < 20
                       for y, x in zip(request.ys.tolist(), request.xs.tolist(), strict=True)]
            for i in dict.fromkeys(keep):
                if i >= n or request.survives[i] or left < 1 or foreign[i]:
                    want.refused += 1
                else:
                    left -= 1
                    want.kept += 1
                    expected_cells[(int(request.ys[i]), int(request.xs[i]))] = p.code
            for i in dict.fromkeys(let_die):
                if i >= n or not request.survives[i] or foreign[i]:
                    want.refused += 1
                else:
                    want.died += 1
                    expected_cells[(int(request.ys[i]), int(request.xs[i]))] = 0
            want.energy = left
            assert results[p.id] == want, (trial, p.id)
            assert p.energy == left
        assert set(results) == set(answers)
        assert cells == expected_cells, trial
