"""Reading and writing the signup tables.

Every function works inside the caller's session, so the caller decides the transaction
(and publishes its event in the same one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.services.signup.tables import codes, onboarding, reset_tokens, tracking, waitlist

__all__ = [
    "CodeRecord",
    "OnboardingRecord",
    "ResetTokenRecord",
    "TrackRecord",
    "add_to_waitlist",
    "claim_code",
    "consume_code",
    "delete_customer",
    "find_code",
    "find_reset_token",
    "find_track",
    "insert_reset_token",
    "onboarding_done",
    "purge_expired",
    "release_code",
    "replace_code",
    "save_track",
    "set_onboarding_step",
    "set_reset_token_used",
    "wrong_attempt",
]


@dataclass(frozen=True, slots=True)
class CodeRecord:
    """A pending verification code (its hash) of one address."""

    id: str
    email: str
    customer_id: str
    code_hash: str
    salt: str
    created: datetime
    expires: datetime
    attempts: int = 0
    claimed_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class ResetTokenRecord:
    """A password-reset token (its hash)."""

    id: str
    token_hash: str
    email: str
    customer_id: str
    created: datetime
    expires: datetime
    used: datetime | None = None


@dataclass(frozen=True, slots=True)
class OnboardingRecord:
    """Which onboarding steps are done for a customer (None: not yet)."""

    customer_id: str
    promo_granted: datetime | None = None
    welcome_scheduled: datetime | None = None


@dataclass(frozen=True, slots=True)
class TrackRecord:
    """A visitor's signup journey; times are unix seconds, 0 when not known."""

    id: str
    email: str
    first_visit: int
    first_verification: int
    registration: int
    referrer: str
    created: datetime
    updated: datetime


def _insert(session: AsyncSession, table: Table) -> Any:
    """An INSERT that can skip rows whose key exists, in the session's SQL dialect."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


# -- verification codes ---------------------------------------------------------------------


def _code(row: Row[Any]) -> CodeRecord:
    return CodeRecord(
        id=row.id,
        email=row.email,
        customer_id=row.customer_id,
        code_hash=row.code_hash,
        salt=row.salt,
        created=row.created,
        expires=row.expires,
        attempts=row.attempts,
        claimed_until=row.claimed_until,
    )


async def replace_code(session: AsyncSession, record: CodeRecord) -> None:
    """Store ``record`` as the address's pending code, replacing any earlier one (in one
    statement, so two concurrent Users of one address cannot collide)."""
    values = {
        "id": record.id,
        "customer_id": record.customer_id,
        "code_hash": record.code_hash,
        "salt": record.salt,
        "created": record.created,
        "expires": record.expires,
        "attempts": record.attempts,
        "claimed_until": record.claimed_until,
    }
    await session.execute(
        _insert(session, codes)
        .values(email=record.email, **values)
        .on_conflict_do_update(index_elements=[codes.c.email], set_=values)
    )


async def find_code(session: AsyncSession, email: str, *, lock: bool = False) -> CodeRecord | None:
    query = select(codes).where(codes.c.email == email)
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return None if row is None else _code(row)


async def wrong_attempt(session: AsyncSession, record: CodeRecord, *, void: bool) -> None:
    """Count a wrong attempt at ``record``; ``void`` removes the code instead."""
    if void:
        await session.execute(delete(codes).where(codes.c.id == record.id))
        return
    await session.execute(
        update(codes).where(codes.c.id == record.id).values(attempts=codes.c.attempts + 1)
    )


async def claim_code(session: AsyncSession, record: CodeRecord, until: datetime) -> None:
    """Hold ``record`` for one Verify until ``until`` (others are refused meanwhile)."""
    await session.execute(update(codes).where(codes.c.id == record.id).values(claimed_until=until))


async def release_code(session: AsyncSession, code_id: str) -> None:
    """Give up the hold on a code: it can be used again."""
    await session.execute(update(codes).where(codes.c.id == code_id).values(claimed_until=None))


async def consume_code(session: AsyncSession, code_id: str) -> bool:
    """Remove a used code; False if it was gone already (replaced by a newer one)."""
    result = await session.execute(delete(codes).where(codes.c.id == code_id))
    return bool(getattr(result, "rowcount", 0))


# -- reset tokens ---------------------------------------------------------------------------


def _reset_token(row: Row[Any]) -> ResetTokenRecord:
    return ResetTokenRecord(
        id=row.id,
        token_hash=row.token_hash,
        email=row.email,
        customer_id=row.customer_id,
        created=row.created,
        expires=row.expires,
        used=row.used,
    )


async def insert_reset_token(session: AsyncSession, record: ResetTokenRecord) -> None:
    """Store a new token; the address's earlier unused tokens stop working."""
    await session.execute(
        delete(reset_tokens).where(
            reset_tokens.c.email == record.email, reset_tokens.c.used.is_(None)
        )
    )
    await session.execute(
        reset_tokens.insert().values(
            token_hash=record.token_hash,
            id=record.id,
            email=record.email,
            customer_id=record.customer_id,
            created=record.created,
            expires=record.expires,
            used=record.used,
        )
    )


