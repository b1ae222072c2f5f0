"""Accounts as stored, and the queries on them every part of the service shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.auth import ISSUER
from m3o.services.auth import tables
from m3o.services.auth.proto import auth_pb2 as pb

__all__ = [
    "ACCOUNT_TYPES",
    "AccountRecord",
    "find_account",
    "is_blocked",
    "normalise_name",
]

ACCOUNT_TYPES = frozenset({"user", "customer", "service", "apikey"})


def normalise_name(name: str) -> str:
    """Names (customers' emails) are compared trimmed and lower-cased."""
    return name.strip().lower()


@dataclass(frozen=True, slots=True)
class AccountRecord:
    id: str
    type: str
    name: str
    scopes: tuple[str, ...]
    metadata: Mapping[str, str]
    secret_hash: str = field(repr=False)
    created: datetime
    issuer: str = ISSUER

    @classmethod
    def from_row(cls, row: Any) -> AccountRecord:
        return cls(
            id=row.id,
            type=row.type,
            name=row.name or "",
            scopes=tuple(row.scopes),
            metadata=dict(row.meta),
            secret_hash=row.secret_hash,
            created=row.created,
            issuer=row.issuer,
        )

    def to_pb(self) -> pb.Account:
        return pb.Account(
            id=self.id,
            type=self.type,
            issuer=self.issuer,
            name=self.name,
            scopes=list(self.scopes),
            metadata=dict(self.metadata),
            created=int(self.created.timestamp()),
        )


async def find_account(
    session: AsyncSession, *, account_id: str = "", name: str = ""
) -> AccountRecord | None:
    """The account with ``account_id``, else the one named ``name`` (normalised)."""
    query = select(tables.accounts)
    if account_id:
        query = query.where(tables.accounts.c.id == account_id)
    elif name:
        query = query.where(
            tables.accounts.c.issuer == ISSUER, tables.accounts.c.name == normalise_name(name)
        )
    else:
        return None
    row = (await session.execute(query)).first()
    return None if row is None else AccountRecord.from_row(row)


async def is_blocked(session: AsyncSession, account_id: str) -> bool:
    found = await session.execute(
        select(tables.blocks.c.account_id).where(tables.blocks.c.account_id == account_id)
    )
    return found.first() is not None
