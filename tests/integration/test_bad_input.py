"""Hostile bytes on the worker and player endpoints: error replies, drops, nothing else."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
import zmq

from shared import protocol
from shared.life import simulate
from shared.protocol import ErrorCode, Kind
from tests.conftest import Processes, wait_for
from tests.integration.conftest import MakeServer, send_oversize, start_workers
from tests.integration.test_distributed import random_world

pytestmark = pytest.mark.integration


def ask(sock: zmq.Socket[Any], frames: list[bytes], timeout: float = 3.0) -> protocol.Message:
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
        Kind.READY, version=1, name="liar", pid=1, credit=1, io_latency=0.0)))
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
                         ([packed("status", {"version": 2})], ErrorCode.VERSION),
                         ([packed("heartbeat", {})], ErrorCode.NOT_ALLOWED)]:
        reply = ask(sock, frames)
        assert reply.kind is Kind.ERROR and reply["code"] == code, reply.body
    reply = ask(sock, protocol.encode(protocol.message(Kind.STATUS, version=1)))
    assert reply.kind is Kind.STATUS_REPLY and reply["size"] == [8, 8]
    sock.close()
    assert server.lobby.is_alive()
