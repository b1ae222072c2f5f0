"""Email records: reading and writing ``emails_emails``.

Every function works inside the caller's session, so the caller decides the transaction.
Times are timezone-aware UTC and always come from the caller (its clock), never from the
database, so that tests can move time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.services.emails.proto import emails_pb2 as pb
from m3o.services.emails.tables import emails

__all__ = [
    "EmailRecord",
    "Status",
    "claim",
    "delete_to",
    "due_ids",
    "find",
    "find_by_key",
    "insert_new",
    "mark_failed",
    "mark_retry",
    "mark_sent",
    "recent",
]

MAX_ERROR_LENGTH = 500


class Status(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class EmailRecord:
    """One email as stored."""

    id: str
    sender: str
    recipient: str
    template_id: str
    subject: str
    text: str
    html: str
    created: datetime
    send_at: datetime
    due: datetime
    status: Status = Status.PENDING
    attempts: int = 0
    provider_template: str = ""
    template_data: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str = ""
    locked_until: datetime | None = None
    sent_at: datetime | None = None
    transport: str = ""
    last_error: str = ""

    def to_proto(self) -> pb.OutboxEmail:
        message = pb.OutboxEmail(
            id=self.id,
            time=_seconds(self.sent_at),
            to=self.recipient,
            subject=self.subject,
            text=self.text,
            template_id=self.template_id,
            status=self.status.value,
            created=_seconds(self.created),
            send_at=_seconds(self.send_at),
            attempts=self.attempts,
            error=self.last_error,
            transport=self.transport,
        )
        setattr(message, "from", self.sender)
        return message


def _seconds(value: datetime | None) -> int:
    return 0 if value is None else int(value.timestamp())


def _record(row: Row[Any]) -> EmailRecord:
    data = row.template_data if isinstance(row.template_data, dict) else {}
    return EmailRecord(
        id=row.id,
        sender=row.sender,
        recipient=row.recipient,
        template_id=row.template_id,
        subject=row.subject,
        text=row.text,
        html=row.html,
        created=row.created,
        send_at=row.send_at,
        due=row.due,
        status=Status(row.status),
        attempts=row.attempts,
        provider_template=row.provider_template,
        template_data=data,
        idempotency_key=row.idempotency_key or "",
        locked_until=row.locked_until,
        sent_at=row.sent_at,
        transport=row.transport,
        last_error=row.last_error,
    )


async def insert_new(session: AsyncSession, record: EmailRecord) -> None:
    """Store a new email.

    Raises ``sqlalchemy.exc.IntegrityError`` when its idempotency key is taken.
    """
    await session.execute(
        insert(emails).values(
            id=record.id,
            idempotency_key=record.idempotency_key or None,
            sender=record.sender,
            recipient=record.recipient,
            template_id=record.template_id,
            subject=record.subject,
            text=record.text,
            html=record.html,
            provider_template=record.provider_template,
            template_data=dict(record.template_data),
            status=record.status.value,
            attempts=record.attempts,
            created=record.created,
            send_at=record.send_at,
            due=record.due,
            locked_until=None,
            sent_at=None,
            transport="",
            last_error="",
        )
    )


async def find(session: AsyncSession, email_id: str) -> EmailRecord | None:
    row = (await session.execute(select(emails).where(emails.c.id == email_id))).first()
    return None if row is None else _record(row)


async def find_by_key(session: AsyncSession, key: str) -> EmailRecord | None:
    query = select(emails).where(emails.c.idempotency_key == key)
    row = (await session.execute(query)).first()
    return None if row is None else _record(row)


def _claimable(now: datetime) -> Any:
    return (
        (emails.c.status == Status.PENDING.value)
        & (emails.c.due <= now)
        & or_(emails.c.locked_until.is_(None), emails.c.locked_until <= now)
    )


async def due_ids(session: AsyncSession, now: datetime, limit: int) -> list[str]:
    """Pending emails that may be tried at ``now`` and nobody holds, longest due first."""
    query = (
        select(emails.c.id).where(_claimable(now)).order_by(emails.c.due, emails.c.id).limit(limit)
    )
    return [str(value) for value in (await session.execute(query)).scalars()]


async def claim(
    session: AsyncSession, email_id: str, now: datetime, lease_until: datetime
) -> EmailRecord | None:
    """Hold email ``email_id`` until ``lease_until`` and count one more attempt.

    None when it is not pending, not due yet, or held by another delivery. The conditional
    update is atomic on both databases, so two deliveries never hold one email at once.
    """
    result = await session.execute(
        update(emails)
        .where(emails.c.id == email_id, _claimable(now))
        .values(locked_until=lease_until, attempts=emails.c.attempts + 1)
    )
    if not getattr(result, "rowcount", 0):
        return None
    return await find(session, email_id)


async def mark_sent(session: AsyncSession, email_id: str, now: datetime, transport: str) -> None:
    await session.execute(
        update(emails)
        .where(emails.c.id == email_id)
        .values(
            status=Status.SENT.value,
            sent_at=now,
            transport=transport,
            locked_until=None,
            last_error="",
        )
    )


async def mark_retry(session: AsyncSession, email_id: str, due: datetime, error: str) -> None:
    """Release the email to be tried again at ``due``."""
    await session.execute(
        update(emails)
        .where(emails.c.id == email_id)
        .values(due=due, locked_until=None, last_error=error[:MAX_ERROR_LENGTH])
    )


async def mark_failed(session: AsyncSession, email_id: str, error: str) -> None:
    """Give up on the email: it stays, visible to operators, and is never tried again."""
    await session.execute(
        update(emails)
        .where(emails.c.id == email_id)
        .values(status=Status.FAILED.value, locked_until=None, last_error=error[:MAX_ERROR_LENGTH])
    )


async def recent(
    session: AsyncSession, *, limit: int, recipient: str = "", status: str = ""
) -> list[EmailRecord]:
    """Emails newest first (ties broken by id), optionally to one address or in one state."""
    query = select(emails)
    if recipient:
        query = query.where(emails.c.recipient == recipient)
    if status:
        query = query.where(emails.c.status == status)
    query = query.order_by(emails.c.created.desc(), emails.c.id.desc()).limit(limit)
    return [_record(row) for row in (await session.execute(query)).all()]


async def delete_to(session: AsyncSession, recipient: str) -> int:
    """Delete every email to ``recipient`` (normalised; matched whatever its case), sent
    or not; returns how many went."""
    result = await session.execute(
        delete(emails).where(func.lower(emails.c.recipient) == recipient)
    )
    return int(getattr(result, "rowcount", 0))