async def find_reset_token(session: AsyncSession, token_hash: str) -> ResetTokenRecord | None:
    row = (
        await session.execute(select(reset_tokens).where(reset_tokens.c.token_hash == token_hash))
    ).first()
    return None if row is None else _reset_token(row)


async def set_reset_token_used(session: AsyncSession, token_id: str, used: datetime | None) -> bool:
    """Mark a token used (``used`` a time: only if it was unused) or unused again (None).

    Returns whether the row changed, so two concurrent uses cannot both succeed.
    """
    query = update(reset_tokens).where(reset_tokens.c.id == token_id)
    if used is not None:
        query = query.where(reset_tokens.c.used.is_(None))
    result = await session.execute(query.values(used=used))
    return bool(getattr(result, "rowcount", 0))


# -- onboarding -----------------------------------------------------------------------------


async def onboarding_done(session: AsyncSession, customer_id: str) -> OnboardingRecord:
    row = (
        await session.execute(select(onboarding).where(onboarding.c.customer_id == customer_id))
    ).first()
    if row is None:
        return OnboardingRecord(customer_id)
    return OnboardingRecord(customer_id, row.promo_granted, row.welcome_scheduled)


async def set_onboarding_step(
    session: AsyncSession, customer_id: str, step: str, when: datetime
) -> None:
    """Record that ``step`` (``promo_granted`` or ``welcome_scheduled``) is done."""
    await session.execute(
        _insert(session, onboarding)
        .values(customer_id=customer_id)
        .on_conflict_do_nothing(index_elements=[onboarding.c.customer_id])
    )
    await session.execute(
        update(onboarding).where(onboarding.c.customer_id == customer_id).values({step: when})
    )


# -- tracking and the waitlist --------------------------------------------------------------


async def find_track(session: AsyncSession, track_id: str) -> TrackRecord | None:
    query = select(tracking).where(tracking.c.id == track_id).with_for_update()
    row = (await session.execute(query)).first()
    if row is None:
        return None
    return TrackRecord(
        id=row.id,
        email=row.email,
        first_visit=row.first_visit,
        first_verification=row.first_verification,
        registration=row.registration,
        referrer=row.referrer,
        created=row.created,
        updated=row.updated,
    )


async def save_track(session: AsyncSession, record: TrackRecord, *, new: bool) -> None:
    """Insert (``new``) or update a journey. A concurrent insert of the same id raises
    ``sqlalchemy.exc.IntegrityError``."""
    values = {
        "email": record.email,
        "first_visit": record.first_visit,
        "first_verification": record.first_verification,
        "registration": record.registration,
        "referrer": record.referrer,
        "updated": record.updated,
    }
    if new:
        await session.execute(
            tracking.insert().values(id=record.id, created=record.created, **values)
        )
    else:
        await session.execute(update(tracking).where(tracking.c.id == record.id).values(values))


async def add_to_waitlist(session: AsyncSession, email: str, when: datetime) -> None:
    """Put ``email`` on the waitlist once; an address already there keeps its time."""
    await session.execute(
        _insert(session, waitlist)
        .values(email=email, created=when)
        .on_conflict_do_nothing(index_elements=[waitlist.c.email])
    )


# -- retention ------------------------------------------------------------------------------


async def purge_expired(session: AsyncSession, now: datetime) -> tuple[int, int]:
    """Delete expired codes and reset tokens; returns how many of each."""
    gone_codes = await session.execute(delete(codes).where(codes.c.expires < now))
    gone_tokens = await session.execute(delete(reset_tokens).where(reset_tokens.c.expires < now))
    return int(getattr(gone_codes, "rowcount", 0)), int(getattr(gone_tokens, "rowcount", 0))


# -- erasure --------------------------------------------------------------------------------


async def delete_customer(session: AsyncSession, customer_id: str, email: str) -> int:
    """Delete every row of the customer, by id and (when given) by address; returns how
    many went."""
    statements = [
        delete(codes).where(codes.c.customer_id == customer_id),
        delete(reset_tokens).where(reset_tokens.c.customer_id == customer_id),
        delete(onboarding).where(onboarding.c.customer_id == customer_id),
    ]
    if email:
        statements += [
            delete(codes).where(codes.c.email == email),
            delete(reset_tokens).where(reset_tokens.c.email == email),
            delete(tracking).where(tracking.c.email == email),
            delete(waitlist).where(waitlist.c.email == email),
        ]
    gone = 0
    for statement in statements:
        result = await session.execute(statement)
        gone += int(getattr(result, "rowcount", 0))
    return gone
