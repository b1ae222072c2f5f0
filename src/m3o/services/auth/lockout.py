"""Keeping the platform administrable: Block and Delete never remove the last admin.

An *active admin* is an account of type ``user`` with scope ``admin`` that is not blocked.
Blocking or deleting one is refused with Conflict when no other active admin would remain,
and an account may never block or delete itself (BadRequest), since it could not undo it.
The check runs in the transaction of the change; on PostgreSQL it locks the ``user``
accounts' rows so that two admins blocking each other at the same moment cannot both pass
(SQLite runs one write transaction at a time anyway).

An operator who is locked out anyway (for instance by an older version) recovers with
``m3o admin reset`` on the database (:mod:`m3o.services.auth.recovery`).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.auth import CallContext
from m3o.runtime.errors import BadRequest, Conflict
from m3o.services.auth import tables

__all__ = ["ADMIN_SCOPE", "active_admins", "refuse_lockout"]

ADMIN_SCOPE = "admin"


async def active_admins(session: AsyncSession, *, lock: bool = False) -> set[str]:
    """Ids of the admin accounts that are not blocked."""
    a = tables.accounts.c
    query = select(a.id, a.scopes).where(a.type == "user")
    if lock:
        query = query.with_for_update()
    admins = {row.id for row in await session.execute(query) if ADMIN_SCOPE in row.scopes}
    if not admins:
        return admins
    b = tables.blocks.c
    blocked = set(await session.scalars(select(b.account_id).where(b.account_id.in_(admins))))
    return admins - blocked


async def refuse_lockout(
    session: AsyncSession, ctx: CallContext, account_id: str, action: str
) -> None:
    """Raise unless ``action`` (``block`` or ``delete``) of ``account_id`` is safe."""
    if ctx.account is not None and ctx.account.id == account_id:
        raise BadRequest(ctx.endpoint, f"You cannot {action} your own account")
    active = await active_admins(session, lock=True)
    if account_id in active and not active - {account_id}:
        raise Conflict(ctx.endpoint, f"Cannot {action} the last admin account")
