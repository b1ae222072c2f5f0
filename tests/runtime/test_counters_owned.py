"""The owned counter store (``m3o serve`` on SQLite): what reaches the database, when.

The shared suites (``test_counters.py``, ``test_admission.py``) hold it to every counter
store's behaviour; these tests check what is particular to it: reservations stay in memory,
a served call's charge is written with its rider in one transaction, and the database
always holds what it must if the process died now (every unserved reservation released).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.counters.admission import FREE, NO_CAP, AdmissionRequest, Verdict
from m3o.runtime.counters.owned import OwnedCounterStore, RiderWrite
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.errors import Unavailable
from m3o.runtime.store import create_engine, sqlite_url
from m3o.runtime.store.migrate import upgrade

PRICE = 300

_METADATA = MetaData()
_NOTES = Table("test_owned_notes", _METADATA, Column("note", String, primary_key=True))


def paid(**changes: object) -> AdmissionRequest:
    fields: dict[str, object] = {
        "rate_key": "rate",
        "rate_limit": 1_000,
        "cap": NO_CAP,
        "cap_key": "ep",
        "price": PRICE,
        "free_key": "free",
        "free_quota": 0,
        "endpoint_key": "ep",
        "endpoint_quota": 0,
        "total_key": "total",
        "balance_key": "bal",
        "debited_key": "debited",
    }
    fields.update(changes)
    return AdmissionRequest(**fields)  # type: ignore[arg-type]


@pytest.fixture(name="engine")
async def engine_fixture(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url(tmp_path / "owned.db"))
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.run_sync(_METADATA.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(name="store")
async def store_fixture(engine: AsyncEngine) -> AsyncIterator[OwnedCounterStore]:
    store = OwnedCounterStore(engine)
    try:
        yield store
    finally:
        await store.close()


async def in_database(engine: AsyncEngine, *keys: str) -> list[int | None]:
    """What another process reading the file sees (None: no row)."""
    reader = SqlCounterStore(engine)
    found = []
    for key in keys:
        value = await reader.incr_existing(key, 0)
        found.append(value)
    return found


async def notes(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return sorted(str(n) for n in (await conn.execute(select(_NOTES.c.note))).scalars())


def add_note(db: sqlite3.Connection, note: str) -> None:
    """A rider's write: on SQLite's own connection, in the group commit's transaction."""
    db.execute(f"INSERT INTO {_NOTES.name} (note) VALUES (?)", (note,))


def rider(note: str) -> RiderWrite:
    return lambda db: add_note(db, note)


async def test_admissions_and_releases_write_nothing(
    store: OwnedCounterStore, engine: AsyncEngine
) -> None:
    await store.set_counter("bal", 1_000)
    [first, second] = await store.admit_many([paid(), paid()])
    assert first.admitted and second.admitted
    assert await store.get_many(["bal", "debited", "total"]) == [400, 600, 2]
    assert await in_database(engine, "bal", "debited", "total") == [1_000, None, None]
    await store.release(paid(), second)
    assert await store.get_many(["bal", "debited", "total"]) == [700, 300, 1]
    assert await in_database(engine, "bal", "debited", "total") == [1_000, None, None]


async def test_a_served_charge_is_written_with_its_rider_in_one_commit(
    store: OwnedCounterStore, engine: AsyncEngine
) -> None:
    await store.set_counter("bal", 1_000)
    [decision] = await store.admit_many([paid()])
    await store.commit_served(paid(), decision, lambda: rider("call-1"))
    assert await in_database(engine, "bal", "debited", "total", "ep") == [700, 300, 1, 1]
    assert await notes(engine) == ["call-1"]


