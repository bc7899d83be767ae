"""The multiplayer game over real sockets: sessions, placements, decisions, frames."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq

from client.session import PlayerSession
from server.app import Server
from server.players import registry as registry_module
from shared import protocol
from shared.errors import RemoteError
from shared.frames import FrameView
from shared.grid import Grid
from shared.library import library
from shared.life import simulate, simulate_many
from shared.policies import GameLogicRequest
from shared.protocol import ErrorCode, Kind, Message
from tests.conftest import Processes, wait_for
from tests.integration.conftest import MakeServer, send_oversize, start_workers

pytestmark = pytest.mark.integration

GLIDER = library()["glider"][0]


@pytest.fixture
def game(make_server: MakeServer, processes: Processes) -> Iterator[Server]:
    server = make_server(size=(32, 32), fill=0.0, tile=(8, 32), decision_window=0.3,
                         player_heartbeat=0.5, grace=1.0)
    start_workers(processes, server, 2)
    yield server


@pytest.fixture
def sessions() -> Iterator[list[PlayerSession]]:
    made: list[PlayerSession] = []
    yield made
    for s in made:
        s.close()


def join(server: Server, sessions: list[PlayerSession], name: str) -> PlayerSession:
    session = PlayerSession(server.lobby.bound_endpoint, name)
    sessions.append(session)
    session.join()
    return session


def request_of(session: PlayerSession, gen: int, timeout: float = 5.0) -> GameLogicRequest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = session.poll(0.05)
        if msg is not None and msg.kind is Kind.GAME_LOGIC and msg["gen"] == gen:
            return GameLogicRequest.of(msg)
    pytest.fail(f"no game_logic request for generation {gen}")


def test_a_placed_pattern_appears_in_the_others_frames(game: Server,
                                                       sessions: list[PlayerSession]) -> None:
    alice, bob = join(game, sessions, "alice"), join(game, sessions, "bob")
    assert (alice.player, bob.player) == (1, 2) and alice.code != bob.code
    view = FrameView(bob.frame_endpoint)
    try:
        wait_for(lambda: (game.advance(), view.poll(0.05))[1] and view.codes is not None,
                 10, what="bob's first frame")
        placed = alice.place(10, 10, rle=GLIDER)
        assert placed["cost"] == 5 and placed["generation"] == game.engine.generation + 1
        game.advance()
        wait_for(lambda: view.poll(0.05) or view.gen == game.engine.generation, 5,
                 what="the frame of the next generation")
        assert view.gen == game.engine.generation
        assert view.codes is not None
        ys, _xs = np.nonzero(view.codes == alice.code)
        assert len(ys) == 5
        assert view.codes[10, 11] == alice.code and view.codes[12, 10:13].tolist() == [
            alice.code] * 3
        assert [1, "alice", 5] in view.info["board"]
        assert game.status()["scores"]["alice"] == 5
    finally:
        view.close()


def decided_of(session: PlayerSession) -> dict[str, Any] | None:
    msg = session.poll(0.05)
    return msg.body if msg is not None and msg.kind is Kind.DECIDED else None


def step_keeping_all(server: Server, player: PlayerSession) -> dict[str, Any]:
    """Step a generation while ``player`` asks to keep every cell it is asked about;
    the server's ``DECIDED`` for it."""
    gen = server.engine.generation
    stepper = threading.Thread(target=server.advance)
    stepper.start()
    request = request_of(player, gen)
    player.decide(gen, keep=list(range(len(request.ys))))
    stepper.join(10)
    decided: dict[str, Any] = wait_for(lambda: decided_of(player), 5, what="DECIDED")
    return decided


