"""Billing account records: reading and writing the service's tables.

Every function works inside the caller's session, so the caller decides the transaction
(and publishes its event in the same one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.services.billing.proto import billing_pb2 as pb
from m3o.services.billing.tables import accounts, members

__all__ = [
    "FREE_TIER",
    "AccountRecord",
    "accounts_of",
    "clear_pending",
    "delete_account",
    "ensure",
    "find",
    "find_by_admin",
    "lock",
    "remove_member",
    "set_pending",
    "set_subscription",
]

FREE_TIER = "free"


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """One billing account with its people."""

    id: str
    tier: str
    subscription_id: str
    pending_tier: str
    pending_change: str
    pending_since: datetime | None
    admins: tuple[str, ...]
    members: tuple[str, ...]

    def to_pb(self) -> pb.BillingAccount:
        return pb.BillingAccount(
            id=self.id,
            admins=list(self.admins),
            members=list(self.members),
            subscriptions=[pb.Subscription(id=self.tier)],
        )


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def ensure(session: AsyncSession, customer_id: str, now: datetime) -> None:
    """Make the customer's own account (id = the customer's id) unless it exists.

    Both inserts do nothing on conflict, so concurrent first needs make one account.
    """
    await session.execute(
        _insert(session, accounts)
        .values(
            id=customer_id,
            tier=FREE_TIER,
            subscription_id="",
            pending_tier="",
            pending_change="",
            created=now,
        )
        .on_conflict_do_nothing(index_elements=[accounts.c.id])
    )
    await session.execute(
        _insert(session, members)
        .values(account_id=customer_id, customer_id=customer_id, admin=True)
        .on_conflict_do_nothing(index_elements=[members.c.account_id, members.c.customer_id])
    )


async def _record(session: AsyncSession, row: Any) -> AccountRecord:
    people = (
        await session.execute(
            select(members.c.customer_id, members.c.admin)
            .where(members.c.account_id == row.id)
            .order_by(members.c.customer_id)
        )
    ).all()
    return AccountRecord(
        id=row.id,
        tier=row.tier,
        subscription_id=row.subscription_id,
        pending_tier=row.pending_tier,
        pending_change=row.pending_change,
        pending_since=row.pending_since,
        admins=tuple(p.customer_id for p in people if p.admin),
        members=tuple(p.customer_id for p in people),
    )


async def find(session: AsyncSession, account_id: str) -> AccountRecord | None:
    row = (await session.execute(select(accounts).where(accounts.c.id == account_id))).first()
    return None if row is None else await _record(session, row)


async def lock(session: AsyncSession, account_id: str) -> AccountRecord | None:
    """The account, locked until the transaction ends (changes to it go one at a time)."""
    row = (
        await session.execute(select(accounts).where(accounts.c.id == account_id).with_for_update())
    ).first()
    return None if row is None else await _record(session, row)


async def find_by_admin(session: AsyncSession, admin_id: str) -> AccountRecord | None:
    """The account ``admin_id`` administers (their own, the first by id if several)."""
    account_id = (
        await session.execute(
            select(members.c.account_id)
            .where(members.c.customer_id == admin_id, members.c.admin.is_(True))
            .order_by(members.c.account_id)
            .limit(1)
        )
    ).scalar_one_or_none()
    return None if account_id is None else await find(session, account_id)


async def accounts_of(session: AsyncSession, customer_id: str) -> list[str]:
    """Ids of the accounts the customer belongs to."""
    rows = await session.execute(
        select(members.c.account_id)
        .where(members.c.customer_id == customer_id)
        .order_by(members.c.account_id)
    )
    return list(rows.scalars())


async def set_pending(
    session: AsyncSession, account_id: str, tier: str, change: str, since: datetime
) -> None:
    """Record the change under way."""
    await session.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(pending_tier=tier, pending_change=change, pending_since=since)
    )


async def clear_pending(session: AsyncSession, account_id: str, change: str) -> None:
    """Forget the change ``change`` if it is still the one under way."""
    await session.execute(
        update(accounts)
        .where(accounts.c.id == account_id, accounts.c.pending_change == change)
        .values(pending_tier="", pending_change="", pending_since=None)
    )


async def set_subscription(
    session: AsyncSession, account_id: str, tier: str, subscription_id: str
) -> None:
    """The account now pays for ``tier`` by ``subscription_id``; no change is under way."""
    await session.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(
            tier=tier,
            subscription_id=subscription_id,
            pending_tier="",
            pending_change="",
            pending_since=None,
        )
    )


async def remove_member(session: AsyncSession, account_id: str, customer_id: str) -> None:
    await session.execute(
        delete(members).where(
            members.c.account_id == account_id, members.c.customer_id == customer_id
        )
    )


async def delete_account(session: AsyncSession, account_id: str) -> None:
    await session.execute(delete(members).where(members.c.account_id == account_id))
    await session.execute(delete(accounts).where(accounts.c.id == account_id))
