"""Hostile bytes on the worker and player endpoints: error replies, drops, nothing else."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq

from shared import protocol
from shared.life import simulate
from shared.protocol import ErrorCode, Kind
from tests.conftest import Processes, wait_for
from tests.integration.conftest import MakeServer, send_oversize, start_workers
from tests.integration.test_distributed import random_world

pytestmark = pytest.mark.integration


def ask(sock: zmq.Socket[Any], frames: Sequence[bytes | memoryview],
        timeout: float = 3.0) -> protocol.Message:
    sock.send_multipart(frames)
    assert sock.poll(int(timeout * 1000)), "no reply"
    return protocol.decode(sock.recv_multipart())


def packed(kind: Any, body: Any) -> bytes:
    data: bytes = msgpack.packb([kind, body])
    return data


BAD_FRAMES: list[tuple[list[bytes], ErrorCode]] = [
    ([b"\x00\xff garbage \xfe"], ErrorCode.MALFORMED),
    ([packed("ready", {"version": 1, "name": "x"})[:-4]], ErrorCode.MALFORMED),
    ([packed("ready", {"version": "1", "name": "w", "pid": 1, "credit": 2,
                       "io_latency": 0.0})], ErrorCode.BAD_FIELD),
    ([packed("ready", {"version": 1, "name": "w", "pid": True, "credit": 2,
                       "io_latency": 0.0})], ErrorCode.BAD_FIELD),
    ([packed("reboot", {})], ErrorCode.UNKNOWN_KIND),
    ([packed("result", {"gen": 0, "batch": 0, "attempt": 0, "h": 1, "w": 1}), b"\x01"],
     ErrorCode.UNKNOWN_PEER),
    ([packed("status", {"version": 1})], ErrorCode.UNKNOWN_PEER),
    ([packed("ready", {"version": 99, "name": "w", "pid": 1, "credit": 2,
                       "io_latency": 0.0})], ErrorCode.VERSION),
    ([packed("heartbeat", {}), b"1", b"2", b"3"], ErrorCode.MALFORMED),
]


def test_worker_endpoint_survives_bad_input(make_server: MakeServer, processes: Processes,
                                            zmq_context: zmq.Context[Any]) -> None:
    server = make_server(size=(24, 24), tile=(6, 24))
    start_workers(processes, server, 1)
    expected = random_world(server, seed=9)
    hostile = zmq_context.socket(zmq.DEALER)
    hostile.setsockopt(zmq.LINGER, 0)
    hostile.connect(server.broker.bound_endpoint)
    for frames, code in BAD_FRAMES:
        reply = ask(hostile, frames)
        assert reply.kind is Kind.ERROR and reply["code"] == code, (frames, reply.body)
    # A result for a batch nobody asked for, from a peer that did the handshake.
    reply = ask(hostile, protocol.encode(protocol.message(
        Kind.READY, version=protocol.PROTOCOL_VERSION, name="liar", pid=1, credit=1,
        io_latency=0.0)))
    assert reply.kind is Kind.WELCOME
    hostile.send_multipart(protocol.encode(protocol.message(
        Kind.RESULT, [bytes(24 * 6)], gen=0, batch=0, attempt=0, h=6, w=24)))
    hostile.send_multipart(protocol.encode(protocol.message(Kind.BYE, reason="done")))
    hostile.close()
    # Oversize: more than the socket's limit; ZeroMQ drops that connection.
    assert send_oversize(zmq_context, server.broker.bound_endpoint, [
        packed("heartbeat", {}),
        bytes(protocol.MAX_PAYLOAD_BYTES + protocol.MAX_HEADER_BYTES + 1)]) == "dropped"
    wait_for(lambda: server.broker.worker_count() == 1, 5, what="the liar to leave")
    assert server.broker.bad_messages >= 5
    # The world is what the reference says, and the loop goes on.
    for _ in range(3):
        expected = simulate(expected, server.rule)
        assert server.engine.step() == expected
    assert server.broker.is_alive()


def test_player_endpoint_survives_bad_input(make_server: MakeServer,
                                            zmq_context: zmq.Context[Any]) -> None:
    server = make_server(size=(8, 8))
    sock = zmq_context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.lobby.bound_endpoint)
    for frames, code in [([b"junk"], ErrorCode.MALFORMED),
                         ([packed("launch", {})], ErrorCode.UNKNOWN_KIND),
                         ([packed("batch", {})], ErrorCode.BAD_FIELD),
                         ([packed("status", {"version": 99})], ErrorCode.VERSION),
                         ([packed("heartbeat", {})], ErrorCode.NOT_ALLOWED)]:
        reply = ask(sock, frames)
        assert reply.kind is Kind.ERROR and reply["code"] == code, reply.body
    reply = ask(sock, protocol.encode(protocol.message(Kind.STATUS,
                                                       version=protocol.PROTOCOL_VERSION)))
    assert reply.kind is Kind.STATUS_REPLY and reply["size"] == [8, 8]
    sock.close()
    assert server.lobby.is_alive()


def test_a_result_counts_once_and_never_for_another_generation(
        make_server: MakeServer, zmq_context: zmq.Context[Any]) -> None:
    """A worker written by hand answers each batch twice, and during generation 1 sends
    a wrong answer for generation 0's batch first: only the first right answer of each
    generation is applied."""
    from server.worker import Worker, WorkerConfig

    server = make_server(size=(12, 12), tile=(12, 12), heartbeat=1.0)
    expected = random_world(server, seed=21)
    sock = hand_written_worker(server, zmq_context, "twice")
    computer = Worker(WorkerConfig(connect=""))

    def next_batch() -> protocol.Message:
        while True:
            assert sock.poll(5000), "no batch"
            msg = protocol.decode(sock.recv_multipart())
            if msg.kind is Kind.BATCH:
                return msg

    stale: protocol.Message | None = None
    for gen in range(2):
        errors: list[BaseException] = []
        thread = threading.Thread(target=_step, args=(server, errors))
        thread.start()
        batch = next_batch()
        assert batch["gen"] == gen
        answer = computer.compute(batch)
        if stale is not None:
            sock.send_multipart(protocol.encode(stale))  # generation 0's, now wrong
        sock.send_multipart(protocol.encode(answer))
        sock.send_multipart(protocol.encode(answer))  # the same answer again
        thread.join(10)
        assert not thread.is_alive() and not errors, errors
        expected = simulate(expected, server.rule)
        assert server.engine.grid == expected
        # Generation 0's answer, with every cell flipped, for the next round.
        flipped = np.frombuffer(answer.payloads[0], dtype=np.uint8) ^ 0xFF
        stale = protocol.message(Kind.RESULT, [flipped.tobytes()], **answer.body)
    sock.send_multipart(protocol.encode(protocol.message(Kind.BYE, reason="done")))
    sock.close()
    assert server.broker.is_alive()


def hand_written_worker(server: Any, context: zmq.Context[Any], name: str) -> zmq.Socket[Any]:
    """A DEALER that has done a worker's handshake (credit 4): the test speaks for it."""
    sock: zmq.Socket[Any] = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.broker.bound_endpoint)
    reply = ask(sock, protocol.encode(protocol.message(
        Kind.READY, version=protocol.PROTOCOL_VERSION, name=name, pid=1, credit=4,
        io_latency=0.0)))
    assert reply.kind is Kind.WELCOME
    return sock


