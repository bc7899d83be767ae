"""Viewports over real sockets: a viewer gets the chunks it shows, and only those."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq

from server.app import Server
from server.viewports import KEYFRAME_COOLDOWN
from shared import protocol
from shared.frames import FrameView
from shared.protocol import CHUNK, ErrorCode, Kind
from shared.viewport import Chunk, Viewport, chunks_in
from tests.conftest import Processes, wait_for
from tests.integration.conftest import MakeServer, start_workers

pytestmark = pytest.mark.integration

SIZE = (200, 300)  # 4 x 5 chunks, the last row 8 cells high and the last column 44 wide


@pytest.fixture
def world(make_server: MakeServer, processes: Processes) -> Server:
    server = make_server(size=SIZE, fill=0.35, seed=7, tile=(50, 300))
    start_workers(processes, server, 2)
    return server


@pytest.fixture
def viewports(world: Server) -> Iterator[list[Viewport]]:
    made: list[Viewport] = []
    yield made
    for v in made:
        v.close()


def viewport(world: Server, made: list[Viewport]) -> Viewport:
    v = Viewport(world.view_endpoint, world.lobby.bound_endpoint, SIZE)
    made.append(v)
    return v


def chunk_of(codes: np.ndarray, chunk: Chunk) -> np.ndarray:
    cy, cx = chunk
    return codes[cy * CHUNK:(cy + 1) * CHUNK, cx * CHUNK:(cx + 1) * CHUNK]


def look(v: Viewport, y: int, x: int, h: int, w: int) -> None:
    """Move ``v`` and wait until the server has taken its VIEW."""
    acks = v.acks
    v.view(y, x, h, w)
    wait_for(lambda: v.poll(0.02) or v.acks > acks, 5, what="the VIEW's answer")
    assert v.error is None, v.error


def caught_up(v: Viewport, gen: int, timeout: float = 5.0) -> None:
    """Poll ``v`` until every chunk it shows is at ``gen``."""
    deadline = time.monotonic() + timeout
    while any(v.gens.get(c) != gen for c in v.chunks) or v.gen != gen:
        assert time.monotonic() < deadline, \
            f"chunks {[(c, v.gens.get(c)) for c in v.chunks]}, info {v.gen}, want {gen}"
        v.poll(0.02)


def topics_of(v: Viewport) -> set[Chunk]:
    return {divmod(i, v.cols) for i in v.topics}


def test_a_viewport_rebuilds_its_chunks_exactly_while_moving_across_the_seam(
        world: Server, viewports: list[Viewport]) -> None:
    v = viewport(world, viewports)
    # a walk of 40x60-cell regions, wrapping over both seams of the torus
    path = [(10, 10), (60, 100), (150, 250), (180, 280), (190, 150), (5, 290), (100, 0),
            (170, 20)]
    shown: set[Chunk] = set()
    rows, cols = protocol.chunks_of(*SIZE)
    for i, (y, x) in enumerate(path):
        look(v, y, x, 40, 60)
        shown |= set(v.chunks)
        # a chunk shown again (it was left a moment ago) had a keyframe less than a
        # cooldown ago: its next one waits for the cooldown's end
        time.sleep(KEYFRAME_COOLDOWN)
        for _ in range(4):
            world.advance()
            gen = world.engine.generation
            caught_up(v, gen)
            codes = world.engine.latest.grid.codes
            for chunk in v.chunks:
                assert np.array_equal(v.codes[chunk], chunk_of(codes, chunk)), (i, chunk, gen)
            region = v.cells(y, x, 40, 60)
            ys, xs = (y + np.arange(40)) % SIZE[0], (x + np.arange(60)) % SIZE[1]
            assert np.array_equal(region, codes[np.ix_(ys, xs)])
        if (y, x) == (180, 280):  # across both seams: chunks of all four corners
            assert {(0, 0), (0, cols - 1), (rows - 1, 0), (rows - 1, cols - 1)} \
                <= set(v.chunks)
    assert v.refused == 0
    # nothing of a chunk never shown came (and the walk left some out)
    assert topics_of(v) <= shown < {(cy, cx) for cy in range(rows) for cx in range(cols)}
    assert v.deltas > v.keyframes  # deltas between the keyframes, not keyframes only


def test_a_moved_viewport_gets_keyframes_of_its_new_chunks_at_once(
        world: Server, viewports: list[Viewport]) -> None:
    v = viewport(world, viewports)
    look(v, 0, 0, 60, 60)  # chunk (0, 0)
    for _ in range(3):
        world.advance()
    caught_up(v, world.engine.generation)
    # a chunk not wanted by anyone: its keyframe comes with the next publish
    look(v, 64, 128, 60, 60)
    world.advance()
    caught_up(v, world.engine.generation, timeout=2)
    assert v.chunks == [(1, 2)] and (1, 2) in v.codes
    # a chunk another viewer already wants (so it is not new to the server): this
    # viewer names it fresh, and its keyframe comes within two publishes all the same
    other = viewport(world, viewports)
    look(other, 130, 200, 50, 50)  # chunk (2, 3)
    world.advance()
    caught_up(other, world.engine.generation)
    time.sleep(KEYFRAME_COOLDOWN)  # the last keyframe it got is older than the cooldown
    look(v, 130, 200, 50, 50)
    published = 0
    while (2, 3) not in v.codes:
        assert published < 2, "no keyframe of the new chunk within two publishes"
        world.advance()
        published += 1
        v.poll(0.2)
    caught_up(v, world.engine.generation)
    assert np.array_equal(v.codes[(2, 3)], chunk_of(world.engine.latest.grid.codes, (2, 3)))


def test_a_viewport_costs_what_it_views_not_the_world(
        world: Server, viewports: list[Viewport], zmq_context: zmq.Context[Any]) -> None:
    whole = FrameView(world.frame_endpoint, zmq_context)
    counted = zmq_context.socket(zmq.SUB)  # the whole-world stream's bytes, as sent
    counted.setsockopt(zmq.SUBSCRIBE, protocol.WORLD_TOPIC)
    counted.connect(world.frame_endpoint)
    try:
        v = viewport(world, viewports)
        look(v, 70, 70, 40, 40)  # one chunk: (1, 1)
        time.sleep(0.2)
        before = v.bytes
        world_bytes = 0
        for _ in range(40):
            world.advance()
            gen = world.engine.generation
            caught_up(v, gen)
            wait_for(lambda: whole.poll(0.02) or whole.gen == world.engine.generation, 5)
            while counted.poll(0):
                world_bytes += sum(len(f) for f in counted.recv_multipart())
        mine = (v.bytes - before) / 40
        print(f"viewport of one chunk: {mine:.0f} B a generation; whole world "
              f"{world_bytes / 40:.0f} B")
        assert topics_of(v) == {(1, 1)}
        assert mine < world_bytes / 40 / 4
    finally:
        counted.close()
        whole.close()


def ask(sock: zmq.Socket[Any], body: Any, kind: str = "view") -> protocol.Message:
    sock.send_multipart([msgpack.packb([kind, body])])
    assert sock.poll(5000), "no answer"
    return protocol.decode(sock.recv_multipart())


def test_a_hostile_view_is_refused_and_changes_nothing(
        world: Server, zmq_context: zmq.Context[Any]) -> None:
    sock = zmq_context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(world.lobby.bound_endpoint)
    interest = world.interest
    v = protocol.PROTOCOL_VERSION
    try:
        bad: list[Any] = [
            {"version": v, "chunks": [[4, 0]]},            # a row of chunks past the world
            {"version": v, "chunks": [[0, 5]]},            # a column past it
            {"version": v, "chunks": [[0, 0]], "fresh": [[9, 9]]},
            {"version": v, "chunks": [[-1, 0]]},
            {"version": v, "chunks": [[0.5, 0]]},
            {"version": v, "chunks": [[True, 0]]},
            {"version": v, "chunks": [[0]]},
            {"version": v, "chunks": "everything"},
            {"version": v, "chunks": [[0, 0]] * 2000},     # thousands of chunks
            {"version": v, "chunks": [[0, 0]], "extra": 1},
            {"chunks": [[0, 0]]},
        ]
        for body in bad:
            reply = ask(sock, body)
            assert reply.kind is Kind.ERROR and reply["code"] == ErrorCode.BAD_FIELD, \
                (body if len(str(body)) < 200 else "2000 chunks", reply.body)
            assert "chunk" in reply["reason"] or "field" in reply["reason"]
        reply = ask(sock, {"version": v, "chunks": [[0, 0]] * 5000})  # msgpack's own limit
        assert reply.kind is Kind.ERROR and reply["code"] == ErrorCode.MALFORMED
        reply = ask(sock, {"version": v + 1, "chunks": [[0, 0]]})
        assert reply.kind is Kind.ERROR and reply["code"] == ErrorCode.VERSION
        assert interest.wanted() == 0 and interest.requests == 0  # nothing was taken
        # a flood of valid ones: the endpoint's bucket drops most, and the wanted set is
        # never more than the world's chunks
        every = [[cy, cx] for cy in range(interest.rows) for cx in range(interest.cols)]
        throttled = world.lobby.throttled
        for _ in range(2000):
            sock.send_multipart(protocol.encode(protocol.message(
                Kind.VIEW, version=v, chunks=every, fresh=every)))
        wait_for(lambda: world.lobby.throttled > throttled, 5, what="the flood throttled")
        assert interest.wanted() == len(every) == 20
        assert len(interest._until) == len(every)
        # and the keyframes asked over and over come once a cooldown a chunk at most
        assert world.publisher is not None and world.publisher.views is not None
        views = world.publisher.views
        owed, began = views.owed_frames, time.monotonic()
        for _ in range(10):
            world.advance()
        elapsed = time.monotonic() - began
        got = views.owed_frames - owed
        assert got <= 20 * (1 + elapsed / KEYFRAME_COOLDOWN), (got, elapsed)
    finally:
        sock.close()


def test_the_clients_network_thread_watches_only_the_region_shown_in_a_large_world(
        make_server: MakeServer, processes: Processes) -> None:
    from client.network import VIEWPORT_ABOVE, Network

    size = (576, 640)  # above VIEWPORT_ABOVE: 9 x 10 chunks
    assert size[0] * size[1] > VIEWPORT_ABOVE
    server = make_server(size=size, fill=0.3, seed=5, tile=(144, 640))
    start_workers(processes, server, 2)
    network = Network(server.lobby.bound_endpoint, "ada", None, "follow", lambda m: None)
    thread = threading.Thread(target=network.run)
    thread.start()
    try:
        for y, x in [(560, 620), (200, 300)]:  # across both seams, then elsewhere
            network.region = (y, x, 60, 100)
            time.sleep(KEYFRAME_COOLDOWN)
            for _ in range(3):
                server.advance()
                gen = server.engine.generation
                codes = server.engine.latest.grid.codes
                ys, xs = (y + np.arange(60)) % size[0], (x + np.arange(100)) % size[1]

                def shows(gen: int = gen, codes: np.ndarray = codes,
                          ys: np.ndarray = ys, xs: np.ndarray = xs) -> bool:
                    state = network.take()
                    return state.gen == gen and state.codes is not None and \
                        np.array_equal(state.codes[np.ix_(ys, xs)], codes[np.ix_(ys, xs)])

                wait_for(shows, 10, what=f"generation {gen} of the region at ({y}, {x})")
            state = network.take()
            assert state.codes is not None
            watched = chunks_in(y, x, 60, 100, *size)
            outside = np.ones(size, bool)
            for cy, cx in watched:
                outside[cy * CHUNK:(cy + 1) * CHUNK, cx * CHUNK:(cx + 1) * CHUNK] = False
            assert not state.codes[outside].any()  # nothing of the chunks not watched
            assert state.info["population"] == server.engine.latest.board.population
    finally:
        network.stop.set()
        thread.join(10)


def test_viewers_together_cannot_make_a_publish_cost_more_than_the_cap(
        make_server: MakeServer, processes: Processes, zmq_context: zmq.Context[Any]) -> None:
    """A viewer asking for every chunk of a 640x640 world (100 chunks) on a server that
    serves 16 at once: BUSY past the cap, never more than 16 chunk messages a publish,
    and a real viewer that asked first keeps renewing its chunks and rebuilding them."""
    server = make_server(size=(640, 640), seed=5, fill=0.3)
    start_workers(processes, server, 1)
    assert server.interest is not None and server.publisher is not None
    server.interest.limit = 16
    real = Viewport(server.view_endpoint, server.lobby.bound_endpoint, (640, 640),
                    zmq_context)
    sock = zmq_context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.lobby.bound_endpoint)
    try:
        look(real, 0, 0, 100, 100)  # 4 chunks
        v = protocol.PROTOCOL_VERSION
        every = [[cy, cx] for cy in range(10) for cx in range(10)]
        reply = ask(sock, {"version": v, "chunks": every})
        assert reply.kind is Kind.ERROR and reply["code"] == ErrorCode.BUSY
        for row in range(3):  # 12 more fit, then no more
            ask(sock, {"version": v, "chunks": every[10 * (row + 5):10 * (row + 5) + 4]})
        assert server.interest.wanted() == 16
        views = server.publisher.views
        assert views is not None
        for _ in range(6):
            sent = views.chunk_frames + views.chunk_deltas
            server.advance()
            assert views.chunk_frames + views.chunk_deltas - sent <= 16
        look(real, 0, 0, 100, 100)  # renewing what it wants always works
        server.advance()
        caught_up(real, server.engine.generation)
        assert len(real.held()) == 4
        for chunk in real.held():
            assert np.array_equal(real.codes[chunk], chunk_of(server.engine.grid.codes, chunk))
    finally:
        sock.close()
        real.close()
