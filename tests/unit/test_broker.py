"""The broker's judgement of workers, without sockets: suspects, probes, liars' keys."""

from __future__ import annotations

from server.broker import CLEAN_ANSWERS, PROBE_AFTER, PROBE_AT_MOST, WorkerPeer
from server.dispatch import LOCAL, Answer
from server.envelope import Envelope, Key, Verb, decode, encode
from server.generation import lying_keys


def peer(credit: int = 2) -> WorkerPeer:
    return WorkerPeer(b"conn", 7, "w", credit, 0.0, expires=1e9, key=b"K" * 40)


def hold(worker: WorkerPeer, key: Key, at: float, cells: int = 1000) -> None:
    worker.in_flight[key] = b"dispatcher"
    worker.sent_at[key] = (at, cells)


def test_a_timeout_frees_the_credit_lowers_the_speed_and_makes_a_suspect() -> None:
    w = peer()
    w.rate = 1e6
    hold(w, Key(1, 0, 0), at=100.0)
    assert w.time_out(Key(1, 0, 0), now=101.0)
    assert w.free == 2 and w.suspect and w.rate < 1e6
    assert not w.time_out(Key(1, 0, 0), now=101.0)  # not held any more: nothing
    assert not w.may_take(101.0 + PROBE_AFTER - 0.01)
    assert w.may_take(101.0 + PROBE_AFTER)  # its probe
    hold(w, Key(2, 0, 0), at=102.0)
    assert not w.may_take(200.0)  # one probe at a time


def test_probes_wait_longer_after_each_strike_up_to_a_cap() -> None:
    w = peer()
    waits = []
    for gen in range(1, 12):
        hold(w, Key(gen, 0, 0), at=float(gen))
        w.time_out(Key(gen, 0, 0), now=float(gen))
        waits.append(w.probe_at - gen)
    assert waits[:4] == [PROBE_AFTER, 2 * PROBE_AFTER, 4 * PROBE_AFTER, 8 * PROBE_AFTER]
    assert max(waits) == PROBE_AT_MOST


def test_an_answer_clears_suspicion_but_strikes_are_forgiven_slowly() -> None:
    """A worker that answers its probe and lets the next batch time out waits longer
    each time: one answer clears the suspicion, sixteen in time forgive one strike."""
    w = peer()
    for gen in (1, 2):
        hold(w, Key(gen, 0, 0), at=0.0)
        w.time_out(Key(gen, 0, 0), now=1.0)
    w.answered(Key(1, 0, 0), now=5.0)  # late, but it came: measured from when sent
    assert not w.suspect and w.strikes == 2
    for i in range(CLEAN_ANSWERS):
        w.answered(Key(10, i, 0), now=6.0)
    assert w.strikes == 1
    hold(w, Key(20, 0, 0), at=7.0)
    w.time_out(Key(20, 0, 0), now=8.0)
    assert w.strikes == 2 and w.probe_at == 8.0 + 2 * PROBE_AFTER


def test_a_made_up_answer_is_not_an_answer() -> None:
    """Only an answer to a batch it was given clears a suspect (the broker calls
    ``answered`` for those alone); the record of timed-out batches is bounded."""
    w = peer(credit=1)
    for gen in range(1, 20):
        hold(w, Key(gen, 0, 0), at=0.0)
        w.time_out(Key(gen, 0, 0), now=1.0)
    assert len(w.timed_out) <= 4 and Key(999, 0, 0) not in w.timed_out


def test_a_lie_taints_every_answer_with_the_liars_key_under_any_id() -> None:
    answers = [Answer(1, True, mark=b"K"), Answer(1, True, lied=True, mark=b"K"),
               Answer(2, True, mark=b"K"), Answer(3, True, mark=b"J"),
               Answer(LOCAL, True)]
    assert lying_keys(answers) == {(1, b"K"), (2, b"K")}
    assert lying_keys([Answer(4, True, mark=b"J")]) == set()


def test_the_envelope_carries_the_key_a_reply_came_with() -> None:
    sent = Envelope(Verb.QUARANTINE, Key(3, 1, 0), 9, mark=b"K" * 40)
    got = decode(encode(sent))
    assert (got.verb, got.key, got.worker, got.mark) == (Verb.QUARANTINE, Key(3, 1, 0), 9,
                                                         b"K" * 40)
