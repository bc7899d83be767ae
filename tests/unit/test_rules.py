from __future__ import annotations

import pytest

from shared.errors import RuleError
from shared.rules import CONWAY, parse_rule


@pytest.mark.parametrize("text, canonical", [
    ("B3/S23", "B3/S23"), ("b3/s32", "B3/S23"), ("23/3", "B3/S23"),
    ("B36/S23", "B36/S23"), ("B2/S", "B2/S"), (" B3678/S34678 ", "B3678/S34678"),
])
def test_parse_canonical(text: str, canonical: str) -> None:
    assert str(parse_rule(text)) == canonical


def test_conway_is_default_life() -> None:
    assert parse_rule("B3/S23") == CONWAY
    assert CONWAY.born(3) and not CONWAY.born(2)
    assert CONWAY.survives(2) and CONWAY.survives(3) and not CONWAY.survives(4)


@pytest.mark.parametrize("text", ["", "B9/S23", "B3/S2x", "B33/S2", "Life", "B3S23", "B3/S23/x"])
def test_malformed_rules_are_refused(text: str) -> None:
    with pytest.raises(RuleError):
        parse_rule(text)


def test_b0_is_refused_with_the_reason() -> None:
    with pytest.raises(RuleError, match="B0"):
        parse_rule("B03/S23")


def test_table_layout() -> None:
    table = parse_rule("B36/S23").table
    assert [n for n in range(9) if table[n]] == [3, 6]
    assert [n for n in range(9) if table[9 + n]] == [2, 3]