def test_keep_alive_with_energy_and_refusals(make_server: MakeServer, processes: Processes,
                                             sessions: list[PlayerSession]) -> None:
    server = make_server(size=(16, 16), fill=0.0, decision_window=1.0, energy_cap=6,
                         energy_regen=0)
    start_workers(processes, server, 1)
    player = join(server, sessions, "keeper")
    player.place(4, 4, cells=[(0, 0), (0, 4)])  # two lonely cells: the rule kills both
    server.advance()
    assert player.ping()["energy"] == 4
    gen = server.engine.generation
    thread_result: list[Any] = []

    import threading
    stepper = threading.Thread(target=lambda: thread_result.append(server.advance()))
    stepper.start()
    request = request_of(player, gen)
    assert len(request.ys) == 2 and not request.survives(player.rule).any()  # type: ignore[arg-type]
    # Keep both (one costs 1 energy each), an index that is not theirs, let a dying one die.
    player.decide(gen, keep=[0, 1, 7], let_die=[0])
    stepper.join(10)
    decided = wait_for(lambda: decided_of(player), 5, what="DECIDED")
    assert (decided["kept"], decided["refused"], decided["energy"]) == (2, 2, 2)
    codes = server.engine.grid.codes
    assert codes[4, 4] == player.code and codes[4, 8] == player.code
    # Without energy the rule decides: keep costs 1 each, 2 left, 2 asked -> then 0.
    for expected_kept in (2, 0):
        decided = step_keeping_all(server, player)
        assert decided["kept"] == expected_kept, decided
    assert not server.engine.grid.codes.any()


def test_a_silent_player_does_not_delay_the_generation(make_server: MakeServer,
                                                       processes: Processes,
                                                       sessions: list[PlayerSession]) -> None:
    server = make_server(size=(16, 16), fill=0.0, decision_window=0.3)
    start_workers(processes, server, 1)
    player = join(server, sessions, "sleepy")
    player.place(2, 2, rle=library()["block"][0])
    server.advance()
    before = server.engine.grid.copy()
    began = time.monotonic()
    server.advance()  # the player is asked and never answers
    took = time.monotonic() - began
    assert 0.25 <= took < 1.5
    assert server.engine.grid == simulate(before, server.rule)


def test_a_player_silent_for_three_rounds_is_no_longer_waited_for(
        make_server: MakeServer, processes: Processes,
        sessions: list[PlayerSession], monkeypatch: pytest.MonkeyPatch) -> None:
    """Three rounds unanswered, and the generation stops waiting for it: the steps
    after take well under the decision window; nor is it asked again while its three
    requests are unread (the lobby's backlog is bounded by the players, not by the
    generations made). Once it answers again, it is asked, and once it answers in
    time, waited for again."""
    monkeypatch.setattr(registry_module, "UNREAD_EXPIRY", 600.0)  # none forgiven here
    window = 1.5
    server = make_server(size=(16, 16), fill=0.0, decision_window=window,
                         player_heartbeat=30.0)  # connected all along, though it never pings
    start_workers(processes, server, 1)
    player = join(server, sessions, "sleepy")
    player.place(2, 2, rle=library()["block"][0])
    server.advance()
    for _ in range(3):  # waited for, each time, until the window closes
        began = time.monotonic()
        server.advance()
        assert time.monotonic() - began >= window * 0.9
    before = server.engine.grid.copy()
    asked = server.registry.asked_total
    fast = []
    for _ in range(5):
        began = time.monotonic()
        server.advance()
        fast.append(time.monotonic() - began)
    assert max(fast) < window / 2, fast
    assert server.engine.grid == simulate_many(before, 5, server.rule)
    assert server.registry.asked_total == asked and server.registry.held_total == 5
    requests = [msg["gen"] for msg in pending(player) if msg.kind is Kind.GAME_LOGIC]
    assert len(requests) == 3 and max(requests) < server.engine.generation - 5
    # It answers its newest request (long late): read, so it is asked again, though
    # not yet waited for (that answer came after its round's deadline).
    player.decide(max(requests))
    wait_for(lambda: not server.registry.players[player.player].unread, 5,
             what="the late answer to be read")
    assert server.registry.players[player.player].missed == 3
    gen = server.engine.generation

    def answer(gen: int) -> None:
        player.decide(request_of(player, gen).gen)

    thread = threading.Thread(target=answer, args=(gen,))
    thread.start()
    server.advance()  # not waited for: its answer may come after the round closed
    thread.join(10)
    wait_for(lambda: server.registry.players[player.player].missed == 0, 5,
             what="the answer before the deadline to count as a sign of life")
    thread = threading.Thread(target=answer, args=(gen + 1,))
    began = time.monotonic()
    thread.start()
    server.advance()
    thread.join(10)
    assert server.registry.unanswered == 0, "its answer was not waited for"
    assert time.monotonic() - began < window


