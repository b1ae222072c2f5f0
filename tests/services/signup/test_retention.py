"""The retention cron deletes expired codes and reset tokens, and nothing else."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from m3o.services.signup.proto import signup_pb2 as pb
from m3o.services.signup.tables import codes, reset_tokens
from services.signup.support import World, call


async def count(world: World) -> tuple[int, int]:
    async with world.sessions() as session:
        pending = await session.scalar(select(func.count()).select_from(codes))
        tokens = await session.scalar(select(func.count()).select_from(reset_tokens))
    return int(pending or 0), int(tokens or 0)


async def test_purge_expired_removes_only_expired_codes_and_tokens(world: World) -> None:
    world.customers.add("old@example.com", "verified")
    await world.start_signup("ann@example.com")
    await world.handler.recover(pb.RecoverRequest(email="old@example.com"), call("Recover"))
    world.clock.advance(timedelta(minutes=11))
    fresh = await world.start_signup("bob@example.com")
    assert await count(world) == (2, 1)

    await world.handler.purge_expired()

    assert await count(world) == (1, 0)
    await world.verify(fresh, email="bob@example.com")
