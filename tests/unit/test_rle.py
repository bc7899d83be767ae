from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from shared.errors import PatternError
from shared.rle import parse_rle, write_rle
from shared.rules import CONWAY
from tests.conftest import PATTERNS


def test_reads_comments_header_runs_and_multiline_bodies() -> None:
    text = "#N Glider\n#C a comment\nx = 3, y = 3, rule = B3/S23\nbo\n$2bo$3\no!\n"
    pattern = parse_rle(text)
    assert pattern.rule == CONWAY
    assert pattern.comments == ["#N Glider", "#C a comment"]
    assert pattern.codes.tolist() == [[0, 1, 0], [0, 0, 1], [1, 1, 1]]


def test_row_runs_and_blank_rows() -> None:
    pattern = parse_rle("x = 2, y = 4\no2$bo!")
    assert pattern.codes.tolist() == [[1, 0], [0, 0], [0, 1], [0, 0]]


def test_multistate_letters() -> None:
    pattern = parse_rle("x = 4, y = 1\n.ABpA!")
    assert pattern.codes.tolist() == [[0, 1, 2, 25]]


@pytest.mark.parametrize("text, reason", [
    ("", "header"),
    ("bo$ob!", "header"),
    ("x = 3, y = 3\nbo$2bo$3o", "'!'"),
    ("x = 2, y = 2\n3o!", "outside"),
    ("x = 2, y = 1\noz!", "unexpected"),
    ("x = 2, y = 2\no$o$o!", "outside"),
    ("x = 3, y = 3, rule = B0/S\no!", "B0"),
    ("x = 3, y = 3\n3!", "run count"),
])
def test_malformed_rle_is_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(PatternError, match=reason):
        parse_rle(text)


def test_two_state_output_for_neutral_worlds() -> None:
    codes = np.array([[0, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=np.uint8)
    text = write_rle(codes, CONWAY)
    assert "x = 3, y = 3, rule = B3/S23" in text
    assert set(text.splitlines()[-1]) <= set("bo$!0123456789")


def test_multistate_output_keeps_owners() -> None:
    codes = np.array([[0, 2, 3, 30]], dtype=np.uint8)
    text = write_rle(codes)
    assert text.splitlines()[-1] == ".BCpF!"
    assert parse_rle(text).codes.tolist() == codes.tolist()


def test_lines_are_at_most_70_characters() -> None:
    rng = np.random.default_rng(3)
    codes = (rng.random((50, 200)) < 0.5).astype(np.uint8)
    assert all(len(line) <= 70 for line in write_rle(codes).splitlines())


@settings(max_examples=200, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12)),
              elements=st.sampled_from([0, 0, 0, 1, 2, 3, 25, 60, 255])))
def test_round_trip(codes: np.ndarray) -> None:  # type: ignore[type-arg]
    assert np.array_equal(parse_rle(write_rle(codes)).codes, codes)


def test_shipped_patterns_parse() -> None:
    files = sorted(PATTERNS.glob("*.rle"))
    assert len(files) >= 6
    for path in files:
        pattern = parse_rle(path.read_text())
        assert pattern.codes.any(), path.name