def _step(server: Any, errors: list[BaseException]) -> None:
    try:
        server.engine.step()
    except BaseException as e:
        errors.append(e)


def test_a_late_answer_from_a_timed_out_attempt_is_ignored_in_a_later_generation(
        make_server: MakeServer, processes: Processes,
        zmq_context: zmq.Context[Any]) -> None:
    """A hand-written worker takes generation 0's batch and stalls past the batch timeout;
    the batch is re-sent to a real worker; the stalled one then answers, wrongly, while
    the one dispatcher is about to wait for generation 1: ignored."""
    from server.worker import Worker, WorkerConfig

    server = make_server(size=(12, 12), tile=(12, 12), heartbeat=5.0, batch_timeout=0.5,
                         dispatchers=1)
    expected = random_world(server, seed=23)
    sock = hand_written_worker(server, zmq_context, "slow")
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _step(server, errors))
    thread.start()
    assert sock.poll(5000)
    batch = protocol.decode(sock.recv_multipart())
    assert batch.kind is Kind.BATCH and batch["gen"] == 0
    wait_for(lambda: server.engine.resent >= 1, 5, what="the batch timeout and a re-send")
    start_workers(processes, server, 1)
    thread.join(20)
    assert not thread.is_alive() and not errors, errors
    expected = simulate(expected, server.rule)
    assert server.engine.grid == expected
    # The stalled worker's answer to generation 0 arrives now: right for generation 0,
    # so it passes every check on its contents; only its generation tells it is stale.
    sock.send_multipart(protocol.encode(Worker(WorkerConfig(connect="")).compute(batch)))
    for _ in range(2):
        expected = simulate(expected, server.rule)
        assert server.engine.step() == expected
    sock.send_multipart(protocol.encode(protocol.message(Kind.BYE, reason="done")))
    sock.close()
