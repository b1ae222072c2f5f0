"""Read, ReadMonthlyTotal and ReadMonthly: who may call them, what they return."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from m3o.runtime.config import build_config
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    Unauthorized,
    Unavailable,
)
from m3o.runtime.store import SessionFactory
from m3o.services.projects.proto import projects_pb2 as projects_pb
from m3o.services.usage.counters import MONTHLY_TTL, monthly_key, tier_key
from m3o.services.usage.proto import usage_pb2 as pb
from services.usage.support import (
    ADMIN,
    SERVICE,
    START,
    World,
    call,
    customer,
    make_world,
    request_delivery,
)
from support.services import MovableClock

ENDPOINT = "helloworld$Helloworld.Call"
STREAM = "helloworld$Helloworld.Stream"


def day(days_ago: int) -> int:
    moment = datetime.combine(START.date() - timedelta(days=days_ago), datetime.min.time())
    return int(moment.replace(tzinfo=UTC).timestamp())


async def admit(world: World, project: str, name: str, count: int = 1) -> None:
    """What the gateway's admission does to a monthly counter."""
    await world.counters.incr(monthly_key(project, name, world.clock()), count, ttl=MONTHLY_TTL)


async def seed_history(world: World) -> None:
    await world.record(
        request_delivery("e1", at=START - timedelta(days=2)),
        request_delivery("e2", at=START - timedelta(days=2), endpoint="Helloworld.Stream"),
        request_delivery("e3"),
        request_delivery("e4", api="db", endpoint="Db.Create", price="50"),
        request_delivery("e5", project="proj-2"),
    )


# Read


async def test_read_returns_each_apis_daily_series_today_included(world: World) -> None:
    await seed_history(world)
    response = await world.handler.read(pb.ReadRequest(), call("Read", customer("proj-1")))

    assert set(response.usage) == {"helloworld", "db"}
    hello = response.usage["helloworld"]
    assert hello.api_name == "helloworld"
    assert [(r.date, r.requests) for r in hello.records] == [(day(2), 2), (day(0), 1)]
    assert [(r.date, r.requests) for r in response.usage["db"].records] == [(day(0), 1)]


async def test_read_with_detail_adds_each_endpoint(world: World) -> None:
    await seed_history(world)
    response = await world.handler.read(
        pb.ReadRequest(customer_id="proj-1", detail=True), call("Read", ADMIN)
    )
    assert set(response.usage) == {"helloworld", "db", ENDPOINT, STREAM, "db$Db.Create"}
    assert [(r.date, r.requests) for r in response.usage[ENDPOINT].records] == [
        (day(2), 1),
        (day(0), 1),
    ]


async def test_quota_remaining_is_the_tiers_quota_less_this_months_free_calls(
    world: World,
) -> None:
    await admit(world, "proj-1", "totalfree", 9_990)
    response = await world.handler.read(pb.ReadRequest(), call("Read", customer("proj-1")))
    assert response.quota_remaining == 10

    await world.counters.set_value(tier_key("proj-1"), "solo")
    response = await world.handler.read(pb.ReadRequest(), call("Read", customer("proj-1")))
    assert response.quota_remaining == 100_000 - 9_990

    await world.counters.set_value(tier_key("proj-1"), "free")
    await admit(world, "proj-1", "totalfree", 50)
    response = await world.handler.read(pb.ReadRequest(), call("Read", customer("proj-1")))
    assert response.quota_remaining == 0  # never below 0


async def test_last_months_free_calls_do_not_count(world: World) -> None:
    last_month = START.replace(day=1) - timedelta(days=1)
    await world.counters.incr(monthly_key("proj-1", "totalfree", last_month), 500)
    response = await world.handler.read(pb.ReadRequest(), call("Read", customer("proj-1")))
    assert response.quota_remaining == 10_000


async def test_the_history_counts_when_the_live_counter_was_lost(world: World) -> None:
    await world.record(*(request_delivery(f"e{i}", price="free") for i in range(3)))
    # The gateway's counter is gone (the counter store lost it): the history still counts.
    response = await world.handler.read(pb.ReadRequest(), call("Read", customer("proj-1")))
    assert response.quota_remaining == 10_000 - 3


