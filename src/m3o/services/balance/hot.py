"""The hot balance the gateway admits against, and the request debits behind it.

Balance owns these names; the gateway's admission reads and writes them through these
functions and nobody else spells them. Per billing customer, in the counter store:

- :func:`hot_key`: the hot balance, a counter equal to
  ``ledger balance - (debited - recorded)``. Admission debits it atomically together with
  raising :func:`debited_key`; the balance service creates it when missing (under the
  customer's lock), and removes it before every credit or debit it writes to the ledger
  (loading it again from the committed ledger), so it never shows an uncommitted change.
- :func:`debited_key`: the cumulative request debits, a counter admission raises by each
  charged price and release lowers by a refund. It is never reset: the balance service
  keeps, per customer, ``recorded`` (how much of it the ledger holds) and its flush writes
  the difference to the ledger as one ``API usage`` adjustment.

A missing hot balance means "not loaded" (admission answers ``BALANCE_UNKNOWN`` and the
gateway asks ``balance.Current``, which loads it); it never means zero.

This module imports nothing of the service, so the gateway may use it.
"""

from __future__ import annotations

__all__ = ["debited_key", "expected_hot", "hot_key"]


def hot_key(customer_id: str) -> str:
    """The counter holding ``customer_id``'s hot balance."""
    return f"balance:hot:{customer_id}"


def debited_key(customer_id: str) -> str:
    """The counter holding ``customer_id``'s cumulative request debits."""
    return f"balance:debited:{customer_id}"


def expected_hot(ledger: int, debited: int, recorded: int) -> int:
    """What the hot balance must hold: the ledger less the debits not yet recorded."""
    return ledger - (debited - recorded)
