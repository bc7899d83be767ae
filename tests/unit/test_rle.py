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
    ("x = 3, y = 3\n1234567890o!", "too long"),
    ("x = 1" + "0" * 5000 + ", y = 1\no!", "9 digits"),
    ("x = 1, y = 99999999\no!", "larger than"),
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
def test_round_trip(codes: np.ndarray) -> None:
    assert np.array_equal(parse_rle(write_rle(codes)).codes, codes)


def reference_body(codes: np.ndarray) -> str:
    """The RLE body the plain way, cell by cell and token by token (what ``write_rle``
    builds with NumPy)."""
    from shared.rle import _state_letters

    two_state = int(codes.max(initial=0)) <= 1
    tokens = []
    for y, row in enumerate(codes.tolist()):
        if y:
            tokens.append("$")
        x = 0
        while x < len(row):
            n = 1
            while x + n < len(row) and row[x + n] == row[x]:
                n += 1
            if row[x] or x + n < len(row):  # a row's trailing empties are not written
                letter = ("o" if row[x] else "b") if two_state else _state_letters(row[x])
                tokens.append((str(n) if n > 1 else "") + letter)
            x += n
    while tokens and tokens[-1] == "$":
        tokens.pop()
    merged: list[str] = []  # consecutive "$" as one count
    for token in tokens:
        if token == "$" and merged and merged[-1].endswith("$"):
            count = int(merged[-1][:-1] or 1) + 1
            merged[-1] = f"{count}$"
        else:
            merged.append(token)
    merged.append("!")
    lines, line = [], ""
    for token in merged:
        if len(line) + len(token) > 70:
            lines.append(line)
            line = ""
        line += token
    return "\n".join([*lines, line])


@settings(max_examples=300, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 30), st.integers(1, 90)),
              elements=st.sampled_from([0, 0, 0, 0, 1, 1, 2, 3, 25, 60, 255])))
def test_the_body_is_the_plain_ways(codes: np.ndarray) -> None:
    text = write_rle(codes)
    assert text.split("\n", 1)[1] == reference_body(codes) + "\n"


def test_long_runs_and_many_empty_rows() -> None:
    codes = np.zeros((300, 9000), dtype=np.uint8)
    codes[0, 8999] = 1
    codes[299, :] = 1
    text = write_rle(codes)
    assert text.split("\n", 1)[1] == reference_body(codes) + "\n" == "8999bo299$9000o!\n"


def test_shipped_patterns_parse() -> None:
    files = sorted(PATTERNS.glob("*.rle"))
    assert len(files) >= 6
    for path in files:
        pattern = parse_rle(path.read_text())
        assert pattern.codes.any(), path.name
