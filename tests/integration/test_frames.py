"""The frame publisher and its watchers over a real PUB/SUB pair on loopback: deltas
rebuild every generation exactly, and a late joiner gets a full frame at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zmq

from server import publisher as publisher_module
from server.publisher import FULL_EVERY, FramePublisher
from shared.frames import FrameView
from shared.grid import Grid, pack_words
from shared.kernel import step_grid
from shared.rle import parse_rle
from shared.rules import CONWAY
from tests.conftest import PATTERNS, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def publisher() -> Iterator[tuple[zmq.Context[Any], FramePublisher]]:
    context: zmq.Context[Any] = zmq.Context()
    pub = FramePublisher(context, "tcp://127.0.0.1:0")
    yield context, pub
    pub.close()
    context.destroy(linger=0)


def gun_world() -> Grid:
    """A Gosper gun in two players' colours: a few cells change every generation."""
    gun = parse_rle((PATTERNS / "gosper-gun.rle").read_text())
    grid = Grid(48, 64)
    grid.codes[2:2 + gun.height, 2:2 + gun.width] = gun.codes * 2
    right = grid.codes[2:2 + gun.height, 20:2 + gun.width]
    right[right == 2] = 3  # the right part: player 2
    return grid


def info(gen: int) -> dict[str, Any]:
    return {"population": gen, "ms": 0.0, "workers": 1, "rule": "B3/S23"}


