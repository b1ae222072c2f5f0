"""Recovering admin access from the machine: ``m3o admin reset``.

It works on the database directly, without the running platform and without any token:
access to the database (its file or its URL with credentials) is the proof of authority,
as it already allows anything. The account (``admin`` by default) ends up existing, of type
``user`` with scope ``admin``, unblocked, with the given password and no live session.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, update

from m3o.runtime.auth import ISSUER
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.counters import CounterStore
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.auth import tables
from m3o.services.auth.lockout import ADMIN_SCOPE
from m3o.services.auth.passwords import Passwords
from m3o.services.auth.records import find_account, is_blocked, normalise_name
from m3o.services.auth.revocation import CounterMirror, revoke_sessions

__all__ = ["AdminReset", "reset_admin"]


@dataclass(frozen=True, slots=True)
class AdminReset:
    account_id: str
    created: bool
    """The account did not exist (it had been deleted) and was made again."""
    was_blocked: bool


async def reset_admin(
    sessions: SessionFactory,
    counters: CounterStore,
    *,
    account_id: str,
    password: str,
    passwords: Passwords | None = None,
    clock: Clock = utc_now,
) -> AdminReset:
    """Unblock ``account_id``, make it an admin with ``password`` and end its sessions."""
    if not account_id or not password:
        raise ValueError("an account id and a password are required")
    hashed = await (passwords or Passwords()).hash(password)
    now = clock()
    a, b = tables.accounts.c, tables.blocks.c
    async with transaction(sessions) as session:
        current = await find_account(session, account_id=account_id)
        was_blocked = await is_blocked(session, account_id)
        await session.execute(delete(tables.blocks).where(b.account_id == account_id))
        if current is None:
            name = normalise_name(account_id)
            taken = await find_account(session, name=name)
            await session.execute(
                insert(tables.accounts).values(
                    id=account_id,
                    type="user",
                    issuer=ISSUER,
                    name=None if taken is not None else name,
                    scopes=[ADMIN_SCOPE],
                    meta={},
                    secret_hash=hashed,
                    created=now,
                    updated=now,
                )
            )
        else:
            scopes = list(current.scopes)
            if ADMIN_SCOPE not in scopes:
                scopes.append(ADMIN_SCOPE)
            await session.execute(
                update(tables.accounts)
                .where(a.id == account_id)
                .values(type="user", scopes=scopes, secret_hash=hashed, updated=now)
            )
        revoked = await revoke_sessions(session, now, account_id=account_id)
    mirror = CounterMirror(sessions, counters, clock)
    await mirror.unblocked(account_id)
    await mirror.revoked(revoked)
    return AdminReset(account_id, created=current is None, was_blocked=was_blocked)
