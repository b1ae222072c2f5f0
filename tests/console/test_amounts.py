"""The dollar amounts people type into the console's forms."""

from __future__ import annotations

import pytest

from m3o.console.amounts import AmountError, parse_dollars


def test_amounts_in_dollars_become_units() -> None:
    assert parse_dollars("25") == 25_000_000
    assert parse_dollars(" $1,000.50 ") == 1_000_500_000
    assert parse_dollars(".5") == 500_000
    assert parse_dollars("0.000001") == 1
    assert parse_dollars("1.500000000") == 1_500_000
    assert parse_dollars("10000000") == 10_000_000_000_000
    assert parse_dollars("0" * 5000 + "5." + "0" * 5000) == 5_000_000
    for text in ("", "$", ".", "1e3", "١٢", "+5", "5 dollars", "-0", "0", "NaN", "10000000.01"):
        with pytest.raises(AmountError):
            parse_dollars(text)


def test_a_form_in_cents_takes_two_decimals() -> None:
    assert parse_dollars("12.50", decimals=2) == 12_500_000
    with pytest.raises(AmountError, match="at most 2 decimal places: the smallest amount is"):
        parse_dollars("1.234", decimals=2)