async def test_calls_served_together_share_one_commit(
    store: OwnedCounterStore, engine: AsyncEngine
) -> None:
    await store.set_counter("bal", 10_000)
    decisions = await store.admit_many([paid() for _ in range(5)])
    taken: list[int] = []
    queued = [f"call-{n}" for n in range(5)]

    def take() -> RiderWrite | None:
        batch = list(queued)
        queued.clear()
        taken.append(len(batch))

        def write(db: sqlite3.Connection) -> None:
            for note in batch:
                add_note(db, note)

        return write if batch else None

    await asyncio.gather(*(store.commit_served(paid(), d, take) for d in decisions))
    assert taken == [5]  # one rider, one commit, for the five
    assert await in_database(engine, "bal", "debited", "total") == [8_500, 1_500, 5]
    assert len(await notes(engine)) == 5


async def test_calls_of_one_request_charged_differently_commit_what_each_reserved(
    store: OwnedCounterStore, engine: AsyncEngine
) -> None:
    """The gate shares one request among a key's calls to an endpoint: a commit of such
    calls, some free and some paid, with another project's, writes what each reserved."""
    await store.set_counter("bal", 10)
    await store.set_counter("bal-2", 1_000)
    free_first = paid(price=0, free_quota=2)
    other = paid(
        rate_key="rate-2",
        cap_key="ep-2",
        endpoint_key="ep-2",
        total_key="total-2",
        balance_key="bal-2",
        debited_key="debited-2",
    )
    requests = [free_first] * 4 + [other] * 2
    decisions = await store.admit_many(requests)
    assert [d.charge for d in decisions] == [FREE, FREE, "1", "1", "300", "300"]
    served = zip(requests, decisions, strict=True)
    await asyncio.gather(*(store.commit_served(r, d, None) for r, d in served))
    assert await in_database(engine, "free", "total", "ep", "bal", "debited") == [2, 4, 4, 8, 2]
    assert await in_database(engine, "total-2", "ep-2", "bal-2", "debited-2") == [2, 2, 400, 600]
    assert await store.get_many(["bal", "debited", "bal-2"]) == [8, 2, 400]


async def test_a_call_served_one_loop_turn_later_joins_the_same_commit(
    store: OwnedCounterStore, engine: AsyncEngine
) -> None:
    await store.set_counter("bal", 10_000)
    first, second = await store.admit_many([paid(), paid()])
    commits: list[int] = []

    def take() -> RiderWrite | None:
        commits.append(1)
        return None

    async def one_turn_later() -> None:
        await asyncio.sleep(0)
        await store.commit_served(paid(), second, take)

    await asyncio.gather(store.commit_served(paid(), first, take), one_turn_later())
    assert commits == [1]
    assert await in_database(engine, "bal", "debited", "total") == [9_400, 600, 2]


async def test_what_a_rider_asks_for_once_committed_runs_before_its_callers_return(
    store: OwnedCounterStore, engine: AsyncEngine
) -> None:
    await store.set_counter("bal", 1_000)
    [decision] = await store.admit_many([paid()])
    seen: list[list[str]] = []

    def write(db: sqlite3.Connection) -> Callable[[], None]:
        add_note(db, "call-1")
        return lambda: seen.append(["committed"])

    await store.commit_served(paid(), decision, lambda: write)

    assert seen == [["committed"]]
    assert await notes(engine) == ["call-1"]


async def test_nothing_asked_for_after_a_commit_runs_when_it_failed(
    store: OwnedCounterStore, engine: AsyncEngine
) -> None:
    await store.set_counter("bal", 1_000)
    first, second = await store.admit_many([paid(), paid()])
    ran: list[str] = []

    def fine(db: sqlite3.Connection) -> Callable[[], None]:
        add_note(db, "fine")
        return lambda: ran.append("fine")

    def failing(db: sqlite3.Connection) -> None:
        raise Unavailable("test", "Disk full")

    outcomes = await asyncio.gather(
        store.commit_served(paid(), first, lambda: fine),
        store.commit_served(paid(), second, lambda: failing),
        return_exceptions=True,
    )

    assert [type(o) for o in outcomes] == [Unavailable, Unavailable]  # one commit, failed
    assert ran == []
    assert await notes(engine) == []