def pending(session: PlayerSession) -> list[Message]:
    """Every message waiting for ``session`` now (none more within 0.2 s)."""
    waiting = []
    while (msg := session.poll(0.2)) is not None:
        waiting.append(msg)
    return waiting


def test_rejoin_with_the_token_and_a_wrong_token(game: Server,
                                                 sessions: list[PlayerSession]) -> None:
    alice = join(game, sessions, "alice")
    alice.place(3, 3, rle=library()["block"][0])
    game.advance()
    token = alice.token
    again = alice.reconnect()
    assert again["rejoined"] and again["player"] == alice.player
    assert again["code"] == alice.code
    assert int(np.count_nonzero(game.engine.grid.codes == alice.code)) == 4
    mallory = PlayerSession(game.lobby.bound_endpoint, "mallory")
    sessions.append(mallory)
    with pytest.raises(RemoteError, match="token"):
        mallory.join(token="0" * 32)
    mallory.join()
    # Mallory tries to act as alice with her own token.
    mallory.player = alice.player
    with pytest.raises(RemoteError, match="does not belong"):
        mallory.place(20, 20, rle=GLIDER)
    assert token == alice.token


def test_a_player_that_vanishes_keeps_cells_until_the_grace_ends(
        game: Server, sessions: list[PlayerSession]) -> None:
    ghost = join(game, sessions, "ghost")
    ghost.place(5, 5, rle=library()["block"][0])
    game.advance()
    ghost.close()
    assert int(np.count_nonzero(game.engine.grid.codes == ghost.code)) == 4
    # Heartbeat 0.5 s x 3, then a 1 s grace: the block turns neutral.
    wait_for(lambda: (game.advance(), not (game.engine.grid.codes == ghost.code).any())[1],
             10, interval=0.1, what="the ghost's cells to turn neutral")
    assert int(np.count_nonzero(game.engine.grid.codes == 1)) == 4


def test_placement_costs_energy_and_refusals_say_why(make_server: MakeServer,
                                                     processes: Processes,
                                                     sessions: list[PlayerSession]) -> None:
    server = make_server(size=(16, 16), fill=0.0, energy_cap=8, energy_regen=0)
    start_workers(processes, server, 1)
    player = join(server, sessions, "spender")
    with pytest.raises(RemoteError, match="needs 33 energy"):  # 36 cells, 33 squares of 16x16
        player.place(0, 0, rle=library()["gosper-gun"][0])
    assert player.place(0, 0, rle=library()["block"][0])["energy"] == 4
    other = join(server, sessions, "other")
    other.place(0, 0, rle=library()["block"][0])  # the same cells: occupied at the boundary
    server.advance()
    assert int(np.count_nonzero(server.engine.grid.codes == player.code)) == 4
    assert other.ping()["energy"] == 8  # refunded: nothing was placed
    # Each placer is told what landed, and why the rest did not.
    for session, placed in ((player, 4), (other, 0)):
        landed = landed_of(session)
        assert (landed["generation"], landed["cells"], landed["placed"],
                landed["occupied"]) == (1, 4, placed, 4 - placed), landed


def landed_of(session: PlayerSession, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = session.poll(0.05)
        if msg is not None and msg.kind is Kind.LANDED:
            return msg.body
    pytest.fail(f"{session.name} was not told how its placement landed")


def raw(server: Server, zmq_context: zmq.Context[Any]) -> zmq.Socket[Any]:
    sock: zmq.Socket[Any] = zmq_context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.lobby.bound_endpoint)
    return sock


