"""The players' part of a generation: game_logic requests out, decisions and placements in.

Runs in the main thread, around ``Engine.step``:

1. ``ask``: before the workers start, every connected player that owns cells gets one
   ``GAME_LOGIC`` message with its cells (positions and live-neighbour counts) of the
   frozen generation.
2. The workers compute the rule's next generation meanwhile.
3. ``settle``: wait for the players' answers until every asked player answered or the
   decision window closed (whichever is first), then apply the valid decisions, the
   queued placements, neutral cells for expired players, and energy regeneration.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import zmq

from server.lobby import OUTBOX_ENDPOINT
from server.players import Board, PlayerRegistry, Request
from shared import protocol
from shared.grid import Codes, as_payload
from shared.protocol import Kind
from shared.rules import Rule

log = logging.getLogger("lifenet.game")


def neighbour_counts(codes: Codes) -> Codes:
    """Live neighbours of every cell on the torus."""
    alive = np.pad((codes != 0).view(np.uint8), 1, mode="wrap")
    rows = alive[:-2] + alive[1:-1] + alive[2:]
    total = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]
    result: Codes = total - alive[1:-1, 1:-1]
    return result


class Game:
    """Sends requests to players and applies what they answer; main thread only."""

    def __init__(self, context: zmq.Context[Any], registry: PlayerRegistry, rule: Rule,
                 window: float) -> None:
        self.registry = registry
        self.rule = rule
        self.window = window
        self.outbox = context.socket(zmq.PUSH)
        self.outbox.setsockopt(zmq.LINGER, 0)
        self.outbox.connect(OUTBOX_ENDPOINT)
        self._deadline = 0.0
        self._asked: dict[int, bytes] = {}

    def ask(self, gen: int, codes: Codes, board: Board) -> int:
        """Send this generation's requests (``board``: its live cells per owner);
        returns how many players were asked."""
        players = [p for p in self.registry.connected()]
        self._deadline = time.monotonic() + self.window
        owning = [p for p in players if board.cells(p.id)]
        requests: dict[int, Request] = {}
        messages: list[tuple[bytes, protocol.Message]] = []
        self._asked = {}
        if owning:
            counts = neighbour_counts(codes)
            survive = self.rule.table[9:]
            # One sort groups every player's cells, instead of one scan per player.
            flat = codes.ravel()
            cells = np.flatnonzero(flat > 1)
            order = np.argsort(flat[cells], kind="stable")
            cells, owners = cells[order], flat[cells][order]
            for p in owning:
                lo, hi = np.searchsorted(owners, [p.code, p.code + 1])
                ys, xs = np.divmod(cells[lo:hi], codes.shape[1])
                n = counts[ys, xs]
                requests[p.id] = Request(ys, xs, survive[n])
                coords = np.stack([ys, xs], axis=1).astype(np.uint16)
                messages.append((p.identity, protocol.message(
                    Kind.GAME_LOGIC, [as_payload(coords), as_payload(n)], gen=gen,
                    count=len(ys), deadline_ms=self.window * 1000)))
                self._asked[p.id] = p.identity
        # Open the round before the first request leaves: a quick answer must find it.
        self.registry.open_requests(gen, requests)
        for identity, msg in messages:
            self._send(identity, msg)
        return len(requests)

    def settle(self, gen: int, codes: Codes) -> None:
        """Apply answers, placements, expiry and energy to generation ``gen + 1``."""
        if self._asked:
            self.registry.wait_decisions(self._deadline)
        results = self.registry.apply_decisions(codes)
        if self.registry.unanswered:
            log.debug("generation %d: %d asked players did not answer in time; the rule "
                      "decided for their cells", gen, self.registry.unanswered)
        for pid, result in results.items():
            identity = self._asked.get(pid)
            if identity is not None:
                self._send(identity, protocol.message(
                    Kind.DECIDED, gen=gen, kept=result.kept, died=result.died,
                    refused=result.refused, energy=self.registry.energy_of(pid)))
        for landed in self.registry.apply_placements(codes, gen + 1):
            # What did not land (cells occupied at the boundary) is told, not only refunded.
            if landed.identity:
                self._send(landed.identity, protocol.message(
                    Kind.LANDED, generation=gen + 1, cells=landed.cells,
                    placed=landed.placed, occupied=landed.occupied, energy=landed.energy))
        self.registry.expire()
        for pid in self.registry.take_neutralise():
            codes[codes == pid + 1] = 1
            log.info("player %d's grace ended: its cells are neutral now", pid)
        self.registry.regenerate()

    def _send(self, identity: bytes, msg: protocol.Message) -> None:
        try:
            self.outbox.send_multipart([identity, *protocol.encode(msg)], zmq.NOBLOCK,
                                       copy=False)
        except zmq.Again:
            log.warning("lobby outbox full: a %s was dropped", msg.kind)

    def close(self) -> None:
        self.outbox.close()
