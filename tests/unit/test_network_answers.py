"""The terminal client's network thread behind on its requests answers only the newest
(as the bots do), and still reads the news between them."""

from __future__ import annotations

import random
from collections import deque

import numpy as np

from client.network import Network
from shared import protocol
from shared.grid import as_payload
from shared.protocol import Kind, Message
from shared.rules import CONWAY


def request(gen: int) -> Message:
    cells = np.zeros(3, protocol.GAME_LOGIC_CELL)
    cells["y"], cells["n"] = [1, 2, 3], [3, 1, 2]
    return protocol.decode(protocol.encode(protocol.message(
        Kind.GAME_LOGIC, [as_payload(cells)], gen=gen, count=3, deadline_ms=50.0)))


class Session:
    rule, energy = CONWAY, 9

    def __init__(self, inbox: list[Message]) -> None:
        self.inbox = deque(inbox)
        self.decided: list[int] = []

    def poll(self) -> Message | None:
        return self.inbox.popleft() if self.inbox else None

    def decide(self, gen: int, keep: list[int], let_die: list[int]) -> bool:
        self.decided.append(gen)
        return True


def test_a_client_behind_answers_only_the_newest_request() -> None:
    posted: list[object] = []
    network = Network("tcp://127.0.0.1:1", "me", None, "defend", posted.append)
    decided = protocol.message(Kind.DECIDED, gen=5, kept=1, died=0, refused=0, energy=4)
    session = Session([request(5), decided, request(6), request(7)])
    network._answer(session, random.Random(1))  # type: ignore[arg-type]
    assert session.decided == [7]
    assert network.state.answered == 1 and network.state.kept == 1  # the news was read
    assert session.energy == 4
    session.inbox.append(request(8))
    network._answer(session, random.Random(1))  # type: ignore[arg-type]
    assert session.decided == [7, 8] and network.state.answered == 2