def ask(sock: zmq.Socket[Any], frames: list[bytes]) -> protocol.Message:
    sock.send_multipart(frames)
    assert sock.poll(3000), "no reply"
    return protocol.decode(sock.recv_multipart())


def test_bad_input_on_the_player_endpoint(game: Server, sessions: list[PlayerSession],
                                          zmq_context: zmq.Context[Any]) -> None:
    alice = join(game, sessions, "alice")
    game.advance()
    before = game.engine.grid.copy()
    energy = alice.ping()["energy"]
    sock = raw(game, zmq_context)

    def place(**body: Any) -> protocol.Message:
        full = dict(player=alice.player, token=alice.token, y=0, x=0, rotate=0, flip=False)
        full.update(body)
        return ask(sock, [msgpack.packb(["place", full])])

    cases = [
        (place(y=32, rle=GLIDER), ErrorCode.BAD_FIELD),  # outside a 32x32 world
        (place(y=-1, rle=GLIDER), ErrorCode.BAD_FIELD),
        (place(rle="x = 300, y = 1\n300o!"), ErrorCode.BAD_FIELD),  # huge pattern
        (place(rle="x = 3, y = 3\nbo$2bo$3o"), ErrorCode.BAD_FIELD),  # malformed RLE
        (place(rle=GLIDER, cells=[[0, 0]]), ErrorCode.BAD_FIELD),
        (place(rle="x" * (protocol.MAX_PLACE_RLE + 1)), ErrorCode.BAD_FIELD),
        (place(rotate=True, rle=GLIDER), ErrorCode.BAD_FIELD),
        (place(token="f" * 32, rle=GLIDER), ErrorCode.NOT_ALLOWED),
        (place(player=99, rle=GLIDER), ErrorCode.NOT_ALLOWED),
        (ask(sock, [msgpack.packb(["decide", dict(player=1, token=alice.token, gen=10**6,
                                                  keep=[0], let_die=[])])]),
         ErrorCode.NOT_ALLOWED),
        (ask(sock, [msgpack.packb(["teleport", {}])]), ErrorCode.UNKNOWN_KIND),
        (ask(sock, [b"\x93\x01"]), ErrorCode.MALFORMED),
        (ask(sock, [msgpack.packb(["join", {"version": 1, "name": 5}])]), ErrorCode.BAD_FIELD),
    ]
    for reply, code in cases:
        assert reply.kind is Kind.ERROR and reply["code"] == code, reply.body
    # A flood of garbage: answered while the sender reads, dropped when it does not
    # (the reply queue is bounded), and the server goes on for everybody else.
    for _ in range(2000):
        sock.send_multipart([b"\xc1" * 64])
    answered = 0
    while sock.poll(500):
        reply = protocol.decode(sock.recv_multipart())
        assert reply.kind is Kind.ERROR and reply["code"] == ErrorCode.MALFORMED
        answered += 1
    assert 0 < answered <= 2000
    # Oversize: ZeroMQ drops the sender's connection at the 1 MiB limit.
    assert send_oversize(zmq_context, game.lobby.bound_endpoint,
                         [msgpack.packb(["ping", {}]), bytes(2 << 20)]) == "dropped"
    sock.close()
    assert alice.ping()["energy"] == energy
    assert game.engine.grid == before
    game.advance()
    assert game.engine.grid == simulate(before, game.rule)
    assert game.lobby.is_alive()


def test_status_counts_players_and_scores(game: Server, sessions: list[PlayerSession]) -> None:
    alice = join(game, sessions, "alice")
    alice.place(1, 1, rle=library()["block"][0])
    game.advance()
    report = game.status()
    assert report["players"] == 1 and report["scores"] == {"alice": 4}
    assert report["workers"] == 2 and report["population"] == 4


