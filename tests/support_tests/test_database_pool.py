"""The suite's pool of PostgreSQL schemas (``support.backends``): a schema a test leaves is
given to the next one as new, or dropped when it cannot be."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.store import create_engine
from support.backends import drop_engine, make_engine, postgres_url

CUSTOMER = (
    "INSERT INTO customers_customers (id, email, status, name, meta, created, updated) "
    "VALUES ('c1', 'a@example.com', 'active', '', '{}', now(), now())"
)
EMAIL = "INSERT INTO customers_emails (email, customer_id) VALUES ('a@example.com', 'c1')"
NEXT_SEQ = "SELECT nextval('usage_events_seq_seq')"


async def _rows(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def _schema_exists(schema: str) -> bool:
    admin = create_engine(postgres_url(), pool_size=1)
    try:
        async with admin.connect() as conn:
            found = await conn.execute(
                text("SELECT count(*) FROM pg_namespace WHERE nspname = :schema"),
                {"schema": schema},
            )
            return bool(found.scalar_one())
    finally:
        await admin.dispose()


async def test_a_schema_taken_again_has_no_rows_and_its_sequences_start_over(
    tmp_path: Path,
) -> None:
    engine, schema = await make_engine("postgres", tmp_path)
    async with engine.begin() as conn:
        await conn.execute(text(CUSTOMER))
        await conn.execute(text(EMAIL))  # a child row: emptied before its parent
        for _ in range(3):
            await conn.execute(text(NEXT_SEQ))
    await drop_engine(engine, schema)

    again, same = await make_engine("postgres", tmp_path)
    try:
        assert same == schema
        assert await _rows(again, "customers_customers") == 0
        assert await _rows(again, "customers_emails") == 0
        async with again.connect() as conn:
            assert (await conn.execute(text(NEXT_SEQ))).scalar_one() == 1
    finally:
        await drop_engine(again, same)


async def test_a_schema_whose_table_a_test_dropped_is_dropped_not_pooled(
    tmp_path: Path,
) -> None:
    engine, schema = await make_engine("postgres", tmp_path)
    assert schema is not None
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE usage_history"))
    await drop_engine(engine, schema)

    assert not await _schema_exists(schema)
    other, fresh = await make_engine("postgres", tmp_path)
    try:
        assert fresh != schema
        assert await _rows(other, "usage_history") == 0
    finally:
        await drop_engine(other, fresh)
