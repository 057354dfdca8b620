"""Decimal strings to integer ticks and lots: exact, and exactly the plain decimals."""

import re

from hypothesis import given
from hypothesis import strategies as st

from peerbook.engine.markets import DECIMAL_CHARACTERS_MAX, Increment, format_scaled, parse_decimal

# The definition of a plain decimal, written as the regular expression it is: an optional
# minus, digits, and optionally a point followed by digits. Digits are ASCII only (`int`
# would also read other scripts' decimal digits, such as U+0663 or U+FF11); the parser must
# accept exactly these strings.
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")

_decimal_like = st.text(alphabet="0123456789.-+e \u0663\u00b2\uff11", max_size=12)


@given(st.one_of(_decimal_like, st.text(max_size=45)))
def test_parse_decimal_accepts_exactly_the_plain_decimals(text: str) -> None:
    parsed = parse_decimal(text)
    plain = len(text) <= DECIMAL_CHARACTERS_MAX and _PLAIN_DECIMAL.fullmatch(text) is not None
    assert (parsed is not None) == plain
    if parsed is not None:
        value, scale = parsed
        whole, _, fraction = text.lstrip("-").partition(".")
        assert scale == len(fraction)
        assert value == (-1 if text.startswith("-") else 1) * int(whole + fraction)


@given(st.integers(min_value=-(10**30), max_value=10**30), st.integers(0, 8))
def test_parse_decimal_reads_back_what_format_scaled_writes(value: int, scale: int) -> None:
    parsed = parse_decimal(format_scaled(value, scale))
    assert parsed is not None
    assert parsed[0] * 10**scale == value * 10 ** parsed[1]


def test_increment_counts_whole_multiples_only() -> None:
    step = Increment("0.25")

    def count(text: str) -> int | None:
        parsed = parse_decimal(text)
        return None if parsed is None else step.count(parsed)

    assert count("1") == 4
    assert count("1.50") == 6
    assert count("0.3") is None
    assert count("1e2") is None
    assert parse_decimal("\u0661\u0660\u0660") is None  # Arabic-Indic 100
    assert parse_decimal("\uff11") is None  # fullwidth 1
    assert parse_decimal("1" * DECIMAL_CHARACTERS_MAX) is not None
    assert parse_decimal("1" * (DECIMAL_CHARACTERS_MAX + 1)) is None
    parsed = parse_decimal("2.000")
    assert parsed is not None
    assert step.count(parsed) == 8
