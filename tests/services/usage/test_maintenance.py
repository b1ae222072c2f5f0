"""Sweep, retention and DeleteCustomer: the counters and the history kept in step."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select

from m3o.runtime.auth import Account
from m3o.runtime.config.sections import UsageConfig
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.redis import RedisCounterStore
from m3o.runtime.errors import BadRequest, Forbidden, Unauthorized
from m3o.runtime.store import SessionFactory
from m3o.services.usage import history
from m3o.services.usage.counters import (
    MONTHLY_TTL,
    daily_key,
    monthly_key,
    tier_key,
    tier_of,
    unit_key,
)
from m3o.services.usage.proto import usage_pb2 as pb
from m3o.services.usage.tables import recorded_events
from services.usage.conftest import REDIS_PREFIX
from services.usage.support import (
    ADMIN,
    START,
    World,
    call,
    customer,
    make_world,
    request_delivery,
)
from support.services import MovableClock

ENDPOINT = "helloworld$Helloworld.Call"
TODAY = START.date()


async def history_of(world: World, customer_id: str) -> list[tuple[date, str, int]]:
    async with world.sessions() as session:
        return [(r.day, r.path, r.requests) for r in await history.series(session, customer_id)]


# Sweep


async def test_sweep_restores_lost_monthly_counters_from_the_history(
    world: World, redis: aioredis.Redis
) -> None:
    await world.record(
        request_delivery("e1", price="free"),
        request_delivery("e2", price="free", at=START - timedelta(days=3)),
        request_delivery("e3", price="100", endpoint="Helloworld.Stream"),
        request_delivery("e4", price="free", at=START.replace(day=1, hour=0) - timedelta(hours=1)),
        request_delivery("e5", project="proj-2"),
    )
    # proj-2's counter survived (it also counts a call on its way to the history).
    await world.counters.incr(monthly_key("proj-2", "total", START), 2)

    swept = await world.handler.sweep(pb.SweepRequest(), call("Sweep", ADMIN))

    names = ["total", "totalfree", ENDPOINT, "helloworld$Helloworld.Stream"]
    assert await world.counters.get_many([monthly_key("proj-1", n, START) for n in names]) == [
        3,
        2,
        2,
        1,
    ]
    assert await world.counters.get(monthly_key("proj-2", "total", START)) == 2
    assert await world.counters.get(monthly_key("proj-2", "totalfree", START)) == 1
    assert swept == pb.SweepResponse(persisted=5, restored=6)
    if isinstance(world.counters, RedisCounterStore):
        left = await redis.pttl(REDIS_PREFIX + monthly_key("proj-1", "total", START))
        assert MONTHLY_TTL - timedelta(minutes=1) < timedelta(milliseconds=left) <= MONTHLY_TTL

    again = await world.handler.sweep(pb.SweepRequest(), call("Sweep", ADMIN))
    assert again == pb.SweepResponse()
    assert await world.counters.get(monthly_key("proj-1", "total", START)) == 3


async def test_sweep_reports_the_events_counted_since_the_last_one_and_restores_tiers(
    sessions: SessionFactory, counters: CounterStore, clock: MovableClock
) -> None:
    world = make_world(sessions, counters, clock=clock)
    await world.tiers.change(["proj-1"], "pro", START)
    await counters.delete(tier_key("proj-1"))  # the counter store lost it
    await world.record(request_delivery("e1", price="0"), request_delivery("e1", price="0"))

    swept = await world.handler.sweep(pb.SweepRequest(), call("Sweep", ADMIN))

    assert swept.persisted == 1  # counted once
    assert swept.restored == 1 + 2  # the tier, total and the endpoint
    assert await tier_of(counters, "proj-1") == "pro"
    again = await world.handler.sweep(pb.SweepRequest(), call("Sweep", ADMIN))
    assert again.persisted == 0


async def test_sweep_is_for_admins(sql_world: World) -> None:
    with pytest.raises(Forbidden):
        await sql_world.handler.sweep(pb.SweepRequest(), call("Sweep", customer("proj-1")))


# Retention


async def test_retention_drops_old_history_and_old_event_ids(
    sessions: SessionFactory, sql_counters: CounterStore, clock: MovableClock
) -> None:
    config = UsageConfig(history_retention=timedelta(days=30))
    world = make_world(sessions, sql_counters, clock=clock, config=config)
    await world.record(
        request_delivery("old", at=START - timedelta(days=31)),
        request_delivery("kept", at=START - timedelta(days=30)),
    )

    await world.maintenance.purge()
    assert [day for day, path, _ in await history_of(world, "proj-1") if path == "helloworld"] == [
        TODAY - timedelta(days=30)
    ]
    assert await event_ids(sessions) == {"old", "kept"}  # remembered for 14 days

    clock.advance(timedelta(days=15))
    await world.record(request_delivery("recent", at=clock.now))
    await world.maintenance.purge()
    assert [day for day, path, _ in await history_of(world, "proj-1") if path == "helloworld"] == [
        clock.now.date()
    ]
    assert await event_ids(sessions) == {"recent"}


async def event_ids(sessions: SessionFactory) -> set[str]:
    async with sessions() as session:
        return set(await session.scalars(select(recorded_events.c.event_id)))


# DeleteCustomer and customers/Deleted


async def test_delete_customer_removes_counters_history_and_tier(world: World) -> None:
    await world.record(
        request_delivery("e1", price="free"),
        request_delivery("e2", at=START - timedelta(days=1)),
        request_delivery("e3", project="proj-2"),
    )
    last_month = START.replace(day=1) - timedelta(days=2)
    await world.record(request_delivery("e4", at=last_month))
    for moment in (START, last_month):
        for name in ("total", "totalfree", ENDPOINT):
            await world.counters.incr(monthly_key("proj-1", name, moment), 1)
    await world.counters.incr(monthly_key("proj-2", "total", START), 1)
    await world.counters.set_counter(unit_key("proj-1", ENDPOINT), 40)
    await world.tiers.change(["proj-1"], "pro", START)

    await world.handler.delete_customer(
        pb.DeleteCustomerRequest(id="proj-1"), call("DeleteCustomer", ADMIN)
    )

    assert await history_of(world, "proj-1") == []
    gone = [
        *(monthly_key("proj-1", n, m) for m in (START, last_month) for n in ("total", ENDPOINT)),
        monthly_key("proj-1", "totalfree", START),
        daily_key("proj-1", "helloworld", TODAY),
        daily_key("proj-1", ENDPOINT, TODAY - timedelta(days=1)),
        unit_key("proj-1", ENDPOINT),
    ]
    assert await world.counters.get_many(gone) == [0] * len(gone)
    assert await tier_of(world.counters, "proj-1") == "free"
    assert await world.counters.get(monthly_key("proj-2", "total", START)) == 1
    assert await history_of(world, "proj-2") != []
    # everyone's history keeps the calls
    assert (TODAY, "helloworld", 2) in await history_of(world, "total")

    await world.handler.delete_customer(  # again: nothing left, no error
        pb.DeleteCustomerRequest(id="proj-1"), call("DeleteCustomer", ADMIN)
    )


@pytest.mark.parametrize(
    ("account", "request_", "error"),
    [
        (ADMIN, pb.DeleteCustomerRequest(id=" "), BadRequest("usage.deletecustomer", "Missing id")),
        (customer("proj-1"), pb.DeleteCustomerRequest(id="proj-1"), Forbidden),
        (None, pb.DeleteCustomerRequest(id="proj-1"), Unauthorized),
    ],
)
async def test_delete_customer_refusals(
    sql_world: World,
    account: Account | None,
    request_: pb.DeleteCustomerRequest,
    error: object,
) -> None:
    kind = error if isinstance(error, type) else type(error)
    with pytest.raises(kind) as raised:
        await sql_world.handler.delete_customer(request_, call("DeleteCustomer", account))
    if not isinstance(error, type):
        assert raised.value == error
