"""The blocklist: Block and Unblock.

A block is written to ``auth_blocks`` (the record) and then to the counter store, which
every process's :class:`~m3o.runtime.auth.tokens.JwtAuthenticator` reads on each call, so the
account's tokens stop working at once everywhere. A blocked account cannot get tokens
either. Blocks are independent of the account: an id can be blocked before it exists and
stays blocked if the account is deleted and created again (customers' ban and unban).
No account may block itself, and the last active admin cannot be blocked (``lockout.py``).
"""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from m3o.runtime.auth import CallContext, verify_admin
from m3o.runtime.clock import Clock
from m3o.runtime.errors import BadRequest
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.auth import tables
from m3o.services.auth.lockout import refuse_lockout
from m3o.services.auth.proto import auth_pb2 as pb
from m3o.services.auth.revocation import CounterMirror

__all__ = ["Blocklist"]


class Blocklist:
    def __init__(self, *, sessions: SessionFactory, mirror: CounterMirror, clock: Clock) -> None:
        self._sessions = sessions
        self._mirror = mirror
        self._clock = clock

    async def block(self, request: pb.BlockRequest, ctx: CallContext) -> pb.BlockResponse:
        verify_admin(ctx)
        if not request.id:
            raise BadRequest(ctx.endpoint, "Missing account id")
        b = tables.blocks.c
        try:
            async with transaction(self._sessions) as session:
                found = await session.execute(
                    select(b.account_id).where(b.account_id == request.id)
                )
                if found.first() is None:
                    await refuse_lockout(session, ctx, request.id, "block")
                    await session.execute(
                        insert(tables.blocks).values(account_id=request.id, created=self._clock())
                    )
        except IntegrityError:
            pass  # blocked by a concurrent call
        await self._mirror.blocked(request.id)
        return pb.BlockResponse()

    async def unblock(self, request: pb.UnblockRequest, ctx: CallContext) -> pb.UnblockResponse:
        verify_admin(ctx)
        if not request.id:
            raise BadRequest(ctx.endpoint, "Missing account id")
        async with transaction(self._sessions) as session:
            await session.execute(
                delete(tables.blocks).where(tables.blocks.c.account_id == request.id)
            )
        await self._mirror.unblocked(request.id)
        return pb.UnblockResponse()