def test_multi_owner_worlds_equal_the_reference(game: Server) -> None:
    rng = np.random.default_rng(4)
    game.engine.grid = Grid.from_codes(rng.choice([0, 2, 3, 4], size=(32, 32),
                                                  p=[.55, .15, .15, .15]))
    expected = game.engine.grid.copy()
    for _ in range(10):
        expected = simulate(expected, game.rule)
        assert game.advance() == expected


@contextlib.contextmanager
def running_bots(game: Server, count: int, seed: int) -> Iterator[list[Any]]:
    """``count`` follow bots in a thread; yields the list their ``Bot``s land in when
    they have stopped (on leaving the block)."""
    from client.bot import run_bots

    stop = threading.Event()
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(
        run_bots(game.lobby.bound_endpoint, count, "follow", seed=seed, stop=stop)))
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join(10)


def test_bots_join_place_at_once_and_answer(game: Server) -> None:
    with running_bots(game, 3, seed=1) as result:
        # Every bot places its first pattern as soon as it has joined, then answers.
        wait_for(lambda: (game.advance(), len([s for s in game.status()["scores"].values()
                                               if s > 0]) == 3)[1],
                 15, interval=0.05, what="three bots owning cells")
        players = game.engine.players
        assert players is not None
        wait_for(lambda: (game.advance(), game.registry.unanswered == 0
                          and len(players.round._asked) == 3)[1],
                 15, interval=0.05, what="every bot answering its request in time")
    bots = result[0]
    assert all(b.placed >= 1 and b.answered >= 1 for b in bots)
    assert game.status()["players"] == 0  # they said LEAVE


def test_a_bot_whose_cells_all_died_places_again(game: Server) -> None:
    def score() -> int:
        return sum(game.status()["scores"].values())

    with running_bots(game, 1, seed=3) as result:
        wait_for(lambda: (game.advance(), score() > 0)[1], 15, interval=0.05,
                 what="the bot to own cells")
        # A catastrophe wipes the world: the bot is asked nothing any more, and the
        # 5% chance a request gives it to place never comes.
        game.engine.grid = Grid(*game.engine.grid.codes.shape)
        game.advance()
        assert score() == 0
        wait_for(lambda: (game.advance(), score() > 0)[1], 15, interval=0.05,
                 what="the bot, owning nothing, to place a pattern again")
    assert result[0][0].sent >= 2


@pytest.mark.parametrize("tick", [0.0, 0.25])
def test_each_answer_hears_what_it_got_before_the_next_request(
        make_server: MakeServer, processes: Processes, sessions: list[PlayerSession],
        tick: float) -> None:
    """The server's own loop, behind its tick (0: always) and idle between generations
    (0.25 s): a player answering every request hears its DECIDED for each generation
    before the next request. Behind, the news rides on the request (fewer messages on
    the wire than the player reads); idle, it comes alone, at once."""
    server = make_server(size=(32, 32), fill=0.0, tick=tick, decision_window=0.5)
    start_workers(processes, server, 1)
    player = join(server, sessions, "busy")
    raw: list[int] = []
    recv = player._recv

    def counted() -> list[protocol.Message]:
        msgs = recv()
        raw.append(len(msgs))
        return msgs

    player._recv = counted  # type: ignore[method-assign]
    player.place(4, 4, cells=[(0, 0), (0, 1), (1, 0), (1, 1)])  # a block: asked always
    runner = threading.Thread(target=server.run)
    runner.start()
    seen: list[tuple[Kind, int]] = []
    try:
        deadline = time.monotonic() + 20
        while sum(k is Kind.DECIDED for k, _ in seen) < 8 and time.monotonic() < deadline:
            msg = player.poll(0.05)
            if msg is None:
                continue
            if msg.kind is Kind.GAME_LOGIC:
                player.decide(msg["gen"], keep=[0])
                seen.append((msg.kind, msg["gen"]))
            elif msg.kind is Kind.DECIDED:
                seen.append((msg.kind, msg["gen"]))
    finally:
        server.stop()
        runner.join(10)
    asked = [g for k, g in seen if k is Kind.GAME_LOGIC]
    decided = [g for k, g in seen if k is Kind.DECIDED]
    assert len(decided) >= 8, f"{seen}"
    assert all(g in asked for g in decided)
    # Whatever came after an answered request, its DECIDED came before the next request.
    for (kind, gen), (after, later) in itertools.pairwise(seen):
        if kind is Kind.GAME_LOGIC and after is Kind.GAME_LOGIC:
            assert gen not in decided, f"generation {gen}'s DECIDED came after {later}"
    if tick == 0.0:
        assert max(raw) >= 2, "no news rode on a request"
        assert len(raw) < sum(raw)
    else:
        assert max(raw) == 1, "news rode on a request while the server was idle"


