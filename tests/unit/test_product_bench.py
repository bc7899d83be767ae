"""``lifenet bench --server``'s parts that need no processes: the soup it gives Golly is
the one ``lifenet up`` builds, and the server's log lines it reads are the ones the
server writes."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from server.generation import Stages
from server.tools.product import LOOP_LINE, STAGE_LINE, ProductFigures, product_table, soup_grid


def test_the_soup_is_the_one_lifenet_up_starts_from() -> None:
    grid = soup_grid((33, 70), fill=0.35, seed=1)
    expected = np.random.default_rng(1).random((33, 70)) < 0.35
    assert np.array_equal(grid.codes, expected)


def test_the_server_lines_are_read(caplog: pytest.LogCaptureFixture) -> None:
    stages = Stages(skip=0)
    clock = stages.start()
    clock.lap("freeze")
    clock.lap("workers")
    stages.add(clock)
    log = logging.getLogger("lifenet.server")
    with caplog.at_level(logging.INFO, logger="lifenet.server"):
        log.info("whole generations: %d after the first %d in %.3f s: %.3f ms a "
                 "generation", 200, 10, 0.5, 2.5)
        log.info("generation stages, ms a generation over %d: %s", 1, stages.line())
    found = LOOP_LINE.search(caplog.text)
    assert found and float(found[1]) == 2.5
    line = STAGE_LINE.search(caplog.text)
    assert line and "freeze" in line[2] and "publish" in line[2]
    figures = ProductFigures((64, 64), 2, up=[2.0, 3.0], golly=[4.0], loop=[2.5])
    text = product_table([figures])
    assert "2.00x Golly" not in text and "1.60x Golly" in text  # 4 / 2.5, the loop's
