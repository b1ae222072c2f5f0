"""Money: integers of 1/10,000ths of a cent ($1 = 1,000,000 units), and the bounds every
amount that enters from outside must keep.

The bounds keep every sum the platform computes far from the limits of where money is kept:

- the ledger is a BIGINT column and the counter store keeps 64-bit integers (< 2^63);
- Redis's admission script compares the hot balance with a price as Lua numbers, which are
  doubles: exact only below 2^53 (about 9.007e15 units, $9 billion).

A balance stays within ``±MAX_BALANCE`` ($1 billion). The hot balance the gateway admits
against is that balance less request debits not yet written to the ledger; admission only
debits a balance that covers the price, so the hot balance stays within
``±2 * MAX_BALANCE`` too: below 2^53. One credit, debit or transfer is at most
:data:`MAX_AMOUNT` ($10 million); a price at most :data:`MAX_PRICE` ($10,000 per call); a
free quota at most :data:`MAX_FREE_QUOTA` calls a month. A customer's ledger, summed in
order, passes through their balances only, so its sum stays within ``MAX_BALANCE`` as well.
The cumulative request debits (never reset) reach 2^63 only after $9 trillion of calls.
"""

from __future__ import annotations

from m3o.runtime.errors import BadRequest

__all__ = [
    "MAX_AMOUNT",
    "MAX_BALANCE",
    "MAX_FREE_QUOTA",
    "MAX_PRICE",
    "UNITS_PER_DOLLAR",
    "check_amount",
    "check_balance",
    "check_limit",
    "dollars",
]

UNITS_PER_DOLLAR = 1_000_000
"""Units of money in one dollar (a unit is 1/10,000th of a cent)."""
MAX_AMOUNT = 10_000_000 * UNITS_PER_DOLLAR
"""Largest single credit, debit or transfer, and payment credit: $10,000,000."""
MAX_BALANCE = 1_000_000_000 * UNITS_PER_DOLLAR
"""Largest balance, above or below zero: $1,000,000,000."""
MAX_PRICE = 10_000 * UNITS_PER_DOLLAR
"""Largest price of one call: $10,000."""
MAX_FREE_QUOTA = 1_000_000_000
"""Largest number of free calls a month (a count, not money)."""


def dollars(units: int) -> str:
    """``units`` as dollars, for messages: ``$10,000,000``, ``-$0.000001``."""
    sign = "-" if units < 0 else ""
    whole, rest = divmod(abs(units), UNITS_PER_DOLLAR)
    cents = f".{rest:06d}".rstrip("0").rstrip(".")
    return f"{sign}${whole:,}{cents}"


def check_amount(error_id: str, name: str, value: int, *, maximum: int = MAX_AMOUNT) -> int:
    """``value`` when it is above zero and at most ``maximum``; else BadRequest naming
    ``name`` (``Delta must be greater than zero``)."""
    if value <= 0:
        raise BadRequest(error_id, f"{name} must be greater than zero")
    if value > maximum:
        raise BadRequest(error_id, f"{name} must be at most {maximum} ({dollars(maximum)})")
    return value


def check_limit(error_id: str, name: str, value: int, *, maximum: int, money: bool) -> int:
    """``value`` when it is between zero and ``maximum`` (a price: ``money``; a quota);
    else BadRequest naming ``name``."""
    if value < 0:
        raise BadRequest(error_id, f"{name} must not be negative")
    if value > maximum:
        shown = f"{maximum} ({dollars(maximum)})" if money else str(maximum)
        raise BadRequest(error_id, f"{name} must be at most {shown}")
    return value


def check_balance(error_id: str, balance: int, change: int) -> int:
    """``balance + change`` when it stays within ``±MAX_BALANCE``, or when ``change`` moves
    it back towards them; else BadRequest saying so."""
    after = balance + change
    if change > 0 and after > MAX_BALANCE:
        raise BadRequest(
            error_id, f"The balance would exceed the maximum balance of {dollars(MAX_BALANCE)}"
        )
    if change < 0 and after < -MAX_BALANCE:
        raise BadRequest(
            error_id, f"The balance would go below the minimum balance of {dollars(-MAX_BALANCE)}"
        )
    return after