def test_the_last_generations_news_is_sent_when_the_loop_ends_behind_its_tick(
        make_server: MakeServer, processes: Processes,
        sessions: list[PlayerSession]) -> None:
    """A server that stops (here at ``--generations``) while running behind its tick
    held its last generation's news for a request that never comes: it sends it."""
    server = make_server(size=(32, 32), fill=0.0, tick=0.0, decision_window=0.5,
                         generations=4)
    start_workers(processes, server, 1)
    player = join(server, sessions, "last")
    player.place(4, 4, cells=[(0, 0), (0, 1), (1, 0), (1, 1)])
    runner = threading.Thread(target=server.run)
    runner.start()
    decided: list[int] = []
    try:
        def last_heard() -> bool:
            msg = player.poll(0.05)
            if msg is not None and msg.kind is Kind.GAME_LOGIC:
                player.decide(msg["gen"], keep=[0])
            elif msg is not None and msg.kind is Kind.DECIDED:
                decided.append(msg["gen"])
            return 3 in decided

        wait_for(last_heard, 10, what="the DECIDED of generation 3, the last")
    finally:
        server.stop()
        runner.join(10)
    assert server.engine.generation == 4 and decided[-1] == 3


@pytest.mark.timeout(15)
def test_a_session_never_waits_for_room_to_send(zmq_context: zmq.Context[Any]) -> None:
    """With its server gone, a session's queue fills (``SNDHWM`` messages): its answers,
    heartbeats and placements are then dropped and counted, never sent blocking, which
    held a bot process (or a client's network thread) for ever; a bot whose placement
    could not leave has spent nothing."""
    import random

    from client.bot import Bot
    from shared.policies import STRATEGIES

    router = zmq_context.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    session = PlayerSession(f"tcp://127.0.0.1:{port}", "full")
    session.player, session.token = 1, "ab" * 16  # as if it had joined
    try:
        assert session.send(session.ping_message())
        router.recv_multipart()  # connected, its handshake done
        router.close()  # the server gone: what the session sends now stays queued
        sent = 0
        while session.decide(1, keep=[0]):
            sent += 1
            assert sent < 1_000_000, "every answer left: the queue never filled"
        assert sent >= 900 and session.unsent == 1  # the queue took its SNDHWM first
        assert not session.send(session.ping_message()) and session.unsent == 2
        bot = Bot(session, STRATEGIES["random"].policy, 1.0, random.Random(1))
        session.welcome, session.energy = {"size": [64, 64]}, 1000
        bot.maybe_place(surely=True)
        assert (bot.sent, session.energy, session.unsent) == (0, 1000, 3)
    finally:
        session.close()


def test_a_message_that_does_not_decode_does_not_hold_up_those_behind_it(
        zmq_context: zmq.Context[Any]) -> None:
    """A bot's session skips a message it refuses and reads on: the bots' wake-ups are
    edge-triggered (``Readiness``, an epoll of ``zmq.FD``), so a drain that stopped at
    the refused one would leave the messages behind it unread until another came."""
    import random

    from client.bot import Bot, Readiness, _drain
    from shared.policies import STRATEGIES

    router = zmq_context.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    session = PlayerSession(f"tcp://127.0.0.1:{port}", "skip")
    ready = Readiness()
    try:
        bot = Bot(session, STRATEGIES["idle"].policy, 0.0, random.Random(1))
        ready.add(session.sock, bot)
        session.send(protocol.message(Kind.PING, player=1, token="ab"))
        _drain(bot)  # as a bot does after each send: nothing yet, its EVENTS read
        identity, _ = router.recv_multipart()
        router.send_multipart([identity, b"\xc1 not msgpack"])
        router.send_multipart([identity, *protocol.encode(
            protocol.message(Kind.PONG, generation=7, energy=3))])

        def heard() -> bool:
            for woken in ready.poll(50):
                _drain(woken)
            return bot.seen_gen == 7

        wait_for(heard, 5, what="the PONG behind the garbage")
    finally:
        ready.close()
        session.close()
        router.close(linger=0)


