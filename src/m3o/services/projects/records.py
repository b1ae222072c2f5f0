"""Project records: reading and writing the service's tables.

Every function works inside the caller's session, so the caller decides the transaction
(and publishes its event in the same one).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.events.projects import events_pb2 as events_pb
from m3o.services.projects.proto import projects_pb2 as pb
from m3o.services.projects.tables import accounts, members, projects

__all__ = [
    "ADMIN_ROLE",
    "DEFAULT_TIER",
    "Account",
    "MemberRecord",
    "ProjectRecord",
    "billed_to",
    "count_billed_to",
    "find",
    "insert_project",
    "lock_account",
    "of_member",
    "remove_memberships",
    "remove_projects",
    "save_account",
    "set_tier",
]

ADMIN_ROLE = "admin"
DEFAULT_TIER = "free"
"""The tier of a billing account whose subscription never changed."""


@dataclass(frozen=True, slots=True)
class MemberRecord:
    id: str
    roles: tuple[str, ...] = (ADMIN_ROLE,)


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    """One project as stored; ``created`` is timezone-aware UTC."""

    id: str
    name: str
    billing_account: str
    created: datetime
    members: tuple[MemberRecord, ...] = field(default=())

    def has_member(self, member_id: str) -> bool:
        return any(member.id == member_id for member in self.members)

    def to_proto(self) -> pb.Project:
        return pb.Project(
            id=self.id,
            name=self.name,
            billing_account=self.billing_account,
            members=[pb.Member(id=m.id, roles=list(m.roles)) for m in self.members],
        )

    def event_data(self) -> dict[str, str]:
        """The fields ProjectCreated and ProjectDeleted carry."""
        return {"id": self.id, "name": self.name, "billing_account": self.billing_account}

    def created_event(self) -> events_pb.Event:
        return events_pb.Event(
            type=events_pb.EventTypeProjectCreated,
            project_created=events_pb.ProjectCreated(**self.event_data()),
        )

    def deleted_event(self) -> events_pb.Event:
        return events_pb.Event(
            type=events_pb.EventTypeProjectDeleted,
            project_deleted=events_pb.ProjectDeleted(**self.event_data()),
        )


@dataclass(frozen=True, slots=True)
class Account:
    """A billing account's row: its tier and what happened to it."""

    id: str
    tier: str = DEFAULT_TIER
    tier_changed: datetime | None = None
    default_made: bool = False
    deleted: datetime | None = None


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def _with_members(session: AsyncSession, query: Select[Any]) -> list[ProjectRecord]:
    rows = (await session.execute(query)).all()
    if not rows:
        return []
    ids = [row.id for row in rows]
    member_rows = (
        await session.execute(
            select(members)
            .where(members.c.project_id.in_(ids))
            .order_by(members.c.project_id, members.c.member_id)
        )
    ).all()
    by_project: dict[str, list[MemberRecord]] = {}
    for row in member_rows:
        roles = row.roles if isinstance(row.roles, list) else []
        by_project.setdefault(row.project_id, []).append(
            MemberRecord(id=row.member_id, roles=tuple(str(r) for r in roles))
        )
    return [
        ProjectRecord(
            id=row.id,
            name=row.name,
            billing_account=row.billing_account,
            created=row.created,
            members=tuple(by_project.get(row.id, ())),
        )
        for row in rows
    ]


def _oldest_first(query: Select[Any]) -> Select[Any]:
    return query.order_by(projects.c.created, projects.c.id)


async def find(session: AsyncSession, project_id: str) -> ProjectRecord | None:
    """The project ``project_id`` with its members, or None."""
    found = await _with_members(session, select(projects).where(projects.c.id == project_id))
    return found[0] if found else None


async def of_member(session: AsyncSession, member_id: str) -> list[ProjectRecord]:
    """The projects ``member_id`` belongs to, oldest first."""
    mine = select(members.c.project_id).where(members.c.member_id == member_id)
    query = select(projects).where(projects.c.id.in_(mine))
    return await _with_members(session, _oldest_first(query))


async def billed_to(session: AsyncSession, billing_account: str) -> list[ProjectRecord]:
    """The projects ``billing_account`` pays for, oldest first."""
    query = select(projects).where(projects.c.billing_account == billing_account)
    return await _with_members(session, _oldest_first(query))


async def count_billed_to(session: AsyncSession, billing_account: str) -> int:
    query = select(func.count()).where(projects.c.billing_account == billing_account)
    return int((await session.execute(query)).scalar_one())


async def insert_project(session: AsyncSession, record: ProjectRecord) -> None:
    """Store a new project and its members."""
    await session.execute(
        insert(projects).values(
            id=record.id,
            name=record.name,
            billing_account=record.billing_account,
            created=record.created,
        )
    )
    for member in record.members:
        await session.execute(
            insert(members).values(
                project_id=record.id, member_id=member.id, roles=list(member.roles)
            )
        )


async def remove_projects(session: AsyncSession, project_ids: Collection[str]) -> None:
    """Remove projects and their memberships for good."""
    if not project_ids:
        return
    await session.execute(delete(members).where(members.c.project_id.in_(project_ids)))
    await session.execute(delete(projects).where(projects.c.id.in_(project_ids)))


async def remove_memberships(session: AsyncSession, member_id: str) -> None:
    """Remove ``member_id`` from every project it belongs to."""
    await session.execute(delete(members).where(members.c.member_id == member_id))


async def lock_account(session: AsyncSession, account_id: str) -> Account:
    """The billing account's row, made if missing, locked until the transaction ends.

    Every change to the projects an account pays for goes through here first, so such
    changes of one account happen one after another (on SQLite every write transaction
    does anyway). On PostgreSQL a concurrent first insert waits for the other, then finds
    its row.
    """
    await session.execute(
        _insert(session, accounts)
        .values(id=account_id, tier=DEFAULT_TIER, default_made=False)
        .on_conflict_do_nothing(index_elements=[accounts.c.id])
    )
    row = (
        await session.execute(select(accounts).where(accounts.c.id == account_id).with_for_update())
    ).one()
    return Account(
        id=row.id,
        tier=row.tier,
        tier_changed=row.tier_changed,
        default_made=bool(row.default_made),
        deleted=row.deleted,
    )


async def save_account(session: AsyncSession, account: Account) -> None:
    """Write a (locked) account's flags."""
    await session.execute(
        update(accounts)
        .where(accounts.c.id == account.id)
        .values(default_made=account.default_made, deleted=account.deleted)
    )


async def set_tier(session: AsyncSession, account_id: str, tier: str, changed: datetime) -> None:
    """Set the account's tier as of ``changed``, unless a later change is recorded."""
    statement = _insert(session, accounts).values(
        id=account_id, tier=tier, tier_changed=changed, default_made=False
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[accounts.c.id],
            set_={"tier": statement.excluded.tier, "tier_changed": statement.excluded.tier_changed},
            where=(accounts.c.tier_changed.is_(None))
            | (accounts.c.tier_changed <= statement.excluded.tier_changed),
        )
    )
