"""``server.direct``: libzmq's calls made with the GIL held, against real sockets: the
same messages, keys and addresses as pyzmq's own calls, and no wait for the GIL beside a
thread busy in Python (the convoy that kept a thousand players' answers waiting)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from server import direct
from server.direct import Direct, Received

pytestmark = pytest.mark.timeout(60)

JOIN = b"\x92\xa4join"
DECIDE = b"\x92\xa6decide"


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def pair(ctx: zmq.Context[Any], server_keys: tuple[bytes, bytes] | None = None,
         client_keys: tuple[bytes, bytes] | None = None) -> tuple[zmq.Socket[Any],
                                                                   zmq.Socket[Any]]:
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    if server_keys is not None:
        router.curve_server = True
        router.curve_publickey, router.curve_secretkey = server_keys
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    if server_keys is not None and client_keys is not None:
        dealer.curve_serverkey = server_keys[0]
        dealer.curve_publickey, dealer.curve_secretkey = client_keys
    dealer.connect(f"tcp://127.0.0.1:{port}")
    return router, dealer


def take(calls: Direct, timeout: float = 5.0) -> Received:
    """The next message ``calls`` reads, polled for (a message crosses the loopback)."""
    deadline = time.monotonic() + timeout
    while True:
        got = calls.recv()
        if got is not None:
            return got
        assert time.monotonic() < deadline, "no message came"
        calls.sock.poll(50)


@pytest.mark.skipif(sys.platform != "linux", reason="the direct calls are checked where "
                    "pyzmq's wheels ship libzmq beside their extension (Linux)")
def test_the_direct_calls_are_there_on_linux() -> None:
    """A silent fallback to pyzmq's calls would bring the convoy back unnoticed."""
    assert direct.available()


@pytest.mark.parametrize("held", [True, False], ids=["direct", "pyzmq"])
def test_both_ways_read_and_write_the_same_messages(context: zmq.Context[Any],
                                                    held: bool) -> None:
    router, dealer = pair(context)
    calls = Direct(router, unaddressed=(DECIDE,), direct=held)
    assert calls.recv() is None  # nothing yet: no wait, no error
    dealer.send_multipart([JOIN + b"...", b"", b"x" * 70_000])
    dealer.send_multipart([DECIDE + b"..."])
    # The same kind spelled otherwise (msgpack's str8): not recognised, so addressed.
    dealer.send_multipart([b"\x92\xd9\x06decide..."])
    joined, decided, odd = take(calls), take(calls), take(calls)
    assert joined.frames[1:] == [JOIN + b"...", b"", b"x" * 70_000]
    assert joined.address == "127.0.0.1" and joined.key is None
    assert decided.frames[1:] == [DECIDE + b"..."]
    assert decided.address == ""  # not read for a DECIDE
    assert odd.address == "127.0.0.1"
    assert decided.frames[0] == joined.frames[0]  # the connection: where replies go
    assert calls.recv() is None
    sent = calls.send(joined.frames[0], [b"head", memoryview(b"payload"), b""])
    assert sent == len(b"head") + len(b"payload")
    assert dealer.poll(5000)
    assert dealer.recv_multipart() == [b"head", b"payload", b""]
    calls.send(b"nobody", [b"lost"])  # a ROUTER drops what has no peer, as pyzmq's send
    with pytest.raises(ValueError):
        calls.send(joined.frames[0], [])  # the identity alone would open a message
    calls.send(joined.frames[0], [b"next"])
    assert dealer.poll(5000) and dealer.recv_multipart() == [b"next"]


@pytest.mark.parametrize("held", [True, False], ids=["direct", "pyzmq"])
def test_the_key_the_gatekeeper_accepted_comes_with_each_message(
        context: zmq.Context[Any], held: bool) -> None:
    auth = ThreadAuthenticator(context)
    auth.start()
    try:
        auth.configure_curve(domain="*", location=zmq.auth.CURVE_ALLOW_ANY)
        server_keys, client_keys = zmq.curve_keypair(), zmq.curve_keypair()
        router, dealer = pair(context, server_keys, client_keys)
        keyed = Direct(router, keyed=True, direct=held)
        dealer.send_multipart([b"hello"])
        got = take(keyed)
        assert got.key == client_keys[0] and got.frames[1:] == [b"hello"]
        unkeyed = Direct(router, direct=held)  # not asked: not read
        dealer.send_multipart([b"again"])
        assert take(unkeyed).key is None
    finally:
        auth.stop()


@pytest.mark.parametrize("held", [True, False], ids=["direct", "pyzmq"])
def test_a_closed_socket_is_an_error_not_an_empty_one(context: zmq.Context[Any],
                                                      held: bool) -> None:
    """Refused before libzmq is called: a closed socket's memory is freed soon after."""
    router, _ = pair(context)
    calls = Direct(router, direct=held)
    router.close()
    with pytest.raises(zmq.ZMQError):
        calls.recv()
    with pytest.raises(zmq.ZMQError):
        calls.send(b"x", [b"y"])


@pytest.mark.parametrize("held", [True, False], ids=["direct", "pyzmq"])
def test_a_terminated_context_is_the_error_pyzmq_raises(held: bool) -> None:
    """The lobby stops on ``ContextTerminated`` (the server's shutdown) both ways."""
    ctx: zmq.Context[Any] = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind("inproc://direct-term")
    calls = Direct(router, direct=held)
    closer = threading.Thread(target=ctx.term)
    closer.start()
    try:
        deadline = time.monotonic() + 5
        while True:  # until the termination reaches the socket
            try:
                if calls.recv() is None:
                    assert time.monotonic() < deadline, "the context never terminated"
                    time.sleep(0.01)
                    continue
            except zmq.ContextTerminated:
                break
        with pytest.raises(zmq.ContextTerminated):
            calls.send(b"x", [b"y"])
    finally:
        router.close()
        closer.join(5)


def test_no_wait_for_the_gil_beside_a_thread_busy_in_python(
        context: zmq.Context[Any]) -> None:
    """Each pyzmq call lets the GIL go and then waits up to a switch interval (5 ms) for
    a busy thread to hand it back; the direct calls keep it. 200 requests read and
    answered beside such a thread: pyzmq's calls take about a switch interval a call
    (seconds in all), the direct ones well under one interval a message."""
    if not direct.available():
        pytest.skip("the direct calls are not available on this platform")
    # Over inproc every request is in the ROUTER's pipe once sent: none is waited for.
    router = context.socket(zmq.ROUTER)
    router.bind("inproc://direct-convoy")
    dealer = context.socket(zmq.DEALER)
    dealer.connect("inproc://direct-convoy")
    calls = Direct(router)
    count = 200
    for i in range(count):
        dealer.send_multipart([b"%d" % i])
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(range(1000))

    spinner = threading.Thread(target=busy)
    spinner.start()
    try:
        began = time.monotonic()
        answered = 0
        while answered < count:
            got = calls.recv()
            assert got is not None
            calls.send(got.frames[0], got.frames[1:])
            answered += 1
        took = time.monotonic() - began
    finally:
        stop.set()
        spinner.join()
    # 400 calls that each waited for the GIL would take 2 s at the 5 ms interval.
    assert took < count * sys.getswitchinterval() / 4, took