async def test_read_of_a_customer_without_usage_is_empty(world: World) -> None:
    response = await world.handler.read(pb.ReadRequest(), call("Read", customer("new")))
    assert response == pb.ReadResponse(quota_remaining=10_000)


@pytest.mark.parametrize("method", ["Read", "ReadMonthlyTotal"])
async def test_a_customer_may_not_read_another_customer(sql_world: World, method: str) -> None:
    request: Any = (
        pb.ReadRequest(customer_id="proj-2")
        if method == "Read"
        else pb.ReadMonthlyTotalRequest(customer_id="proj-2")
    )
    handle = sql_world.handler.read if method == "Read" else sql_world.handler.read_monthly_total
    with pytest.raises(Forbidden):
        await handle(request, call(method, customer("proj-1")))
    with pytest.raises(Unauthorized):
        await handle(request, call(method, None))
    await handle(request, call(method, SERVICE))  # services and admins read anyone
    await handle(request, call(method, ADMIN))


@pytest.mark.parametrize("method", ["Read", "ReadMonthlyTotal"])
async def test_a_customer_reads_the_projects_it_belongs_to_or_pays_for(
    sql_world: World, method: str
) -> None:
    handle: Any = (
        sql_world.handler.read if method == "Read" else sql_world.handler.read_monthly_total
    )
    request: Any = (
        pb.ReadRequest(customer_id="team-project")
        if method == "Read"
        else pb.ReadMonthlyTotalRequest(customer_id="team-project")
    )
    sql_world.projects.read.returns_once(
        projects_pb.ReadResponse(
            project=projects_pb.Project(
                id="team-project",
                billing_account="payer",
                members=[projects_pb.Member(id="ann", roles=["admin"])],
            )
        ),
        projects_pb.ReadResponse(
            project=projects_pb.Project(id="team-project", billing_account="payer")
        ),
        projects_pb.ReadResponse(project=projects_pb.Project(id="team-project")),
        NotFound("projects.read", "Project not found"),
        Unavailable("projects", "down"),
    )
    await handle(request, call(method, customer("ann")))
    await handle(request, call(method, customer("payer")))
    with pytest.raises(Forbidden):
        await handle(request, call(method, customer("ann")))
    with pytest.raises(Forbidden):
        await handle(request, call(method, customer("ann")))
    with pytest.raises(Unavailable):
        await handle(request, call(method, customer("ann")))
    assert [r.id for r in sql_world.projects.read.calls] == ["team-project"] * 5

    await handle(type(request)(), call(method, customer("ann")))  # itself: no lookup
    assert sql_world.projects.read.call_count == 5


async def test_an_unreachable_counter_store_is_unavailable(
    sessions: SessionFactory, sql_counters: CounterStore, clock: MovableClock
) -> None:
    world = make_world(sessions, Unreachable(sql_counters), clock=clock)
    with pytest.raises(Unavailable) as raised:
        await world.handler.read(pb.ReadRequest(), call("Read", customer("proj-1")))
    assert raised.value == Unavailable("usage.read", "Usage counters are unavailable")


# ReadMonthlyTotal


async def test_monthly_total_counts_this_months_calls(world: World) -> None:
    await admit(world, "proj-1", "total", 7)
    response = await world.handler.read_monthly_total(
        pb.ReadMonthlyTotalRequest(), call("ReadMonthlyTotal", customer("proj-1"))
    )
    assert response == pb.ReadMonthlyTotalResponse(requests=7)


async def test_monthly_total_with_detail_gives_each_endpoint(world: World) -> None:
    await seed_history(world)
    await admit(world, "proj-1", "total", 3)
    await admit(world, "proj-1", ENDPOINT, 3)  # one admitted call is not in the history yet
    await admit(world, "proj-1", STREAM, 1)
    response = await world.handler.read_monthly_total(
        pb.ReadMonthlyTotalRequest(customer_id="proj-1", detail=True),
        call("ReadMonthlyTotal", ADMIN),
    )
    assert response.requests == 4  # the history proves four
    assert dict(response.endpoint_requests) == {ENDPOINT: 3, STREAM: 1, "db$Db.Create": 1}


