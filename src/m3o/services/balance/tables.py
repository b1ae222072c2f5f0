"""Tables the balance service owns.

- ``balance_accounts``: one row per customer with a balance: the balance (always the sum of
  the customer's ledger), ``recorded`` (how much of the cumulative request debits the ledger
  holds, see :mod:`m3o.services.balance.hot`), ``at_zero`` (the balance was last seen at or
  below zero, so BalanceZero is published once per crossing) and ``version``, raised by
  every write (a write that finds another version lost a race and starts again). The row is
  also what the balance operations lock.
- ``balance_adjustments``: the ledger, one row per credit or debit, ``seq`` giving the
  order; an idempotency key is unique across the ledger.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
)

from m3o.runtime.store import UTCDateTime, new_metadata

__all__ = ["accounts", "adjustments", "metadata"]

metadata = new_metadata()

accounts = Table(
    "balance_accounts",
    metadata,
    Column("customer_id", String(255), primary_key=True),
    Column("balance", BigInteger, nullable=False),
    Column("recorded", BigInteger, nullable=False),
    Column("at_zero", Boolean, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
)

adjustments = Table(
    "balance_adjustments",
    metadata,
    # SQLite numbers rows itself only for an INTEGER primary key
    Column(
        "seq",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("id", String(36), nullable=False, unique=True),
    Column("customer_id", String(255), nullable=False),
    Column("delta", BigInteger, nullable=False),
    Column("reference", String(500), nullable=False),
    Column("visible", Boolean, nullable=False),
    Column("actioned_by", String(255), nullable=False),
    Column("meta", JSON, nullable=False),
    # NULL for entries without one (transfers, API usage); unique otherwise
    Column("idempotency_key", String(255), nullable=True, unique=True),
    Column("created", UTCDateTime, nullable=False),
    Index("ix_balance_adjustments_customer_id_seq", "customer_id", "seq"),
)
