"""Request events into the daily history and the live daily counters, exactly once each."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import String, cast, func, select

from m3o.events.requests import Event, EventType
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import Unavailable
from m3o.runtime.events import Delivery
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.usage import history
from m3o.services.usage.counters import daily_key
from m3o.services.usage.recording import MAX_BATCH, RequestRecorder
from m3o.services.usage.tables import history as history_table
from m3o.services.usage.tables import recorded_events
from services.usage.support import START, World, make_world, request_delivery
from support.services import MovableClock

TODAY = START.date()
ENDPOINT = "helloworld$Helloworld.Call"


async def rows(sessions: SessionFactory) -> dict[tuple[str, date, str], int]:
    async with sessions() as session:
        found = await history.month_totals(session, date(2000, 1, 1), date(2100, 1, 1))
        series: dict[tuple[str, date, str], int] = {}
        for customer_id in {row.customer_id for row in found}:
            for row in await history.series(session, customer_id):
                series[(customer_id, row.day, row.path)] = row.requests
    return series


async def test_a_call_is_counted_under_its_project_and_everyone(world: World) -> None:
    await world.record(request_delivery("e1", price="free"))
    await world.record(request_delivery("e2", price="300"))
    await world.record(request_delivery("e3", price="0", endpoint="Helloworld.Stream"))

    assert await rows(world.sessions) == {
        ("proj-1", TODAY, "helloworld"): 3,
        ("proj-1", TODAY, ENDPOINT): 2,
        ("proj-1", TODAY, "helloworld$Helloworld.Stream"): 1,
        ("proj-1", TODAY, "$totalfree"): 1,
        ("total", TODAY, "helloworld"): 3,
        ("total", TODAY, ENDPOINT): 2,
        ("total", TODAY, "helloworld$Helloworld.Stream"): 1,
    }
    live = await world.counters.get_many(
        [
            daily_key("proj-1", "helloworld", TODAY),
            daily_key("proj-1", ENDPOINT, TODAY),
            daily_key("total", "helloworld", TODAY),
            daily_key("total", "helloworld$Helloworld.Stream", TODAY),
        ]
    )
    assert live == [3, 2, 3, 1]


async def test_one_batch_of_different_calls_counts_each_under_its_own_rows(
    world: World,
) -> None:
    yesterday = START - timedelta(days=1)
    batch = [
        request_delivery("e1", price="free"),
        request_delivery("e2", price="300"),
        request_delivery("e3", price="0", endpoint="Helloworld.Stream"),
        request_delivery("e4", project="proj-2", price="free"),
        request_delivery("e5", price="free", at=yesterday),
        request_delivery("e2", price="300"),  # a copy: counted once
        request_delivery("e6", price="free"),
    ]

    assert await world.recorder.handle(batch) == {}

    day_before = yesterday.date()
    assert await rows(world.sessions) == {
        ("proj-1", TODAY, "helloworld"): 4,
        ("proj-1", TODAY, ENDPOINT): 3,
        ("proj-1", TODAY, "helloworld$Helloworld.Stream"): 1,
        ("proj-1", TODAY, "$totalfree"): 2,
        ("proj-2", TODAY, "helloworld"): 1,
        ("proj-2", TODAY, ENDPOINT): 1,
        ("proj-2", TODAY, "$totalfree"): 1,
        ("proj-1", day_before, "helloworld"): 1,
        ("proj-1", day_before, ENDPOINT): 1,
        ("proj-1", day_before, "$totalfree"): 1,
        ("total", TODAY, "helloworld"): 5,
        ("total", TODAY, ENDPOINT): 4,
        ("total", TODAY, "helloworld$Helloworld.Stream"): 1,
        ("total", day_before, "helloworld"): 1,
        ("total", day_before, ENDPOINT): 1,
    }
    assert world.recorder.take_counted() == 6


async def test_redelivered_events_are_counted_once(world: World) -> None:
    first = request_delivery("e1")
    await world.record(first, request_delivery("e2"), first)
    await world.record(Delivery(**{**vars_of(first), "attempt": 2}))

    assert (await rows(world.sessions))[("proj-1", TODAY, "helloworld")] == 2
    assert await world.counters.get(daily_key("proj-1", "helloworld", TODAY)) == 2
    assert await world.counters.get(daily_key("total", ENDPOINT, TODAY)) == 2


async def test_the_same_event_delivered_twice_at_once_is_counted_once(
    sessions: SessionFactory, counters: CounterStore, clock: MovableClock
) -> None:
    world = make_world(sessions, counters, clock=clock)
    event = request_delivery("e1")
    assert await world.recorder.handle([event] * 5) == {}
    # and by two processes (two recorders), each in its own transaction
    other = RequestRecorder(sessions=sessions, counters=counters, clock=clock)
    await asyncio.gather(
        world.recorder.handle([request_delivery("e2")]), other.handle([request_delivery("e2")])
    )
    assert (await rows(sessions))[("proj-1", TODAY, "helloworld")] == 2
    assert await counters.get(daily_key("proj-1", "helloworld", TODAY)) == 2


async def test_claiming_a_large_batch_returns_only_the_ids_not_claimed_before(
    sessions: SessionFactory, clock: MovableClock
) -> None:
    """More ids than one statement of rows held before, some claimed already, some twice."""
    before = [f"old-{n:03}" for n in range(150)]
    batch = [*before[::3], *(f"new-{n:03}" for n in range(450)), "new-000", "new-001"]
    async with transaction(sessions) as session:
        assert await history.claim_events(session, before, clock()) == set(before)
    async with transaction(sessions) as session:
        claimed = await history.claim_events(session, batch, clock())
    assert claimed == {f"new-{n:03}" for n in range(450)}
    async with sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(recorded_events))
    assert stored == 600


async def test_a_batch_is_written_in_one_transaction(
    sessions: SessionFactory, counters: CounterStore, clock: MovableClock
) -> None:
    world = make_world(sessions, counters, clock=clock)
    transactions = count_transactions(world.recorder)
    batch = [request_delivery(f"e{i}", project=f"p{i % 3}") for i in range(MAX_BATCH)]

    assert await world.recorder.handle(batch) == {}

    assert transactions == [MAX_BATCH]
    assert (await rows(sessions))[("total", TODAY, "helloworld")] == MAX_BATCH
    assert (await rows(sessions))[("p0", TODAY, "helloworld")] == len(range(0, MAX_BATCH, 3))
    assert world.recorder.take_counted() == MAX_BATCH
    assert world.recorder.take_counted() == 0


async def test_a_failed_batch_fails_every_event_and_their_retries_count_once(
    sessions: SessionFactory, counters: CounterStore, clock: MovableClock
) -> None:
    world = make_world(sessions, counters, clock=clock)
    original = world.recorder.record
    failures = [Unavailable("database", "down")]

    async def failing_once(calls: Any) -> int:
        if failures:
            raise failures.pop()
        return await original(calls)

    world.recorder.record = failing_once  # type: ignore[method-assign]
    events = [request_delivery(f"e{i}") for i in range(3)]
    with pytest.raises(Unavailable):
        await world.recorder.handle(events)
    assert await rows(sessions) == {}

    await world.record(*events)  # the bus retries each one
    assert (await rows(sessions))[("proj-1", TODAY, "helloworld")] == 3


async def test_an_unreadable_event_fails_alone_and_the_rest_are_counted(world: World) -> None:
    garbage = Delivery(id="bad", topic="requests", type_name="x", time=START, payload=b"\xff\x00")

    failed = await world.recorder.handle([request_delivery("e1"), garbage])

    assert list(failed) == ["bad"]
    assert (await rows(world.sessions))[("proj-1", TODAY, "helloworld")] == 1


async def test_events_are_counted_on_the_day_they_were_published(world: World) -> None:
    yesterday = START - timedelta(days=1)
    last_week = START - timedelta(days=7)
    await world.record(
        request_delivery("e1", at=yesterday.replace(hour=23, minute=59)),
        request_delivery("e2", at=last_week),
    )
    found = await rows(world.sessions)
    assert found[("proj-1", yesterday.date(), "helloworld")] == 1
    assert found[("proj-1", last_week.date(), "helloworld")] == 1
    # A live daily counter is kept for yesterday, not for a day long expired.
    assert await world.counters.get(daily_key("proj-1", "helloworld", yesterday)) == 1
    assert await world.counters.get(daily_key("proj-1", "helloworld", last_week)) == 0


async def test_other_and_incomplete_events_are_acknowledged_without_counting(
    world: World,
) -> None:
    unknown = Event(type=EventType.EventTypeUnknown)
    incomplete = Event(type=EventType.EventTypeRequest)
    incomplete.request.api_name = "helloworld"
    reserved = request_delivery("e4", project="total")
    for event_id, event in (("e1", unknown), ("e2", incomplete)):
        await world.record(
            Delivery(
                id=event_id,
                topic="requests",
                type_name="x",
                time=START,
                payload=event.SerializeToString(),
            )
        )
    await world.record(reserved)
    assert await rows(world.sessions) == {}


async def test_an_unreachable_counter_store_still_records_the_history(
    sessions: SessionFactory, sql_counters: CounterStore, clock: MovableClock
) -> None:
    world = make_world(sessions, BrokenCounters(sql_counters), clock=clock)
    await world.record(request_delivery("e1"))
    assert (await rows(sessions))[("proj-1", TODAY, "helloworld")] == 1
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(recorded_events)) == 1


async def test_project_id_falls_back_to_user_id(world: World) -> None:
    event = Event(type=EventType.EventTypeRequest)
    event.request.user_id = "legacy-user"
    event.request.api_name = "helloworld"
    event.request.endpoint_name = "Helloworld.Call"
    await world.record(
        Delivery(
            id="e1", topic="requests", type_name="x", time=START, payload=event.SerializeToString()
        )
    )
    assert (await rows(world.sessions))[("legacy-user", TODAY, "helloworld")] == 1


def vars_of(delivery: Delivery) -> dict[str, Any]:
    return {name: getattr(delivery, name) for name in Delivery.__slots__}


def count_transactions(recorder: RequestRecorder) -> list[int]:
    """Record the number of calls each transaction of ``recorder`` writes."""
    sizes: list[int] = []
    original = recorder.record

    async def counting(calls: Any) -> int:
        sizes.append(len(calls))
        return await original(calls)

    recorder.record = counting  # type: ignore[method-assign]
    return sizes


class BrokenCounters:
    """A counter store whose increments fail; the rest works."""

    def __init__(self, inner: CounterStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def incr(self, *args: Any, **kwargs: Any) -> int:
        raise Unavailable("counters", "Counter store unavailable")

    async def incr_many(self, *args: Any, **kwargs: Any) -> dict[str, int]:
        raise Unavailable("counters", "Counter store unavailable")


async def test_rows_the_recorder_writes_are_stored_as_the_session_writes_them(
    sessions: SessionFactory, counters: CounterStore, clock: MovableClock
) -> None:
    """On SQLite the recorder writes on the driver: its rows must compare, purge and read
    back exactly as rows written through SQLAlchemy do."""
    world = make_world(sessions, counters, clock=clock)
    await world.recorder.handle([request_delivery("by-recorder")])
    async with transaction(sessions) as session:
        await history.claim_events(session, ["by-session"], clock())
        await history.add_counts(session, {history.CountKey("other", TODAY, "helloworld"): 2})

    async with sessions() as session:
        recorded = (
            await session.execute(
                select(recorded_events.c.event_id, cast(recorded_events.c.recorded, String))
            )
        ).all()
        days = (
            await session.execute(
                select(history_table.c.customer_id, cast(history_table.c.day, String))
            )
        ).all()
    stored = dict(recorded)
    assert stored["by-recorder"] == stored["by-session"]
    assert len({text for _, text in days}) == 1
    assert (await rows(sessions))[("other", TODAY, "helloworld")] == 2
    assert (await rows(sessions))[("proj-1", TODAY, "helloworld")] == 1
    async with transaction(sessions) as session:
        assert await history.purge_recorded_events(session, clock() + timedelta(seconds=1)) == 2