async def test_monthly_total_leaves_out_last_month(world: World) -> None:
    await world.record(
        request_delivery("e1", at=START.replace(day=1, hour=0) - timedelta(minutes=1))
    )
    response = await world.handler.read_monthly_total(
        pb.ReadMonthlyTotalRequest(detail=True), call("ReadMonthlyTotal", customer("proj-1"))
    )
    assert response == pb.ReadMonthlyTotalResponse()


# ReadMonthly


async def test_read_monthly_gives_counts_quota_and_caps(
    sessions: SessionFactory, counters: CounterStore, clock: MovableClock
) -> None:
    config = build_config(
        {"usage": {"usage_caps": {"pro": {"helloworld$Helloworld_Call": 100, "db$Db_Create": 0}}}},
        {},
    ).usage
    world = make_world(sessions, counters, clock=clock, config=config)
    await counters.set_value(tier_key("proj-1"), "pro")
    await admit(world, "proj-1", ENDPOINT, 42)
    await admit(world, "proj-1", "totalfree", 40)
    await admit(world, "proj-1", "total", 43)

    response = await world.handler.read_monthly(
        pb.ReadMonthlyRequest(
            customer_id="proj-1",
            endpoints=[ENDPOINT, "db$Db.Create", STREAM, "total", "totalfree", ENDPOINT],
        ),
        call("ReadMonthly", SERVICE),
    )
    assert dict(response.requests) == {
        ENDPOINT: 42,
        "db$Db.Create": 0,
        STREAM: 0,
        "total": 43,
        "totalfree": 40,
    }
    assert dict(response.quotas) == {"totalfree": 1_000_000}
    assert dict(response.caps) == {ENDPOINT: 100, "db$Db.Create": 0}
    assert dict(response.cap_usage) == {ENDPOINT: 42, "db$Db.Create": 0}


async def test_read_monthly_without_totalfree_has_no_quota(sql_world: World) -> None:
    response = await sql_world.handler.read_monthly(
        pb.ReadMonthlyRequest(customer_id="proj-1", endpoints=["total"]),
        call("ReadMonthly", ADMIN),
    )
    assert dict(response.requests) == {"total": 0}
    assert not response.quotas


@pytest.mark.parametrize(
    ("request_", "detail"),
    [
        (pb.ReadMonthlyRequest(endpoints=["total"]), "Missing customer_id"),
        (
            pb.ReadMonthlyRequest(customer_id="p", endpoints=["helloworld"]),
            "Invalid endpoint 'helloworld': expected <api>$<Endpoint>, total or totalfree",
        ),
        (
            pb.ReadMonthlyRequest(customer_id="p", endpoints=["$Call"]),
            "Invalid endpoint '$Call': expected <api>$<Endpoint>, total or totalfree",
        ),
        (
            pb.ReadMonthlyRequest(customer_id="p", endpoints=["total"] * 1001),
            "At most 1000 endpoints",
        ),
    ],
)
async def test_read_monthly_refuses_bad_requests(
    sql_world: World, request_: pb.ReadMonthlyRequest, detail: str
) -> None:
    with pytest.raises(BadRequest) as raised:
        await sql_world.handler.read_monthly(request_, call("ReadMonthly", ADMIN))
    assert raised.value == BadRequest("usage.readmonthly", detail)


async def test_read_monthly_is_for_admins_and_services(sql_world: World) -> None:
    request = pb.ReadMonthlyRequest(customer_id="proj-1", endpoints=["total"])
    with pytest.raises(Forbidden):
        await sql_world.handler.read_monthly(request, call("ReadMonthly", customer("proj-1")))
    with pytest.raises(Unauthorized):
        await sql_world.handler.read_monthly(request, call("ReadMonthly", None))


class Unreachable:
    """A counter store that cannot be reached."""

    def __init__(self, inner: CounterStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        async def fail(*args: Any, **kwargs: Any) -> Any:
            raise Unavailable("counters", "Counter store unavailable")

        return fail