def test_a_request_that_comes_while_a_bot_answers_is_not_left_unread(
        zmq_context: zmq.Context[Any]) -> None:
    """A bot's answer (a send) may consume the edge-triggered ``zmq.FD`` signal of a
    request that arrived meanwhile: the drain reads again after acting, so that
    request is answered in the same drain and the next rounds still wake the bot."""
    import random
    import time

    import numpy as np

    from client.bot import Bot, Readiness, _drain
    from shared.grid import as_payload
    from shared.policies import STRATEGIES
    from shared.rules import CONWAY

    router = zmq_context.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    session = PlayerSession(f"tcp://127.0.0.1:{port}", "edge")
    ready = Readiness()
    cells = np.zeros(2, protocol.GAME_LOGIC_CELL)
    cells["y"], cells["n"] = [1, 2], [3, 1]

    def request(gen: int) -> list[Any]:
        return protocol.encode(protocol.message(
            Kind.GAME_LOGIC, [as_payload(cells)], gen=gen, count=2, deadline_ms=100.0))

    try:
        session.player, session.token, session.rule, session.energy = 1, "ab" * 16, CONWAY, 9
        bot = Bot(session, STRATEGIES["follow"].policy, 0.0, random.Random(1), seen_gen=0)
        ready.add(session.sock, bot)
        session.send(protocol.message(Kind.PING, player=1, token="ab" * 16))
        identity, _ = router.recv_multipart()
        _drain(bot)  # nothing yet: its EVENTS read, the signal armed
        answer = bot.answer

        def answer_while_the_next_comes(req: Any) -> None:
            if req.gen == 1:
                router.send_multipart([identity, *request(2)])
                # Nothing can be polled here without reading EVENTS (which would
                # re-arm the signal and hide the case): give libzmq time to deliver.
                time.sleep(0.2)
            answer(req)

        def woken(gen: int) -> bool:
            for woke in ready.poll(100):
                _drain(woke)
            return bot.asked_gen >= gen

        bot.answer = answer_while_the_next_comes  # type: ignore[method-assign,assignment]
        router.send_multipart([identity, *request(1)])
        wait_for(lambda: woken(1), 5, what="the first request")
        assert bot.answered == 2, "the request that came during the answer was left unread"
        for gen in (3, 4, 5):
            router.send_multipart([identity, *request(gen)])
            wait_for(lambda gen=gen: woken(gen), 5,  # type: ignore[misc]
                     what=f"request {gen} to wake the bot")
        assert bot.answered == 5
    finally:
        ready.close()
        session.close()
        router.close(linger=0)


def test_an_idle_lobby_is_woken_to_say_so_and_costs_no_generation_a_poll(
        make_server: MakeServer, processes: Processes) -> None:
    """The generation waits for the lobby to have read what came before the last round
    closed; a lobby with nothing to read is woken to say so at once, rather than when
    its poll times out (100 ms without the memory guard, longer than this window)."""
    server = make_server(size=(16, 16), fill=0.2, seed=3, decision_window=0.06,
                         memory_guard=None)
    start_workers(processes, server, 1)
    server.advance()  # a round asked (of nobody) and closed
    assert server.engine.players is not None
    decisions = server.engine.players.round
    for _ in range(5):
        server.advance()
        assert decisions.catch_up(), "the lobby was not idle within the window"
