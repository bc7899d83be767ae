"""The wire format: strict decoding, every failure one ProtocolError with a code."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import protocol
from shared.errors import ProtocolError, RemoteError, VersionMismatch
from shared.protocol import ErrorCode, Kind


def header(kind: Any, body: Any) -> bytes:
    packed: bytes = msgpack.packb([kind, body])
    return packed


def batch_body(**changes: Any) -> dict[str, Any]:
    body = dict(gen=1, batch=0, attempt=0, y=0, x=0, h=2, w=3, rule="B3/S23")
    body.update(changes)
    return body


def test_round_trip_with_payload() -> None:
    msg = protocol.message(Kind.BATCH, [bytes(20)], **batch_body())
    decoded = protocol.decode(protocol.encode(msg))
    assert decoded.kind is Kind.BATCH and decoded.body == msg.body
    assert bytes(decoded.payloads[0]) == bytes(20)


def test_arrays_of_any_shape_become_payloads_even_empty_ones() -> None:
    import numpy as np

    from shared.grid import as_payload
    for array in (np.zeros(0, protocol.GAME_LOGIC_CELL), np.zeros((0, 3), np.uint8),
                  np.zeros(4, protocol.GAME_LOGIC_CELL)[::2],
                  np.arange(30, dtype=np.uint8).reshape(3, 10)[:, ::2]):
        msg = protocol.message(Kind.GAME_LOGIC, [as_payload(array)], gen=1,
                               count=array.size * array.itemsize // 5, deadline_ms=50.0)
        decoded = protocol.decode(protocol.encode(msg))
        assert bytes(decoded.payloads[0]) == np.ascontiguousarray(array).tobytes()


@pytest.mark.parametrize("frames, code", [
    ([], ErrorCode.MALFORMED),
    ([b"\xc1garbage"], ErrorCode.MALFORMED),
    ([header("batch", batch_body())[:-3]], ErrorCode.MALFORMED),
    ([msgpack.packb({"kind": "ready"})], ErrorCode.MALFORMED),
    ([header("launch", {})], ErrorCode.UNKNOWN_KIND),
    ([header(7, {})], ErrorCode.MALFORMED),
    ([header("batch", [])], ErrorCode.MALFORMED),
    ([header("batch", batch_body()), bytes(19)], ErrorCode.BAD_FIELD),
    ([header("batch", batch_body())], ErrorCode.MALFORMED),
    ([header("batch", batch_body(h=True)), bytes(20)], ErrorCode.BAD_FIELD),
    ([header("batch", batch_body(h="2")), bytes(20)], ErrorCode.BAD_FIELD),
    ([header("batch", batch_body(y=-1)), bytes(20)], ErrorCode.BAD_FIELD),
    ([header("batch", batch_body(x=10**9)), bytes(20)], ErrorCode.BAD_FIELD),
    ([header("batch", batch_body(extra=1)), bytes(20)], ErrorCode.BAD_FIELD),
    ([header("heartbeat", {}), b"x", b"y", b"z"], ErrorCode.MALFORMED),
    ([b"\x92" + b"\xdd\xff\xff\xff\xff"], ErrorCode.MALFORMED),
    ([bytes(protocol.MAX_HEADER_BYTES + 1)], ErrorCode.TOO_LARGE),
    ([header("ready", {"version": 1, "name": "w", "pid": 1, "credit": 0,
                       "io_latency": 0.0})], ErrorCode.BAD_FIELD),
    ([header("ready", {"version": 1, "name": "w", "pid": 1, "credit": 2,
                       "io_latency": float("nan")})], ErrorCode.BAD_FIELD),
])
def test_bad_frames_raise_protocol_error(frames: list[bytes], code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.decode(frames)
    assert info.value.code == code


def test_oversize_payload() -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.decode([header("heartbeat", {}), bytes(101)], max_payload=100)
    assert info.value.code == ErrorCode.TOO_LARGE


def test_version_is_checked_at_handshake() -> None:
    ok = protocol.message(Kind.STATUS, version=protocol.PROTOCOL_VERSION)
    protocol.check_version(ok)
    with pytest.raises(VersionMismatch):
        protocol.check_version(protocol.message(Kind.STATUS, version=99))


def test_error_reply_becomes_remote_error() -> None:
    reply = protocol.error(ErrorCode.NOT_ALLOWED, "no", "batch", [1, 2, 3])
    decoded = protocol.decode(protocol.encode(reply))
    with pytest.raises(RemoteError, match="no"):
        protocol.raise_if_error(decoded)


def test_every_kind_has_a_schema() -> None:
    assert set(protocol.SCHEMAS) == set(Kind)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=0, max_size=4))
def test_random_bytes_never_escape_as_other_errors(frames: list[bytes]) -> None:
    with contextlib.suppress(ProtocolError):
        protocol.decode(frames)


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([k.value for k in Kind]), st.dictionaries(
    st.sampled_from(["gen", "batch", "attempt", "y", "x", "h", "w", "rule", "version",
                     "name", "pid", "credit", "io_latency", "code", "reason", "ref"]),
    json_like, max_size=9))
def test_random_bodies_never_escape_as_other_errors(kind: str, body: dict[str, Any]) -> None:
    with contextlib.suppress(ProtocolError):
        protocol.decode([header(kind, body), bytes(20)])


def test_the_error_tree_uses_the_protocols_codes() -> None:
    """``shared.errors`` cannot import the protocol, so it names NOT_ALLOWED's number
    itself: the two must agree, as the lobby sends ``e.code`` in its ERROR reply."""
    from shared.errors import BUSY, NOT_ALLOWED, Busy, NotAllowed, RequestError

    assert NOT_ALLOWED == ErrorCode.NOT_ALLOWED
    assert BUSY == ErrorCode.BUSY and Busy("later").code == ErrorCode.BUSY
    refused = NotAllowed("no")
    assert isinstance(refused, RequestError) and refused.code == ErrorCode.NOT_ALLOWED
    assert ProtocolError("bad").code == ErrorCode.MALFORMED


def test_news_in_a_request_is_checked_as_the_messages_it_stands_for() -> None:
    """A GAME_LOGIC's ``decided`` and ``landed`` are whole DECIDED and LANDED bodies:
    a missing or extra field, a wrong type or too many reports is refused like the
    message alone would be."""
    payloads = [bytes(4) + b"\x02"]  # one cell: its (y, x) as two uint16, its count
    decided = {"gen": 4, "kept": 1, "died": 0, "refused": 0, "energy": 3}
    landed = {"generation": 5, "cells": 3, "placed": 3, "occupied": 0, "energy": 3}
    good = protocol.message(Kind.GAME_LOGIC, payloads, gen=5, count=1, deadline_ms=50.0,
                            decided=decided, landed=[landed])
    assert [m.kind for m in protocol.unfold(protocol.decode(protocol.encode(good)))] == [
        Kind.DECIDED, Kind.LANDED, Kind.GAME_LOGIC]
    assert protocol.unfold(good)[0].body == decided
    for bad in ({"decided": {k: v for k, v in decided.items() if k != "energy"}},
                {"decided": {**decided, "extra": 1}},
                {"decided": [1, 2]},
                {"landed": [{**landed, "cells": "3"}]},
                {"landed": [landed] * (protocol.MAX_NEWS + 1)}):
        frames = [msgpack.packb(["game_logic", {"gen": 5, "count": 1, "deadline_ms": 50.0,
                                                **bad}]), *payloads]
        with pytest.raises(ProtocolError):
            protocol.decode(frames)
    alone = protocol.message(Kind.PONG, generation=1, energy=2)
    assert protocol.unfold(alone) == [alone]


@pytest.mark.parametrize(("items", "error"), [
    ([1, 2, 3], None),
    ([], None),
    ([0, 1 << 24], None),
    ([1, True, 3], "'keep[1]' must be an integer, not bool"),
    ([1, 2.0], "'keep[1]' must be an integer, not float"),
    ([5, -1], "'keep[1]' is -1, outside"),
    ([(1 << 24) + 1], "'keep[0]' is 16777217, outside"),
    ([1, "2"], "'keep[1]' must be an integer, not str"),
])
def test_a_list_of_integers_is_checked_at_once_and_a_bad_item_named(
        items: list[object], error: str | None) -> None:
    """``ListOf(Int(...))`` passes a list of integers in range with the builtins and
    names the first bad item otherwise (a bool is not an integer here)."""
    check = protocol.ListOf(protocol.Int(0, 1 << 24), 16)
    if error is None:
        check("keep", items)
        return
    with pytest.raises(ProtocolError, match=re.escape(error)):
        check("keep", items)


def test_a_record_takes_its_optional_keys_and_refuses_others() -> None:
    """``decisions`` from a server before ``held`` and after it both read; an unknown
    key or a missing required one does not."""
    check = protocol.Record({"asked": protocol.Int(), "answered": protocol.Int()},
                            optional={"held": protocol.Int()})
    check("decisions", {"asked": 3, "answered": 2})
    check("decisions", {"asked": 3, "answered": 2, "held": 1})
    for bad in ({"asked": 3}, {"asked": 3, "answered": 2, "other": 1},
                {"asked": 3, "answered": 2, "held": -1}, {"asked": 3, "answered": 2.5}):
        with pytest.raises(ProtocolError):
            check("decisions", bad)