async def test_after_a_crash_only_served_calls_are_charged(
    store: OwnedCounterStore, engine: AsyncEngine
) -> None:
    """A new store on the same file (the process restarted) finds what was served, never a
    reservation of a call in flight."""
    await store.set_counter("bal", 1_000)
    [served, in_flight] = await store.admit_many([paid(), paid()])
    await store.commit_served(paid(), served, None)
    # The process dies here: in_flight's reservation was only in memory.
    restarted = OwnedCounterStore(engine)
    try:
        assert await restarted.get_many(["bal", "debited", "total"]) == [700, 300, 1]
        [again] = await restarted.admit_many([paid()])
        assert again.admitted and await restarted.get("bal") == 400
    finally:
        await restarted.close()
    assert in_flight.admitted


async def test_a_failed_commit_releases_its_calls_and_drops_the_rider(
    store: OwnedCounterStore, engine: AsyncEngine
) -> None:
    await store.set_counter("bal", 1_000)
    [decision] = await store.admit_many([paid()])

    def failing(db: sqlite3.Connection) -> None:
        add_note(db, "lost")
        raise Unavailable("test", "Disk full")

    with pytest.raises(Unavailable):
        await store.commit_served(paid(), decision, lambda: failing)
    # Released: answered free, nothing charged, in memory or on disk.
    assert await store.get_many(["bal", "debited", "total"]) == [1_000, 0, 0]
    await store.flush()
    assert await in_database(engine, "bal") == [1_000]
    assert (await in_database(engine, "debited", "total")) in ([None, None], [0, 0])
    assert await notes(engine) == []
    # The store goes on: the next call is charged.
    [next_call] = await store.admit_many([paid()])
    await store.commit_served(paid(), next_call, None)
    assert await in_database(engine, "bal", "debited") == [700, 300]


async def test_a_value_set_while_calls_are_in_flight_is_written_as_if_they_were_released(
    store: OwnedCounterStore, engine: AsyncEngine
) -> None:
    """The balance service sets a hot balance aside and loads it again from debits that
    include a call in flight; the database must then hold what it would be without that
    call, and get the call's charge once the call is served."""
    await store.set_counter("bal", 1_000)
    [decision] = await store.admit_many([paid()])
    await store.delete("bal")
    live_debited = await store.get("debited")  # 300: the call in flight
    assert live_debited == PRICE
    await store.set_counter_if_absent("bal", 1_000 - live_debited)
    assert await in_database(engine, "bal", "debited") == [1_000, None]
    await store.commit_served(paid(), decision, None)
    assert await in_database(engine, "bal", "debited") == [700, 300]
    assert await store.get_many(["bal", "debited"]) == [700, 300]


async def test_a_released_call_leaves_a_reloaded_balance_as_the_ledger_says(
    store: OwnedCounterStore, engine: AsyncEngine
) -> None:
    await store.set_counter("bal", 1_000)
    [decision] = await store.admit_many([paid()])
    await store.delete("bal")
    await store.set_counter_if_absent("bal", 1_000 - await store.get("debited"))
    await store.release(paid(), decision)
    await store.flush()
    assert await store.get_many(["bal", "debited"]) == [1_000, 0]
    [bal, debited] = await in_database(engine, "bal", "debited")
    assert bal == 1_000 and debited in (None, 0)


async def test_free_calls_are_counted_once_served(
    store: OwnedCounterStore, engine: AsyncEngine
) -> None:
    free_call = paid(price=0, free_quota=5)
    [decision] = await store.admit_many([free_call])
    assert decision.charge == FREE
    assert await in_database(engine, "free", "total") == [None, None]
    await store.commit_served(free_call, decision, None)
    assert await in_database(engine, "free", "total", "ep") == [1, 1, 1]


