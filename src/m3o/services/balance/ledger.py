"""The ledger and the accounts: reading and writing the service's two tables.

Every function works inside the caller's session, so the caller decides the transaction
(and publishes its events in the same one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, union, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.services.balance.tables import accounts, adjustments

__all__ = [
    "Account",
    "Adjustment",
    "accounts_after",
    "add_adjustment",
    "customers_after",
    "find_by_key",
    "ledger_sum",
    "lock_accounts",
    "page",
    "read_account",
    "remove_customer",
    "save_account",
]

_A = accounts.c
_L = adjustments.c


@dataclass(frozen=True, slots=True)
class Account:
    """A customer's row: the balance (the ledger's sum), how much of the request debits the
    ledger holds, whether BalanceZero was published for the current stretch at or below
    zero, and the row's version."""

    customer_id: str
    balance: int = 0
    recorded: int = 0
    at_zero: bool = True
    version: int = 0


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One ledger entry; ``delta`` > 0 credits, < 0 debits."""

    id: str
    customer_id: str
    delta: int
    reference: str
    visible: bool
    actioned_by: str
    created: datetime
    meta: Mapping[str, str] = field(default_factory=dict)
    idempotency_key: str = ""


def _account(row: Row[Any]) -> Account:
    return Account(
        customer_id=row.customer_id,
        balance=int(row.balance),
        recorded=int(row.recorded),
        at_zero=bool(row.at_zero),
        version=int(row.version),
    )


def _adjustment(row: Row[Any]) -> Adjustment:
    meta = row.meta if isinstance(row.meta, dict) else {}
    return Adjustment(
        id=row.id,
        customer_id=row.customer_id,
        delta=int(row.delta),
        reference=row.reference,
        visible=bool(row.visible),
        actioned_by=row.actioned_by,
        created=row.created,
        meta={str(k): str(v) for k, v in meta.items()},
        idempotency_key=row.idempotency_key or "",
    )


async def lock_accounts(
    session: AsyncSession, customer_ids: Sequence[str], *, create: bool, now: datetime
) -> dict[str, Account]:
    """The accounts of ``customer_ids``, each row locked until the transaction ends.

    Rows are created (and locked) in the order given, so callers pass the ids sorted and
    two transactions never wait for each other in a cycle. Without ``create`` a customer
    with no row is left out.
    """
    dialect = session.get_bind().dialect.name
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    found: dict[str, Account] = {}
    for customer_id in customer_ids:
        if create:
            await session.execute(
                insert_for(accounts)
                .values(
                    customer_id=customer_id,
                    balance=0,
                    recorded=0,
                    at_zero=True,
                    version=0,
                    updated=now,
                )
                .on_conflict_do_nothing(index_elements=[_A.customer_id])
            )
        query = select(accounts).where(_A.customer_id == customer_id).with_for_update()
        row = (await session.execute(query)).first()
        if row is not None:
            found[customer_id] = _account(row)
    return found


async def read_account(session: AsyncSession, customer_id: str) -> Account | None:
    """The customer's account as it stands (not locked); None when there is none."""
    row = (await session.execute(select(accounts).where(_A.customer_id == customer_id))).first()
    return None if row is None else _account(row)


async def save_account(
    session: AsyncSession, before: Account, after: Account, now: datetime
) -> bool:
    """Write ``after`` if the row is still at ``before``'s version; False if it moved on."""
    result = await session.execute(
        update(accounts)
        .where(_A.customer_id == before.customer_id, _A.version == before.version)
        .values(
            balance=after.balance,
            recorded=after.recorded,
            at_zero=after.at_zero,
            version=before.version + 1,
            updated=now,
        )
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


async def find_by_key(session: AsyncSession, idempotency_key: str) -> Adjustment | None:
    query = select(adjustments).where(_L.idempotency_key == idempotency_key)
    row = (await session.execute(query)).first()
    return None if row is None else _adjustment(row)


async def add_adjustment(session: AsyncSession, adjustment: Adjustment) -> None:
    """Append an entry. Raises ``sqlalchemy.exc.IntegrityError`` when its idempotency key
    is taken."""
    await session.execute(
        insert(adjustments).values(
            id=adjustment.id,
            customer_id=adjustment.customer_id,
            delta=adjustment.delta,
            reference=adjustment.reference,
            visible=adjustment.visible,
            actioned_by=adjustment.actioned_by,
            meta=dict(adjustment.meta),
            idempotency_key=adjustment.idempotency_key or None,
            created=adjustment.created,
        )
    )


async def page(
    session: AsyncSession, customer_id: str, *, visible_only: bool, limit: int, offset: int
) -> list[Adjustment]:
    """A customer's entries, oldest first."""
    query = select(adjustments).where(_L.customer_id == customer_id)
    if visible_only:
        query = query.where(_L.visible.is_(True))
    query = query.order_by(_L.seq).limit(limit).offset(offset)
    return [_adjustment(row) for row in (await session.execute(query)).all()]


async def ledger_sum(session: AsyncSession, customer_id: str) -> int:
    query = select(func.coalesce(func.sum(_L.delta), 0)).where(_L.customer_id == customer_id)
    return int((await session.execute(query)).scalar_one())


async def remove_customer(session: AsyncSession, customer_id: str) -> None:
    """Delete a customer's ledger and account."""
    await session.execute(delete(adjustments).where(_L.customer_id == customer_id))
    await session.execute(delete(accounts).where(_A.customer_id == customer_id))


async def accounts_after(session: AsyncSession, after: str, limit: int) -> list[Account]:
    """Up to ``limit`` accounts whose customer id sorts after ``after``, in id order."""
    query = select(accounts).where(_A.customer_id > after).order_by(_A.customer_id).limit(limit)
    return [_account(row) for row in (await session.execute(query)).all()]


async def customers_after(session: AsyncSession, after: str, limit: int) -> list[str]:
    """Up to ``limit`` customer ids with an account or a ledger entry, after ``after``."""
    ids = union(
        select(_A.customer_id.label("customer_id")).where(_A.customer_id > after),
        select(_L.customer_id.label("customer_id")).where(_L.customer_id > after),
    ).subquery()
    query = select(ids.c.customer_id).order_by(ids.c.customer_id).limit(limit)
    return [str(value) for value in (await session.execute(query)).scalars().all()]
