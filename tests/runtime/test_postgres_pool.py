"""Pooled PostgreSQL connections are checked as they are taken: one the server ended is
replaced, so the next transaction after a restart (or a terminated backend) succeeds."""

from __future__ import annotations

from sqlalchemy import text

from m3o.runtime.store import create_engine
from support.backends import postgres_url


async def test_a_connection_the_server_ended_is_replaced_before_it_is_used() -> None:
    engine = create_engine(postgres_url(), pool_size=1, ping_after_idle=0)
    admin = create_engine(postgres_url(), pool_size=1)
    try:
        async with engine.begin() as conn:
            first = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with admin.begin() as conn:
            ended = await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            assert ended.scalar_one() is True
        async with engine.begin() as conn:
            second = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert second != first
    finally:
        await engine.dispose()
        await admin.dispose()
