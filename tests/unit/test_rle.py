from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from shared import rle
from shared.errors import PatternError
from shared.rle import parse_rle, parse_rle_rule, write_rle
from shared.rules import CONWAY, parse_rule
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
    ("x = 2, y = 1\noZ!", "unexpected"),
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


# Golly's and the LifeWiki's RLE: rule notations, bounded grids, comments, streaming.

GLIDER = [[0, 1, 0], [0, 0, 1], [1, 1, 1]]


@pytest.mark.parametrize("rule", ["B3/S23", "S23/B3", "23/3", "b3/s23", "s23/b3", "Life",
                                  "B3/S23:T64,64", "23/3:t64,64"])
def test_the_rule_in_every_notation(rule: str) -> None:
    pattern = parse_rle(f"x = 3, y = 3, rule = {rule}\nbo$2bo$3o!")
    assert pattern.rule == CONWAY
    assert pattern.codes.tolist() == GLIDER


def test_highlife_in_the_old_and_the_reversed_notations() -> None:
    highlife = parse_rule("B36/S23")
    for rule in ("23/36", "S23/B36", "s23/b63"):
        assert parse_rle_rule(rule) == (highlife, None)


def test_a_torus_suffix_is_kept_as_height_and_width() -> None:
    pattern = parse_rle("x = 3, y = 3, rule = B3/S23:T64,64\nbo$2bo$3o!")
    assert pattern.torus == (64, 64)
    assert parse_rle_rule("B3/S23:T30,20") == (CONWAY, (20, 30))


@pytest.mark.parametrize("suffix, says", [
    (":P64,64", "a bounded plane"), (":P0,0", "a bounded plane"),
    (":K64*,64", "a Klein bottle"), (":C64,64", "a cross-surface"), (":S64", "a sphere"),
    (":T64+1,64", "shifted edges"), (":T0,64", "infinite side"), (":T64", "':Twidth,height'"),
])
def test_other_topologies_are_refused_in_one_line(suffix: str, says: str) -> None:
    with pytest.raises(PatternError) as refused:
        parse_rle(f"#N x\nx = 3, y = 3, rule = B3/S23{suffix}\nbo$2bo$3o!", source="g.rle")
    message = str(refused.value)
    assert "\n" not in message and says in message
    assert message.startswith("g.rle:2:22: bounded grid"), message


def test_comments_names_and_cxrle() -> None:
    text = ("#N Glider\n#O Richard K. Guy\n#C first\n#c second\n#CXRLE Pos=-3,-2 Gen=7\n"
            "x = 3, y = 3, rule = B3/S23\nbo$2bo$3o!\n")
    pattern = parse_rle(text)
    assert pattern.name == "Glider"
    assert pattern.comments == ["#N Glider", "#O Richard K. Guy", "#C first", "#c second",
                                "#CXRLE Pos=-3,-2 Gen=7"]
    assert pattern.origin == (-2, -3) and pattern.generation == 7
    assert parse_rle("#CXRLE Gen=12\nx = 1, y = 1\no!").generation == 12


def test_golly_bodies_counts_before_dollar_trailing_letters_and_text_after_the_end() -> None:
    text = "x = 5, y = 6, rule = B3/S23\n2o3b$\n3$o\n3bo\n4b$b\n3o!\nanything after the end\n"
    assert parse_rle(text).codes.tolist() == [
        [1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0],
        [1, 0, 0, 0, 1], [0, 1, 1, 1, 0]]


def test_comment_lines_inside_a_body_are_skipped() -> None:
    text = "x = 3, y = 3\nbo$\n#C between $ 3o!\n  # indented\n2bo$3o!"
    for block in (1, 2, 3, 5, 8, 1 << 17):  # a comment cut between blocks too
        with mock.patch.object(rle, "BLOCK", block):
            assert parse_rle(text).codes.tolist() == GLIDER, block
    with pytest.raises(PatternError, match="line 2, column 5: unexpected character '#'"):
        parse_rle("x = 3, y = 3\nbo$ #C not at a line's start\n2bo$3o!")


@pytest.mark.parametrize("text, place, says", [
    ("x = 3, y = 3\nbo$2bo$3Z!", "2:9", "unexpected character 'Z'"),
    ("x = 3, y = 3\nbo$2bo\n$4o!", "3:3",
     "the body runs outside the declared 3x3 box (row 2, column 3)"),
    ("x = 3, y = 3\nbo$2bo\n$3o", "3:4", "the body ends without its closing '!'"),
    ("x = 3, y = 3\nbo$2bo\n$3o12", "3:4", "the body ends with a run count and no state"),
    ("#C x\nbo$2bo$3o!", "2:1",
     "expected the header 'x = W, y = H[, rule = R]', found 'bo$2bo$3o!'"),
    ("x = 3, y = 3, rule = B3/S23/C3\n3o!", "1:22",
     "rule 'B3/S23/C3' has more than two parts: lifenet runs two-state Life-like rules only"),
    ("x = 3, y = 3\n\n  12345678901o!", "3:3", "run count 1234567890... is too long"),
    ("x = 3, y = 3\npb!", "2:1", "state prefix 'p' is not followed by A..X"),
    ("x = 3, y = 3\n2!", "2:1", "run count 2 before '!' has no state"),
    ("x = 3, y = 3\nyX!", "2:1", "state 264 is beyond 255"),
])
def test_malformed_rle_names_the_line_and_column(text: str, place: str, says: str) -> None:
    with pytest.raises(PatternError) as refused:
        parse_rle(text, source="bad.rle")
    assert str(refused.value) == f"bad.rle:{place}: {says}"


