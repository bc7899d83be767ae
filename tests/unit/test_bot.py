"""A bot's reckoning of whether it owns nothing, from the generations the server reports."""

from __future__ import annotations

import random
from typing import Any

from client.bot import Bot
from shared.policies import STRATEGIES


def bot(seen_gen: int = -1, asked_gen: int = -1, lands_gen: int = -1,
        sent_gen: int = -1) -> Bot:
    follow = STRATEGIES["follow"]
    session: Any = None  # the reckoning needs no connection
    return Bot(session, follow.policy, follow.place_chance, random.Random(1),
               seen_gen=seen_gen, asked_gen=asked_gen, lands_gen=lands_gen, sent_gen=sent_gen)


def test_a_bot_asked_recently_or_with_a_placement_on_the_way_owns_something() -> None:
    assert not bot(seen_gen=10, asked_gen=9).owns_nothing()
    assert not bot(seen_gen=10, lands_gen=11).owns_nothing()
    assert not bot(seen_gen=10, sent_gen=8).owns_nothing()
    assert bot(seen_gen=10, asked_gen=7, lands_gen=5, sent_gen=4).owns_nothing()
    assert not bot().owns_nothing()  # no generation seen yet


def test_a_restored_server_with_an_older_generation_is_not_waited_for() -> None:
    b = bot(seen_gen=1000, asked_gen=1000, lands_gen=990, sent_gen=989)
    b.saw_generation(905)  # restarted from the snapshot of generation 900
    assert not b.owns_nothing()  # too soon to tell
    b.saw_generation(908)
    assert b.owns_nothing()  # asked nothing since the restart
    b.saw_generation(909)
    b.asked_gen = 909
    assert not b.owns_nothing()


def test_a_bot_behind_answers_only_the_newest_request() -> None:
    """Requests that waited while a bot was busy: it answers only the newest (the
    older rounds are over) and counts the others as stale; the news between them is
    still read, and nothing is answered twice."""
    from collections import deque

    import numpy as np

    from client.bot import _drain
    from shared import protocol
    from shared.grid import as_payload
    from shared.protocol import Kind, Message
    from shared.rules import CONWAY

    cells = np.zeros(3, protocol.GAME_LOGIC_CELL)
    cells["y"], cells["n"] = [1, 2, 3], [3, 1, 2]

    def request(gen: int) -> Message:
        return protocol.decode(protocol.encode(protocol.message(
            Kind.GAME_LOGIC, [as_payload(cells)], gen=gen, count=3, deadline_ms=50.0)))

    class Session:
        rule, energy = CONWAY, 9
        inbox = deque([request(5), protocol.message(Kind.PONG, generation=6, energy=4),
                       request(6), request(7)])
        decided: list[int] = []

        def poll(self) -> Message | None:
            return self.inbox.popleft() if self.inbox else None

        def decide(self, gen: int, keep: list[int], let_die: list[int]) -> bool:
            self.decided.append(gen)
            return True

    random_bot = STRATEGIES["random"]
    behind = Bot(Session(), random_bot.policy, 0.0,  # type: ignore[arg-type]
                 random.Random(1))
    _drain(behind)
    assert Session.decided == [7] and behind.stale == 2 and behind.answered == 1
    assert behind.asked_gen == 7 and behind.seen_gen == 7
    Session.inbox.append(request(8))
    _drain(behind)
    assert Session.decided == [7, 8] and behind.stale == 2
