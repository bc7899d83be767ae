"""A packed batch through the worker's and the server's own computation (no sockets):
the bit kernel's answer is the reference's, and a tile with owners still takes
``step_tile``'s path."""

from __future__ import annotations

import numpy as np
import pytest

from server.verify import LocalKernel
from server.worker.process import Worker, WorkerConfig
from shared import bitlife, protocol
from shared.grid import as_payload, pack_bits, unpack_bits
from shared.life import step_tile_reference
from shared.protocol import Kind
from shared.rules import parse_rule


def batch(tile: np.ndarray, rule: str, packed: bool) -> protocol.Message:
    h, w = tile.shape[0] - 2, tile.shape[1] - 2
    payload = as_payload(pack_bits(tile)) if packed else as_payload(tile)
    flags = {"packed": True} if packed else {}
    msg = protocol.message(Kind.BATCH, [payload], gen=3, batch=1, attempt=0, y=0, x=0,
                           h=h, w=w, rule=rule, **flags)
    return protocol.decode(protocol.encode(msg))  # as the worker receives it


@pytest.mark.parametrize("min_cells", [0, 1 << 40])  # the bit kernel, then step_tile
@pytest.mark.parametrize("rule", ["B3/S23", "B36/S23", "B3678/S34678", "B1/S012345678"])
@pytest.mark.parametrize("shape", [(3, 3), (9, 70), (40, 131), (66, 66)])
def test_worker_answers_a_packed_batch_exactly(rule: str, shape: tuple[int, int],
                                               min_cells: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bitlife, "MIN_CELLS", min_cells)
    tile = (np.random.default_rng(shape[1]).random(shape) < 0.4).astype(np.uint8)
    answer = Worker(WorkerConfig(connect="tcp://127.0.0.1:1")).compute(
        batch(tile, rule, packed=True))
    assert answer.kind is Kind.RESULT and answer["packed"] is True
    h, w = shape[0] - 2, shape[1] - 2
    got = unpack_bits(answer.payloads[0], (h, w))
    assert np.array_equal(got, step_tile_reference(tile, parse_rule(rule)))
    assert bytes(answer.payloads[0]) == bytes(pack_bits(got))  # the wire's own bytes


def test_worker_steps_owned_tiles_as_before() -> None:
    tile = np.random.default_rng(2).choice([0, 0, 1, 2, 3], size=(12, 20)).astype(np.uint8)
    answer = Worker(WorkerConfig(connect="tcp://127.0.0.1:1")).compute(
        batch(tile, "B3/S23", packed=False))
    got = np.frombuffer(answer.payloads[0], dtype=np.uint8).reshape(10, 18)
    assert np.array_equal(got, step_tile_reference(tile, parse_rule("B3/S23")))


@pytest.mark.parametrize("min_cells", [0, 1 << 40])
@pytest.mark.parametrize("rule", ["B3/S23", "B2/S", "B45678/S2345"])
def test_local_kernel_packed_and_unpacked_agree(rule: str, min_cells: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bitlife, "MIN_CELLS", min_cells)
    tile = (np.random.default_rng(5).random((33, 77)) < 0.35).astype(np.uint8)
    kernel = LocalKernel()
    packed = kernel.compute(pack_bits(tile), 31, 75, rule, packed=True)
    plain = kernel.compute(tile, 31, 75, rule, packed=False)
    assert np.array_equal(packed, plain)
    assert np.array_equal(packed, step_tile_reference(tile, parse_rule(rule)))


def test_the_bit_kernel_takes_large_tiles_only() -> None:
    """Where it pays (docs/benchmarks.md): a band of a 1024-wide world, not a 64x64 tile."""
    assert bitlife.pays(1024, 1024) and bitlife.pays(512, 1024)
    assert not bitlife.pays(62, 62) and not bitlife.pays(254, 1022)
