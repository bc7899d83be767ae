"""The browser gateway's pieces without sockets: its binary messages, a slow tab's
bounded queue, and what a tab may send."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from client.web import encoding, inputs
from client.web.feed import Generation
from client.web.gateway import xterm_rgb
from client.web.tabs import MAX_CACHED, Encodings, Tab
from shared.colours import PLAYERS


def world(shape: tuple[int, int], dtype: Any, seed: int = 1) -> Any:
    rng = np.random.default_rng(seed)
    top = 70000 if dtype == np.uint16 else 256
    return rng.integers(0, top, shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_key_and_a_delta_read_back_into_the_world(dtype: Any) -> None:
    before = world((20, 30), dtype)
    after = before.copy()
    after[3, 4] = 9
    after[19, 29] = 300 if dtype == np.uint16 else 200  # wide codes keep their width
    info = encoding.info_bytes({"gen": 8, "board": [[1, "alice", 5]]})
    key = encoding.decode(encoding.encode_key(7, before, encoding.whole((20, 30)), info))
    assert (key.kind, key.gen, key.shape, key.info["board"]) == (encoding.KEY, 7, (20, 30),
                                                                 [[1, "alice", 5]])
    held = encoding.apply(None, key)
    assert held is not None and np.array_equal(held, before)
    changed = np.flatnonzero(before != after)
    delta = encoding.decode(encoding.encode_delta(
        8, 7, (20, 30), encoding.whole((20, 30)), changed, after.ravel()[changed], info))
    assert delta.base == 7 and delta.cells.dtype.itemsize == np.dtype(dtype).itemsize
    again = encoding.apply(held, delta)
    assert again is not None and np.array_equal(again, after)


def test_a_region_wraps_on_the_torus_and_a_delta_keeps_only_its_cells() -> None:
    codes = world((16, 16), np.uint8)
    region = (14, 13, 4, 5)  # across both seams
    key = encoding.decode(encoding.encode_key(1, codes, region, b""))
    rows, cols = [14, 15, 0, 1], [13, 14, 15, 0, 1]
    assert np.array_equal(key.cells, codes[np.ix_(rows, cols)])
    index = np.array([14 * 16 + 13, 1 * 16 + 1, 5 * 16 + 5, 0 * 16 + 15])
    assert encoding.in_region(index, (16, 16), region).tolist() == [True, True, False, True]


def test_the_header_is_what_the_page_reads() -> None:
    data = encoding.encode_key(3, np.zeros((2, 3), np.uint16), (0, 0, 2, 3), b"{}  ")
    assert data[0] == encoding.KEY and data[1] == 2
    assert len(data) == 32 + 4 + 2 * 6
    assert encoding.info_bytes({"a": 1})[-1:] in (b" ", b"}")
    assert len(encoding.info_bytes({"a": 1})) % 4 == 0


def test_a_player_colour_as_the_page_paints_it() -> None:
    assert xterm_rgb(16) == "#000000" and xterm_rgb(231) == "#ffffff"
    assert xterm_rgb(244) == "#808080"
    assert len({xterm_rgb(c) for c in PLAYERS}) == len(PLAYERS)


class FakeSocket:
    closed = False


def generation(gen: int, base: int, codes: Any) -> Generation:
    changed = None if base < 0 else np.arange(3)
    return Generation(gen, codes, {"gen": gen}, base, changed)


def test_a_slow_tab_drops_its_queue_and_gets_a_key() -> None:
    async def run() -> None:
        tab = Tab(FakeSocket(), "127.0.0.1", max_frames=3)  # type: ignore[arg-type]
        codes = np.zeros((4, 4), np.uint8)
        tab.offer(Encodings(generation(1, -1, codes)))
        for gen in range(2, 4):
            tab.offer(Encodings(generation(gen, gen - 1, codes)))
        kinds = [encoding.decode(m).kind for m in tab.frames]
        assert kinds == [encoding.KEY, encoding.DELTA, encoding.DELTA]
        tab.offer(Encodings(generation(4, 3, codes)))  # nobody read: full
        assert tab.dropped == 1 and len(tab.frames) == 1
        assert encoding.decode(tab.frames[0]).kind == encoding.KEY
        for gen in range(5, 100):  # however long it stays slow, the queue stays bounded
            tab.offer(Encodings(generation(gen, gen - 1, codes)))
            assert len(tab.frames) <= 3
        for n in range(1000):
            tab.event({"type": "standing", "n": n})
        assert len(tab.events) == 256

    asyncio.run(run())


def test_encodings_are_made_once_per_region() -> None:
    codes = np.zeros((8, 8), np.uint8)
    made = Encodings(generation(2, 1, codes))
    assert made.delta((0, 0, 8, 8)) is made.delta((0, 0, 8, 8))
    assert made.key((1, 1, 2, 2)) is made.key((1, 1, 2, 2))


def test_a_tab_naming_region_after_region_does_not_grow_a_generations_cache() -> None:
    """A tab may say a new ``view`` fifty times a second; while one generation lasts
    (a slow or paused server) the gateway keeps the last ``MAX_CACHED`` regions'
    messages, not all of them."""
    codes = np.zeros((64, 64), np.uint8)
    made = Encodings(generation(2, 1, codes))
    for y in range(200):
        made.key((y % 64, 0, 32, 32))
        made.delta((y % 64, 1, 32, 32))
    assert len(made.keys) == MAX_CACHED and len(made.deltas) == MAX_CACHED
    assert (63, 0, 32, 32) in made.keys  # the newest stay


PATTERNS = {"glider", "blinker"}


@pytest.mark.parametrize(("text", "why"), [
    ("[1]", "an object with a type"),
    ('{"type": "place", "pattern": "glider", "y": 1.5, "x": 0}', "integer"),
    ('{"type": "place", "pattern": "glider", "y": 0, "x": 64}', "outside"),
    ('{"type": "place", "pattern": "gun", "y": 0, "x": 0}', "library"),
    ('{"type": "place", "pattern": "glider", "y": 0, "x": 0, "rle": "o!"}', "unknown field"),
    ('{"type": "place", "pattern": "glider", "y": 0, "x": 0, "rotate": 4}', "outside"),
    ('{"type": "place", "pattern": "glider", "y": 0, "x": 0, "flip": 1}', "true or false"),
    ('{"type": "join", "name": "' + "a" * 40 + '"}', "not a name"),
    ('{"type": "join", "name": "a\\u0007"}', "printable"),
    ('{"type": "join", "name": "a", "policy": "cheat"}', "policy"),
    ('{"type": "view", "y": 0, "x": 0, "h": 0, "w": 5}', "outside"),
    ('{"type": "leave", "extra": 1}', "unknown field"),
    ("x" * 5000, "longer"),
])
def test_what_a_tab_sends_is_checked(text: str, why: str) -> None:
    with pytest.raises(inputs.BadInput, match=why):
        inputs.parse(text, (48, 64), PATTERNS)


def test_good_requests_parse() -> None:
    place = inputs.parse('{"type": "place", "pattern": "glider", "y": 47, "x": 63, '
                         '"rotate": 3, "flip": true}', (48, 64), PATTERNS)
    assert place == inputs.PlaceAsk("glider", 47, 63, 3, True)
    join = inputs.parse('{"type": "join", "name": "alice", "token": "00ff"}', None, PATTERNS)
    assert join == inputs.Join("alice", "00ff", "follow")
    with pytest.raises(inputs.BadInput, match="no world yet"):
        inputs.parse('{"type": "view", "y": 0, "x": 0, "h": 1, "w": 1}', None, PATTERNS)