async def test_keys_it_does_not_own_go_to_the_database(
    store: OwnedCounterStore, engine: AsyncEngine
) -> None:
    assert await store.incr("signup:tries", 2) == 2
    assert await in_database(engine, "signup:tries") == [2]
    await store.set_value("note", "x", ttl=None)
    assert await store.get_value("note") == "x"


async def test_a_key_written_elsewhere_before_it_is_owned_is_read(
    store: OwnedCounterStore, engine: AsyncEngine
) -> None:
    await SqlCounterStore(engine).set_counter("bal", 500)
    [decision] = await store.admit_many([paid()])
    assert decision.admitted and await store.get("bal") == 200


async def test_a_refused_call_reserves_nothing(store: OwnedCounterStore) -> None:
    await store.set_counter("bal", 100)
    [decision] = await store.admit_many([paid()])
    assert decision.verdict is Verdict.INSUFFICIENT_CREDIT
    with pytest.raises(ValueError):
        await store.commit_served(paid(), decision, None)


async def test_keys_with_nothing_pending_are_given_back(engine: AsyncEngine) -> None:
    store = OwnedCounterStore(engine, max_owned=10)
    try:
        for n in range(8):
            request = paid(balance_key=f"bal{n}", debited_key=f"debited{n}", total_key=f"t{n}")
            await store.set_counter(request.balance_key, 1_000)
            [decision] = await store.admit_many([request])
            await store.commit_served(request, decision, None)
        # Whatever was given back is read again from the database, unchanged.
        values = await store.get_many([f"bal{n}" for n in range(8)])
        assert values == [700] * 8
        assert await in_database(engine, *(f"bal{n}" for n in range(8))) == [700] * 8
    finally:
        await store.close()


async def test_a_failed_read_of_keys_is_read_again_by_the_calls_waiting_on_it(
    store: OwnedCounterStore, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await SqlCounterStore(engine).set_counter("bal", 1_000)
    read = store._read_rows  # made to fail once, below
    failures = [Unavailable("counters", "Counter store unavailable")]

    async def flaky(keys: set[str]) -> object:
        await asyncio.sleep(0.01)  # the second call arrives while the first reads
        if failures:
            raise failures.pop()
        return await read(keys)

    monkeypatch.setattr(store, "_read_rows", flaky)
    first, second = await asyncio.gather(
        store.admit_many([paid()]), store.admit_many([paid()]), return_exceptions=True
    )
    assert isinstance(first, Unavailable)  # its own read failed
    assert isinstance(second, list) and second[0].admitted  # read again, by itself
    assert await store.get("bal") == 700


async def test_the_group_commit_stores_rows_as_the_sql_store_does(engine: AsyncEngine) -> None:
    # The group commit writes on SQLite's driver directly: its rows must be the ones the
    # SQL store writes (expiry text included: every store compares it as text).
    now = datetime(2026, 12, 5, 7, 30, 15, 123456, tzinfo=UTC)
    owned = OwnedCounterStore(engine, now=lambda: now)
    shared = SqlCounterStore(engine, now=lambda: now)
    try:
        await shared.set_counter("bal", 1_000)
        call = paid(total_key="by-commit", monthly_ttl=timedelta(hours=1))
        [decision] = await owned.admit_many([call])
        await owned.commit_served(call, decision, None)
        await shared.incr("by-sql", 1, ttl=timedelta(hours=1))
    finally:
        await owned.close()
    async with engine.connect() as conn:
        rows = {
            key: (count, text, expires)
            for key, count, text, expires in await conn.exec_driver_sql(
                "SELECT key, count, text, expires_at FROM runtime_counters"
            )
        }
    assert rows["by-commit"] == rows["by-sql"] == (1, None, "2026-12-05 08:30:15.123456")
    assert rows["bal"] == (700, None, None)
    later = SqlCounterStore(engine, now=lambda: now + timedelta(hours=2))
    assert await later.get_many(["by-commit", "by-sql"]) == [0, 0]
