"""Amounts of money people type into the console's forms: ``25``, ``12.50``, ``$1,000``.

One rule for every form: digits with at most one point (no exponent, sign, ``NaN`` or
other script's digits), a ``$`` and thousands commas allowed, more than $0 and at most
:data:`~m3o.runtime.money.MAX_AMOUNT`; a form that takes cents (a card payment) allows two
decimals, one that takes units (an admin's credit) six, a unit being a millionth of a dollar.
"""

from __future__ import annotations

import re

from m3o.runtime.money import MAX_AMOUNT, UNITS_PER_DOLLAR, dollars

__all__ = ["UNITS_PER_CENT", "AmountError", "parse_dollars"]

UNITS_PER_CENT = UNITS_PER_DOLLAR // 100

_AMOUNT = re.compile(r"([0-9]*)(?:\.([0-9]*))?", re.ASCII)
_UNIT_DECIMALS = 6


class AmountError(ValueError):
    """An amount that is not a positive number of dollars a form can take; its text says
    why, for the form."""


def parse_dollars(text: object, *, decimals: int = _UNIT_DECIMALS) -> int:
    """``text`` as units (1,000,000 a dollar), with at most ``decimals`` decimal places;
    raises :class:`AmountError`."""
    cleaned = str(text or "").strip().replace(",", "").removeprefix("$").strip()
    if cleaned.startswith("-"):
        raise AmountError("The amount must be more than $0.")
    match = _AMOUNT.fullmatch(cleaned)
    if not cleaned or match is None or not (match[1] or match[2]):
        raise AmountError("Enter an amount in dollars, such as 25 or 12.50.")
    whole, fraction = match[1].lstrip("0") or "0", (match[2] or "").rstrip("0")
    if len(fraction) > decimals:
        smallest = dollars(10 ** (_UNIT_DECIMALS - decimals))
        raise AmountError(
            f"Use at most {decimals} decimal places: the smallest amount is {smallest}."
        )
    maximum = f"The amount can be at most {dollars(MAX_AMOUNT)}."
    if len(whole) > len(str(MAX_AMOUNT // UNITS_PER_DOLLAR)):
        raise AmountError(maximum)
    units = int(whole) * UNITS_PER_DOLLAR + int(fraction.ljust(_UNIT_DECIMALS, "0"))
    if units <= 0:
        raise AmountError("The amount must be more than $0.")
    if units > MAX_AMOUNT:
        raise AmountError(maximum)
    return units