def test_deltas_rebuild_every_generation_and_a_late_joiner_gets_a_full_frame_at_once(
        publisher: tuple[zmq.Context[Any], FramePublisher],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every subscriber rebuilds every generation from deltas; one that joins late gets
    full frames at once (for a moment after its handshake: its subscription travels
    after it), not at the next periodic full frame 14 generations later."""
    monkeypatch.setattr(publisher_module, "JOIN_FULL_SECONDS", 0.0)  # deltas at once
    monkeypatch.setattr(publisher_module, "JOIN_COOLDOWN", 0.0)
    context, pub = publisher
    world = gun_world()
    early = FrameView(pub.endpoint, context)
    late: FrameView | None = None
    try:
        # PUB drops what it sends before the subscription arrives: send until it has.
        def first_frame() -> bool:
            pub.publish(0, world.codes, info(0))
            return early.poll(0.05)

        wait_for(first_frame, 10, what="the first subscriber's first frame")
        late_from = 0
        for gen in range(1, 3 * FULL_EVERY):
            world = step_grid(world, CONWAY)
            if gen == 50:  # the server's window: its subscription arrives within it
                monkeypatch.setattr(publisher_module, "JOIN_FULL_SECONDS", 0.25)
                late = FrameView(pub.endpoint, context)
                wait_for(pub.notice_joins, 5, what="the late subscriber's handshake")
            pub.publish(gen, world.codes, info(gen))
            if late is not None and not late_from and late.poll(0.05):
                late_from = gen  # its first frame: full, the generation just published
            for view in (early, late if late_from else None):
                if view is None:
                    continue
                wait_for(lambda v=view, g=gen: (v.poll(0.05), v.gen == g)[1], 5,  # type: ignore[misc]
                         what=f"generation {gen}")
                assert view.codes is not None
                assert np.array_equal(view.codes, world.codes), f"generation {gen}"
                assert view.info["population"] == gen
        assert late is not None and 50 <= late_from <= 55, f"late from {late_from}"
        assert late.frames >= 3 * FULL_EVERY - late_from  # every one since
        # Deltas between the full frames: the periodic ones, and a moment's worth after
        # each joiner's handshake (generations here are a millisecond or two apart).
        assert pub.deltas > FULL_EVERY
        assert early.frames == 3 * FULL_EVERY  # every one, applied in order
        assert len(set(np.unique(world.codes).tolist()) - {0}) >= 2  # owners travel too
    finally:
        early.close()
        if late is not None:
            late.close()


def test_a_viewer_reconnecting_over_and_over_cannot_make_every_frame_full(
        publisher: tuple[zmq.Context[Any], FramePublisher]) -> None:
    """Each join is owed full frames for a moment, but one such window opens every 2 s
    at most: a viewer that reconnects every 50 ms, for 3 s of generations 10 ms apart,
    turns a bounded share of them into full frames, not all."""
    context, pub = publisher
    world = gun_world()
    viewer: FrameView | None = None
    began = time.monotonic()
    gen = 0
    try:
        while time.monotonic() - began < 3.0:
            if gen % 5 == 0:  # a new connection, a new handshake
                if viewer is not None:
                    viewer.close()
                viewer = FrameView(pub.endpoint, context)
            world = step_grid(world, CONWAY)
            pub.publish(gen, world.codes, info(gen))
            gen += 1
            time.sleep(0.01)  # the server's tick: generations 10 ms apart
    finally:
        if viewer is not None:
            viewer.close()
    assert pub.joins >= 20, "the reconnections were not seen"
    # Two windows of 0.25 s (at 0 and 2 s) and the periodic ones: well under half.
    assert pub.full_frames < 0.4 * gen, f"{pub.full_frames} full frames of {gen}"


def test_until_a_viewer_comes_no_whole_world_frame_is_made(
        publisher: tuple[zmq.Context[Any], FramePublisher]) -> None:
    """A server watched only through viewports (or not at all) spends nothing on the
    whole-world stream: no frame or delta is made until a viewer of it has finished its
    handshake; the first one gets a full frame at once."""
    context, pub = publisher
    world = gun_world()
    for gen in range(5):
        pub.publish(gen, world.codes, info(gen))
        world = step_grid(world, CONWAY)
    assert (pub.full_frames, pub.deltas, pub.watched) == (0, 0, False)
    view = FrameView(pub.endpoint, context)
    gen = 5
    deadline = time.monotonic() + 10
    try:
        while view.gen < 0:
            assert time.monotonic() < deadline, "no frame for the viewer"
            pub.publish(gen, world.codes, info(gen))
            view.poll(0.05)
            gen += 1
            world = step_grid(world, CONWAY)
        assert pub.watched and pub.full_frames >= 1
        assert view.codes is not None and view.gen >= 5
    finally:
        view.close()


def test_a_flood_of_raw_connections_to_the_frame_port_makes_no_monitor_event(
        publisher: tuple[zmq.Context[Any], FramePublisher]) -> None:
    """Connections that never finish a handshake (raw TCP connects and closes, as a
    flood would make them) are no events for the publisher's monitor: a full monitor
    queue would hold libzmq's I/O thread, and every socket of the server with it. The
    context's other sockets go on working meanwhile."""
    import socket

    context, pub = publisher
    port = int(pub.endpoint.rsplit(":", 1)[1])
    pull = context.socket(zmq.PULL)
    push = context.socket(zmq.PUSH)
    try:
        pull_port = pull.bind_to_random_port("tcp://127.0.0.1")
        push.connect(f"tcp://127.0.0.1:{pull_port}")
        for _ in range(3000):
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
        push.send(b"still here", zmq.NOBLOCK)
        assert pull.poll(5000), "the context's I/O thread is stuck"
        assert pull.recv() == b"still here"
        assert pub.monitor is not None and not pub.monitor.poll(200)
        assert pub.notice_joins() is False and pub.joins == 0
    finally:
        push.close(linger=0)
        pull.close(linger=0)


def test_a_packed_world_is_published_from_its_words(
        publisher: tuple[zmq.Context[Any], FramePublisher],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Generations held packed (``Grid.bits``): the viewer rebuilds every one from
    deltas found word by word and from full frames, and the worlds stay packed (their
    codes are made only for the full frames)."""
    monkeypatch.setattr(publisher_module, "JOIN_FULL_SECONDS", 0.0)  # deltas at once
    context, pub = publisher
    world = Grid.from_codes(np.minimum(gun_world().codes, 1))
    view = FrameView(pub.endpoint, context)
    try:
        def packed(grid: Grid) -> Grid:
            return Grid(grid.height, grid.width, bits=pack_words(grid.codes))

        def first_frame() -> bool:
            pub.publish(0, packed(world), info(0))
            return view.poll(0.05)

        wait_for(first_frame, 10, what="the first frame")
        for gen in range(1, 2 * FULL_EVERY):
            world = step_grid(world, CONWAY)
            now = packed(world)
            pub.publish(gen, now, info(gen))
            wait_for(lambda g=gen: (view.poll(0.05), view.gen == g)[1], 5,  # type: ignore[misc]
                     what=f"generation {gen}")
            assert view.codes is not None
            assert np.array_equal(view.codes, world.codes), f"generation {gen}"
            assert now.packed
        assert pub.deltas > FULL_EVERY
    finally:
        view.close()
