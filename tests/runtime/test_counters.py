"""Both counter stores behave alike: the SQL store (SQLite, PostgreSQL) and Redis.

Time moves by the SQL store's injected clock, and by real (short) sleeps on Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from m3o.runtime.counters.redis import RedisCounterStore, redis_counter_store
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.errors import Unavailable
from m3o.runtime.store import create_engine, sqlite_url
from runtime.counters_fixtures import (  # noqa: F401 - a fixture
    LONG,
    PAST_SHORT,
    SHORT,
    Clock,
    Subject,
    call,
    sqlite_threads_stopped,
    subject_fixture,
)
from support.backends import DATABASE_BACKENDS, drop_engine, make_engine
from support.database_failures import postgres_out_of_slots
from support.ports import closed_port

# Counters


async def test_incr_creates_adds_and_subtracts(subject: Subject) -> None:
    store = subject.store
    assert await store.incr("c") == 1
    assert await store.incr("c", 41) == 42
    assert await store.incr("c", -50) == -8
    assert await store.get("c") == -8


async def test_missing_counter_reads_zero(subject: Subject) -> None:
    assert await subject.store.get("nothing") == 0


async def test_get_many_returns_values_in_order_with_zero_for_missing(subject: Subject) -> None:
    store = subject.store
    await store.incr("a", 1)
    await store.incr("b", 2)
    assert await store.get_many(["b", "missing", "a", "b"]) == [2, 0, 1, 2]
    assert await store.get_many([]) == []


async def test_delete_removes_counters_and_values_and_ignores_missing(subject: Subject) -> None:
    store = subject.store
    await store.incr("a", 5)
    await store.set_value("v", "x")
    await store.incr("kept", 1)
    await store.delete("a", "v", "never-there")
    await store.delete()
    assert await store.get_many(["a", "kept"]) == [0, 1]
    assert await store.get_value("v") is None
    assert await store.incr("a") == 1


async def test_concurrent_increments_are_all_counted(subject: Subject) -> None:
    await asyncio.gather(*(subject.store.incr("c", ttl=LONG) for _ in range(100)))
    assert await subject.store.get("c") == 100


async def test_counter_with_ttl_expires_and_restarts(subject: Subject) -> None:
    store = subject.store
    await store.incr("c", 7, ttl=SHORT)
    await subject.advance(PAST_SHORT)
    assert await store.get("c") == 0
    assert await store.get_many(["c"]) == [0]
    assert await store.incr("c", 2, ttl=SHORT) == 2


async def test_ttl_is_set_when_the_increment_creates_the_key_only(subject: Subject) -> None:
    store = subject.store
    await store.incr("short", ttl=SHORT)
    await store.incr("short", ttl=LONG)
    await store.incr("forever")
    await store.incr("forever", ttl=SHORT)
    await subject.advance(PAST_SHORT)
    assert await store.get_many(["short", "forever"]) == [0, 2]


async def test_incr_many_adds_each_amount_and_returns_the_new_values(subject: Subject) -> None:
    store = subject.store
    await store.incr("a", 10)
    assert await store.incr_many({"a": 5, "b": -2, "c": 1}) == {"a": 15, "b": -2, "c": 1}
    assert await store.incr_many({}) == {}
    assert await store.get_many(["a", "b", "c"]) == [15, -2, 1]


async def test_incr_many_sets_the_ttl_only_on_keys_it_creates(subject: Subject) -> None:
    store = subject.store
    await store.incr("forever", 1)
    await store.incr("long", 1, ttl=LONG)
    await store.incr("expired", 9, ttl=SHORT)
    await subject.advance(PAST_SHORT)
    assert await store.incr_many({"forever": 1, "long": 1, "new": 1, "expired": 1}, ttl=SHORT) == {
        "forever": 2,
        "long": 2,
        "new": 1,
        "expired": 1,
    }
    await subject.advance(PAST_SHORT)
    assert await store.get_many(["forever", "long", "new", "expired"]) == [2, 2, 0, 0]


async def test_concurrent_batched_increments_are_all_counted(subject: Subject) -> None:
    await asyncio.gather(*(subject.store.incr_many({"a": 1, "b": 2}, ttl=LONG) for _ in range(50)))
    assert await subject.store.get_many(["a", "b"]) == [50, 100]


async def test_incr_existing_adds_to_an_existing_counter(subject: Subject) -> None:
    store = subject.store
    await store.incr("c", 10)
    assert await store.incr_existing("c", 5) == 15
    assert await store.incr_existing("c", -20) == -5
    assert await store.get("c") == -5


async def test_incr_existing_on_a_missing_counter_writes_nothing(subject: Subject) -> None:
    store = subject.store
    assert await store.incr_existing("missing", 5) is None
    assert await store.get("missing") == 0
    assert await store.set_counter_if_absent("missing", 1) is True


async def test_incr_existing_on_an_expired_counter_writes_nothing(subject: Subject) -> None:
    store = subject.store
    await store.incr("c", 3, ttl=SHORT)
    await subject.advance(PAST_SHORT)
    assert await store.incr_existing("c", 5) is None
    assert await store.get("c") == 0


async def test_incr_existing_keeps_the_expiry(subject: Subject) -> None:
    store = subject.store
    await store.incr("c", 3, ttl=SHORT)
    assert await store.incr_existing("c", 1) == 4
    await subject.advance(PAST_SHORT)
    assert await store.get("c") == 0


async def test_set_counter_if_absent_creates_once(subject: Subject) -> None:
    store = subject.store
    assert await store.set_counter_if_absent("c", 500) is True
    assert await store.set_counter_if_absent("c", 7) is False
    assert await store.get("c") == 500
    assert await store.incr("c", -1) == 499


async def test_set_counter_if_absent_keeps_an_existing_counter(subject: Subject) -> None:
    store = subject.store
    await store.incr("c", 2)
    assert await store.set_counter_if_absent("c", 100) is False
    assert await store.get("c") == 2


async def test_set_counter_if_absent_concurrently_creates_exactly_once(subject: Subject) -> None:
    results = await asyncio.gather(
        *(subject.store.set_counter_if_absent("c", i) for i in range(1, 51))
    )
    assert results.count(True) == 1
    assert await subject.store.get("c") == results.index(True) + 1


async def test_set_counter_if_absent_with_ttl_expires_and_can_be_set_again(
    subject: Subject,
) -> None:
    store = subject.store
    assert await store.set_counter_if_absent("c", -4, ttl=SHORT) is True
    assert await store.get("c") == -4
    await subject.advance(PAST_SHORT)
    assert await store.get("c") == 0
    assert await store.set_counter_if_absent("c", 9) is True
    await subject.advance(PAST_SHORT)
    assert await store.get("c") == 9


async def test_set_counter_replaces_the_value_and_the_expiry(subject: Subject) -> None:
    store = subject.store
    await store.incr("c", 40)
    await store.set_counter("c", 7, ttl=SHORT)
    assert await store.get("c") == 7
    assert await store.incr("c") == 8
    await subject.advance(PAST_SHORT)
    assert await store.get("c") == 0
    await store.set_counter("c", 3)
    await subject.advance(PAST_SHORT)
    assert await store.get("c") == 3


# Values


async def test_set_value_then_get_value(subject: Subject) -> None:
    store = subject.store
    assert await store.get_value("v") is None
    await store.set_value("v", "first")
    await store.set_value("v", "second ✓")
    assert await store.get_value("v") == "second ✓"


async def test_value_with_ttl_expires(subject: Subject) -> None:
    store = subject.store
    await store.set_value("v", "x", ttl=SHORT)
    assert await store.get_value("v") == "x"
    await subject.advance(PAST_SHORT)
    assert await store.get_value("v") is None


async def test_set_value_replaces_the_expiry(subject: Subject) -> None:
    store = subject.store
    await store.set_value("no-longer-expiring", "a", ttl=SHORT)
    await store.set_value("no-longer-expiring", "b")
    await store.set_value("now-expiring", "a")
    await store.set_value("now-expiring", "b", ttl=SHORT)
    await subject.advance(PAST_SHORT)
    assert await store.get_value("no-longer-expiring") == "b"
    assert await store.get_value("now-expiring") is None


async def test_set_if_absent_stores_once(subject: Subject) -> None:
    store = subject.store
    assert await store.set_if_absent("lock", "first", ttl=LONG) is True
    assert await store.set_if_absent("lock", "second", ttl=LONG) is False
    assert await store.get_value("lock") == "first"


async def test_set_if_absent_concurrently_stores_exactly_once(subject: Subject) -> None:
    results = await asyncio.gather(
        *(subject.store.set_if_absent("lock", str(i), ttl=LONG) for i in range(50))
    )
    assert results.count(True) == 1


async def test_set_if_absent_succeeds_again_after_expiry(subject: Subject) -> None:
    store = subject.store
    assert await store.set_if_absent("lock", "first", ttl=SHORT) is True
    await subject.advance(PAST_SHORT)
    assert await store.set_if_absent("lock", "second", ttl=LONG) is True
    assert await store.get_value("lock") == "second"


# Rate windows


async def test_hit_allows_limit_then_refuses_with_sensible_remaining(subject: Subject) -> None:
    store = subject.store
    window = timedelta(seconds=10)
    decisions = [await store.hit("r", limit=3, window=window) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0, 0]
    assert all(d.limit == 3 for d in decisions)
    assert all(9 < d.reset_after <= 10 for d in decisions)
    assert decisions[-1].reset_after <= decisions[0].reset_after


async def test_hit_is_exact_under_concurrency(subject: Subject) -> None:
    decisions = await asyncio.gather(
        *(subject.store.hit("r", limit=50, window=LONG) for _ in range(200))
    )
    assert sum(d.allowed for d in decisions) == 50
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(50))


async def test_refused_hits_do_not_use_up_the_window(subject: Subject) -> None:
    store = subject.store
    for _ in range(2):
        await store.hit("r", limit=2, window=LONG)
    for _ in range(5):
        assert not (await store.hit("r", limit=2, window=LONG)).allowed
    assert await store.get("r") == 2


async def test_a_new_window_starts_fresh(subject: Subject) -> None:
    store = subject.store
    await store.hit("r", limit=2, window=SHORT)
    await store.hit("r", limit=2, window=SHORT)
    assert not (await store.hit("r", limit=2, window=SHORT)).allowed
    await subject.advance(PAST_SHORT)
    decision = await store.hit("r", limit=2, window=SHORT)
    assert decision.allowed
    assert decision.remaining == 1
    assert 0 < decision.reset_after <= SHORT.total_seconds()


async def test_windows_of_different_keys_are_independent(subject: Subject) -> None:
    store = subject.store
    assert (await store.hit("a", limit=1, window=LONG)).allowed
    assert (await store.hit("b", limit=1, window=LONG)).allowed
    assert not (await store.hit("a", limit=1, window=LONG)).allowed


async def test_hit_with_zero_limit_refuses(subject: Subject) -> None:
    decision = await subject.store.hit("r", limit=0, window=LONG)
    assert not decision.allowed
    assert decision.remaining == 0


async def test_hit_on_a_counter_without_expiry_starts_a_window(subject: Subject) -> None:
    store = subject.store
    await store.incr("r", 10)
    decision = await store.hit("r", limit=2, window=SHORT)
    assert decision.allowed
    assert decision.remaining == 1
    await subject.advance(PAST_SHORT)
    assert await store.get("r") == 0


# Reachability


async def test_ping_succeeds_when_reachable(subject: Subject) -> None:
    await subject.store.ping()
    await subject.store.close()


async def test_unreachable_redis_is_unavailable() -> None:
    store = redis_counter_store(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        calls: list[Callable[[], Awaitable[object]]] = [
            store.ping,
            lambda: store.incr("c"),
            lambda: store.incr("c", ttl=LONG),
            lambda: store.get_many(["a", "b"]),
            lambda: store.get_value("v"),
            lambda: store.set_if_absent("v", "x", ttl=LONG),
            lambda: store.hit("r", limit=1, window=LONG),
            lambda: store.incr_existing("c", 1),
            lambda: store.set_counter_if_absent("c", 1),
        ]
        await _each_unavailable(calls)
    finally:
        await store.close()


async def test_redis_client_with_default_retries_is_unavailable_within_the_timeout() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=closed_port())
    store = RedisCounterStore(client, timeout=0.2)
    try:
        with pytest.raises(Unavailable):
            await asyncio.wait_for(store.hit("r", limit=1, window=LONG), timeout=2)
    finally:
        await client.aclose()


@pytest.mark.parametrize("backend", DATABASE_BACKENDS)
async def test_unreachable_database_is_unavailable(backend: str, tmp_path: Path) -> None:
    url = (
        sqlite_url(str(tmp_path / "missing-dir" / "m3o.db"))
        if backend == "sqlite"
        else f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/test"
    )
    engine = create_engine(url, pool_size=1)
    store = SqlCounterStore(engine)
    try:
        with pytest.raises(Unavailable):
            await store.ping()
        with pytest.raises(Unavailable):
            await store.incr("c")
        with pytest.raises(Unavailable):
            await store.incr_existing("c", 1)
        with pytest.raises(Unavailable):
            await store.set_counter_if_absent("c", 1)
    finally:
        await engine.dispose()
        await sqlite_threads_stopped()


# SQL only


@pytest.mark.parametrize("backend", DATABASE_BACKENDS)
async def test_purge_expired_deletes_only_expired_rows(backend: str, tmp_path: Path) -> None:
    engine, schema = await make_engine(backend, tmp_path)
    clock = Clock()
    store = SqlCounterStore(engine, now=clock.now)
    try:
        await store.incr("expiring", ttl=SHORT)
        await store.set_value("expiring-value", "x", ttl=SHORT)
        await store.hit("window", limit=5, window=SHORT)
        await store.incr("lasting", ttl=LONG)
        await store.set_value("forever", "x")
        await clock.advance(PAST_SHORT)
        assert await store.purge_expired() == 3
        assert await store.purge_expired() == 0
        assert await store.get("lasting") == 1
        assert await store.get_value("forever") == "x"
    finally:
        await drop_engine(engine, schema)


async def test_sql_store_rejects_a_naive_clock(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(str(tmp_path / "m3o.db")))
    store = SqlCounterStore(engine, now=lambda: datetime(2030, 1, 1))  # noqa: DTZ001
    try:
        with pytest.raises(ValueError, match="timezone-aware"):
            await store.get("c")
    finally:
        await engine.dispose()


async def test_a_postgres_server_out_of_connection_slots_is_unavailable() -> None:
    """Every connection slot taken ("sorry, too many clients already") is a database that
    cannot take the work now: a 503 to retry, not an internal error."""
    engine = postgres_out_of_slots()
    store = SqlCounterStore(engine)
    try:
        await _each_unavailable(
            [store.ping, lambda: store.incr("c"), lambda: store.admit_many([call()])]
        )
    finally:
        await engine.dispose()


async def _each_unavailable(calls: list[Callable[[], Awaitable[object]]]) -> None:
    """Each of ``calls`` fails with the counter store's Unavailable."""
    for attempt in calls:
        with pytest.raises(Unavailable) as caught:
            await attempt()
        assert caught.value == Unavailable("counters", "Counter store unavailable")
