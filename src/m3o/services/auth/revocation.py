"""Ending sessions, and the counter store's copy of what every process must refuse.

The database is the record: ``auth_blocks`` and the ``revoked`` time of ``auth_sessions``.
The counter store holds what :class:`~m3o.runtime.auth.tokens.JwtAuthenticator` checks on every
call: ``auth:blocked:<account>`` (no expiry) and ``auth:revoked:<session>`` (until the
session's last access token has expired). The database is written first, then the counter
store, so a failure in between is retried by repeating the (idempotent) call.

The counter store may lose everything (Redis keeps nothing on disk here): the copy is
rebuilt at start, and a marker key lets a periodic check notice a loss and rebuild it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.auth.tokens import blocked_key, revoked_session_key
from m3o.runtime.clock import Clock
from m3o.runtime.counters import CounterStore
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.auth import tables

__all__ = ["REVOCATION_MARGIN", "CounterMirror", "RevokedSession", "revoke_sessions"]

_log = get_logger(__name__)

REVOCATION_MARGIN = timedelta(minutes=1)
"""Kept beyond a token's expiry, covering the leeway verifiers allow for clock skew."""
_FILLED_KEY = "auth:mirror:filled"


@dataclass(frozen=True, slots=True)
class RevokedSession:
    id: str
    access_expires: datetime


async def revoke_sessions(
    session: AsyncSession, now: datetime, *, account_id: str = "", session_id: str = ""
) -> list[RevokedSession]:
    """Revoke one session, or every session of an account.

    Returns each revoked session (now or before) whose access tokens may still be live, so
    that repeating a revocation after a failure repairs the counter store too.
    """
    s = tables.sessions.c
    chosen: ColumnElement[bool] = s.id == session_id if session_id else s.account_id == account_id
    await session.execute(
        update(tables.sessions).where(chosen, s.revoked.is_(None)).values(revoked=now)
    )
    rows = await session.execute(
        select(s.id, s.access_expires).where(chosen, s.access_expires > now - REVOCATION_MARGIN)
    )
    return [RevokedSession(row.id, row.access_expires) for row in rows]


class CounterMirror:
    """Writes and rebuilds the counter store's copy of blocks and revoked sessions."""

    def __init__(self, sessions: SessionFactory, counters: CounterStore, clock: Clock) -> None:
        self._sessions = sessions
        self._counters = counters
        self._clock = clock

    async def revoked(self, revoked: Iterable[RevokedSession]) -> None:
        now = self._clock()
        for item in revoked:
            ttl = item.access_expires + REVOCATION_MARGIN - now
            if ttl > timedelta(0):
                await self._counters.incr(revoked_session_key(item.id), ttl=ttl)

    async def blocked(self, account_id: str) -> None:
        await self._counters.incr(blocked_key(account_id))

    async def unblocked(self, account_id: str) -> None:
        await self._counters.delete(blocked_key(account_id))

    async def restore(self) -> None:
        """Copy every block and every still-relevant revocation into the counter store."""
        now = self._clock()
        async with transaction(self._sessions) as session:
            blocked = (await session.scalars(select(tables.blocks.c.account_id))).all()
            s = tables.sessions.c
            rows = await session.execute(
                select(s.id, s.access_expires).where(
                    s.revoked.is_not(None), s.access_expires > now - REVOCATION_MARGIN
                )
            )
            revoked = [RevokedSession(row.id, row.access_expires) for row in rows]
        for account_id in blocked:
            await self.blocked(account_id)
        await self.revoked(revoked)
        await self._counters.set_value(_FILLED_KEY, "1")
        _log.info("auth.mirror_restored", blocked=len(blocked), revoked=len(revoked))

    async def restore_if_lost(self) -> None:
        """Rebuild the copy when the counter store has lost it (its marker is gone)."""
        if await self._counters.get_value(_FILLED_KEY) is None:
            _log.warning("auth.mirror_lost")
            await self.restore()