def test_a_file_lying_about_its_size_is_refused_when_it_overflows() -> None:
    with pytest.raises(PatternError, match=r"bad.rle:2:8: the body runs outside"):
        parse_rle("x = 4, y = 2\n4o$4o$4o!", source="bad.rle")
    with pytest.raises(PatternError, match="larger than 67108864 cells"):
        parse_rle("x = 8192, y = 8193\no!")  # refused before anything is allocated


def test_a_world_sized_declaration_is_taken() -> None:
    pattern = parse_rle("x = 8192, y = 8192\n8191bo$8192o!")
    assert pattern.codes.shape == (8192, 8192)
    assert pattern.codes[0, 8191] == 1 and pattern.codes[1].all() and pattern.population == 8193


@settings(max_examples=150, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 10), st.integers(1, 40)),
              elements=st.sampled_from([0, 0, 0, 1, 1, 2, 25, 255])),
       st.integers(1, 12))
def test_tokens_split_between_blocks_are_read_the_same(codes: np.ndarray, block: int) -> None:
    """A run count or a ``pA`` state cut by a block boundary (or a line's end) is carried
    into the next block."""
    text = write_rle(codes)
    with mock.patch.object(rle, "BLOCK", block):
        assert np.array_equal(parse_rle(text).codes, codes)
        assert np.array_equal(parse_rle(text.replace("$", "$\n")).codes, codes)


def test_long_runs_and_many_short_ones_in_one_block() -> None:
    codes = np.zeros((3, 3000), dtype=np.uint8)
    codes[0, 10:2900] = 1
    codes[1, ::2] = 3
    codes[2, 1::3] = 1
    assert np.array_equal(parse_rle(write_rle(codes)).codes, codes)


# States above 255: lifenet's "z" names (z, the high byte's name, the low byte's name).

WIDE_NAMES = [(256, "zA."), (257, "zAA"), (280, "zAX"), (281, "zApA"), (511, "zAyO"),
              (512, "zB."), (6400, "zpA."), (6424, "zpAX"), (65280, "zyO."),
              (65535, "zyOyO")]


@pytest.mark.parametrize("state, name", WIDE_NAMES)
def test_a_state_above_255_is_written_z_high_low(state: int, name: str) -> None:
    codes = np.array([[0, state, state, 2]], dtype=np.uint16)
    text = write_rle(codes)
    assert text.splitlines()[-1] == f".2{name}B!"
    pattern = parse_rle(text)
    assert pattern.codes.dtype == np.uint16
    assert pattern.codes.tolist() == codes.tolist()


def test_every_state_has_one_name_and_reads_back() -> None:
    """All 65 536 states in one world: the names are distinct and each reads back as
    itself (every name and every run of two, written and read in one go)."""
    from shared.rle import _state_letters

    names = [_state_letters(s) for s in range(65536)]
    assert len(set(names)) == 65536
    assert all(n[0] == "z" and len(n) in (3, 4, 5) for n in names[256:])
    assert all("z" not in n for n in names[:256])
    codes = np.repeat(np.arange(65536, dtype=np.uint16), 2).reshape(256, 512)
    assert np.array_equal(parse_rle(write_rle(codes)).codes, codes)


def test_narrow_worlds_are_written_exactly_as_before_whatever_their_dtype() -> None:
    """A world whose codes all fit a byte is written with Golly's letters only, byte
    for byte the same from a uint8 or a uint16 array, and reads back as uint8."""
    rng = np.random.default_rng(7)
    narrow = rng.choice([0, 0, 1, 2, 25, 255], size=(30, 40)).astype(np.uint8)
    text = write_rle(narrow)
    assert write_rle(narrow.astype(np.uint16)) == text
    assert "z" not in text
    assert text.split("\n", 1)[1] == reference_body(narrow) + "\n"
    back = parse_rle(text).codes
    assert back.dtype == np.uint8 and np.array_equal(back, narrow)
    neutral = (narrow != 0).astype(np.uint16)
    assert write_rle(neutral) == write_rle(neutral.astype(np.uint8))
    assert parse_rle(write_rle(neutral)).codes.dtype == np.uint8


def test_z_states_read_with_counts_spaces_and_line_breaks() -> None:
    pattern = parse_rle("x = 6, y = 2\n3zA.z\nA\nA$b2zyO yO o!")
    assert pattern.codes.dtype == np.uint16
    assert pattern.codes.tolist() == [[256, 256, 256, 257, 0, 0],
                                      [0, 65535, 65535, 1, 0, 0]]


