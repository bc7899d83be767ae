"""Viewports without sockets: which chunks a region shows, and the server's wanted set."""

from __future__ import annotations

import pytest

from server.viewports import KEYFRAME_COOLDOWN, WANT_SECONDS, Interest
from shared.errors import ProtocolError
from shared.protocol import ErrorCode
from shared.viewport import chunks_in


def test_a_region_shows_the_chunks_it_touches_on_the_torus() -> None:
    assert chunks_in(0, 0, 64, 64, 200, 300) == [(0, 0)]
    assert chunks_in(0, 0, 65, 64, 200, 300) == [(0, 0), (1, 0)]
    assert chunks_in(63, 63, 2, 2, 200, 300) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    # across both seams: the last (smaller) chunks and the first ones
    assert chunks_in(195, 295, 10, 10, 200, 300) == [(0, 0), (0, 4), (3, 0), (3, 4)]
    # larger than the world: every chunk, once
    assert len(chunks_in(5, 5, 1000, 1000, 200, 300)) == 4 * 5


def test_the_wanted_set_keeps_a_chunk_a_while_and_owes_keyframes_once_a_cooldown() -> None:
    interest = Interest(200, 300)
    assert interest.want([[0, 0], [3, 4], [0, 0]], now=100.0) == 2
    wanted, due = interest.take(now=100.0)
    assert wanted.tolist() == [0, 19] and due.tolist() == [True, True]  # new: keyframes
    assert interest.take(now=100.01)[1].tolist() == [False, False]      # owed once
    interest.want([[0, 0]], fresh=[[0, 0]], now=100.05)  # fresh again, within the cooldown
    assert interest.take(now=100.06)[1].tolist() == [False, False]
    assert interest.take(now=100.0 + KEYFRAME_COOLDOWN)[1].tolist() == [True, False]
    # the chunk not renewed lapses; wanted again, it is owed a keyframe anew
    later = 100.0 + WANT_SECONDS + 0.01
    assert interest.take(now=later)[0].tolist() == [0]
    interest.want([[3, 4]], now=later)
    assert interest.take(now=later)[1].tolist() == [False, True]


@pytest.mark.parametrize("chunks, fresh", [([[4, 0]], []), ([[0, 5]], []), ([[0, 0]], [[9, 0]])])
def test_a_chunk_outside_the_world_is_refused_whole(chunks: list[list[int]],
                                                    fresh: list[list[int]]) -> None:
    interest = Interest(200, 300)
    with pytest.raises(ProtocolError, match="outside the world"):
        interest.want([[1, 1], *chunks], fresh)
    assert interest.wanted() == 0 and interest.take()[0].size == 0


def test_the_chunks_wanted_at_once_are_capped_whoever_asks() -> None:
    """At most ``limit`` chunks are wanted at once: a VIEW that would add more is BUSY
    and changes nothing; renewing wanted chunks always works; lapsed ones free room."""
    interest = Interest(512, 512, limit=4)  # 8x8 chunks of 64
    assert interest.want([[0, 0], [0, 1], [1, 0]], now=0.0) == 3
    with pytest.raises(ProtocolError) as refused:
        interest.want([[5, 5], [6, 6]], now=1.0)
    assert refused.value.code == ErrorCode.BUSY and "at most 4 chunks" in str(refused.value)
    wanted, _ = interest.take(now=1.0)
    assert len(wanted) == 3  # the refused request changed nothing
    assert interest.want([[0, 0], [0, 1], [1, 0], [5, 5]], now=2.0) == 4  # room for one
    assert interest.want([[0, 0], [0, 1], [1, 0], [5, 5]], fresh=[[5, 5]], now=3.0) == 4
    with pytest.raises(ProtocolError):
        interest.want([[7, 7]], now=3.0)
    assert interest.want([[7, 7]], now=100.0) == 1  # the others lapsed