WIDE_CODES = st.one_of(st.sampled_from([0, 0, 0, 1, 2, 255, 256, 257, 511, 6400, 65535]),
                       st.integers(0, 65535))


@settings(max_examples=200, deadline=None)
@given(arrays(np.uint16, st.tuples(st.integers(1, 12), st.integers(1, 40)),
              elements=WIDE_CODES))
def test_wide_round_trip(codes: np.ndarray) -> None:
    back = parse_rle(write_rle(codes)).codes
    assert np.array_equal(back, codes)
    assert back.dtype == (np.uint16 if codes.max() > 255 else np.uint8)


@settings(max_examples=150, deadline=None)
@given(arrays(np.uint16, st.tuples(st.integers(1, 20), st.integers(1, 60)),
              elements=WIDE_CODES))
def test_the_wide_body_is_the_plain_ways(codes: np.ndarray) -> None:
    text = write_rle(codes)
    assert text.split("\n", 1)[1] == reference_body(codes) + "\n"


@settings(max_examples=150, deadline=None)
@given(arrays(np.uint16, st.tuples(st.integers(1, 8), st.integers(1, 30)),
              elements=WIDE_CODES),
       st.integers(1, 12))
def test_z_states_split_between_blocks_are_read_the_same(codes: np.ndarray,
                                                         block: int) -> None:
    """A ``z`` state cut anywhere (after the ``z``, inside a name, between the names)
    by a block boundary or a line's end is carried into the next block; the codes widen
    at the first state above 255, whichever block it is in."""
    text = write_rle(codes)
    with mock.patch.object(rle, "BLOCK", block):
        assert np.array_equal(parse_rle(text).codes, codes)
        assert np.array_equal(parse_rle(text.replace("z", "z\n")).codes, codes)
        header, body = text.split("\n", 1)
        one_a_line = header + "\n" + "\n".join(body.replace("\n", ""))
        assert np.array_equal(parse_rle(one_a_line).codes, codes)


def test_the_first_wide_state_in_a_late_block_widens_what_was_read() -> None:
    codes = np.ones((40, 50), dtype=np.uint16) * 3
    codes[39, 49] = 40000
    with mock.patch.object(rle, "BLOCK", 64):
        back = parse_rle(write_rle(codes)).codes
    assert back.dtype == np.uint16 and np.array_equal(back, codes)


@pytest.mark.parametrize("text, place, says", [
    ("x = 3, y = 1\nzA!", "2:1",
     "a 'z' state needs two state names after it (A..yO, then '.' or A..yO), not '!'"),
    ("x = 3, y = 1\nz!", "2:1",
     "a 'z' state needs two state names after it (A..yO, then '.' or A..yO), not '!'"),
    ("x = 3, y = 1\n2o z.A!", "2:4",
     "a 'z' state needs two state names after it (A..yO, then '.' or A..yO), not '.'"),
    ("x = 3, y = 1\nzAo!", "2:1",
     "a 'z' state needs two state names after it (A..yO, then '.' or A..yO), not 'o'"),
    ("x = 3, y = 1\nzbA!", "2:1",
     "a 'z' state needs two state names after it (A..yO, then '.' or A..yO), not 'b'"),
    ("x = 3, y = 1\nzA$!", "2:1",
     "a 'z' state needs two state names after it (A..yO, then '.' or A..yO), not '$'"),
    ("x = 3, y = 1\nzzA.!", "2:1",
     "a 'z' state needs two state names after it (A..yO, then '.' or A..yO), not 'z'"),
    ("x = 3, y = 1\nzA3A!", "2:1",
     "a 'z' state needs two state names after it (A..yO, then '.' or A..yO), not '3'"),
    ("x = 3, y = 1\nzpzA.!", "2:2", "state prefix 'p' is not followed by A..X"),
    ("x = 3, y = 1\nzAp.!", "2:3", "state prefix 'p' is not followed by A..X"),
    ("x = 3, y = 1\nA\n zyP.!", "3:2", "state 65536 is beyond 65535"),
    ("x = 3, y = 1\nzyXyO!", "2:1", "state 67839 is beyond 65535"),
    ("x = 3, y = 1\nzAyP!", "2:3", "the low byte of a 'z' state, 256, is beyond 255"),
    ("x = 3, y = 1\nA2zA", "2:2", "the body ends inside a state's name"),
    ("x = 3, y = 1\nzyO", "2:1", "the body ends inside a state's name"),
    ("x = 3, y = 1\n4zA.!", "2:2",
     "the body runs outside the declared 3x1 box (row 0, column 3)"),
])
def test_malformed_z_states_name_the_line_and_column(text: str, place: str,
                                                     says: str) -> None:
    for block in (1, 3, 1 << 17):
        with mock.patch.object(rle, "BLOCK", block), \
                pytest.raises(PatternError) as refused:
            parse_rle(text, source="bad.rle")
        assert str(refused.value) == f"bad.rle:{place}: {says}", block
