"""ListAPIRanks: the popularity formula, top users and their names, computed from the
history, stored, and served to anyone."""

from __future__ import annotations

from datetime import timedelta

import pytest

from m3o.runtime.errors import NotFound, Unavailable
from m3o.runtime.store import transaction
from m3o.services.customers.proto import customers_pb2 as customers_pb
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb
from m3o.services.usage import history
from m3o.services.usage.history import CountKey
from m3o.services.usage.proto import usage_pb2 as pb
from m3o.services.usage.ranking import popularity, popularity_reference, rank
from services.usage.support import START, World, call

TODAY = START.date()
YESTERDAY = TODAY - timedelta(days=1)


# The arithmetic


def test_an_outlier_is_not_the_reference() -> None:
    # mean 208.3, population sd 354.8: 1000 has z 2.23, 100 is the largest with z <= 1.5
    assert popularity_reference([1000, 100, 45, 40, 35, 30]) == 100
    assert [popularity(c, 100) for c in (1000, 100, 45, 40, 35, 30)] == [10, 10, 5, 4, 4, 3]


def test_a_z_score_of_exactly_one_and_a_half_qualifies() -> None:
    # mean 9, sd 10: 24 has z = 1.5 exactly
    assert popularity_reference([24, 18, 2, 1, 0]) == 24
    assert popularity_reference([25, 18, 2, 1, 0]) == 18


def test_equal_counts_and_a_single_api_use_the_top_count() -> None:
    assert popularity_reference([7, 7, 7]) == 7
    assert popularity_reference([3]) == 3
    assert popularity_reference([]) == 0
    assert popularity(3, 3) == 10


def test_popularity_rounds_halves_up_and_stops_at_ten() -> None:
    assert popularity(45, 100) == 5  # 4.5; Python's round() would give 4
    assert popularity(25, 100) == 3  # 2.5
    assert popularity(44, 100) == 4
    assert popularity(4, 100) == 0
    assert popularity(5, 100) == 1
    assert popularity(10_000, 100) == 10
    assert popularity(5, 0) == 0


def test_rank_orders_apis_and_users_ties_by_name() -> None:
    ranking = rank(
        {"b": 10, "a": 10, "c": 30},
        [("u1", "a", 5), ("u2", "a", 5), ("u3", "c", 30), ("u1", "b", 10)],
    )
    assert [(e.name, e.count) for e in ranking.apis] == [("c", 30), ("a", 10), ("b", 10)]
    assert [e.name for e in ranking.top_users["a"]] == ["u1", "u2"]
    assert [(e.name, e.count) for e in ranking.global_top_users] == [
        ("u3", 30),
        ("u1", 15),
        ("u2", 5),
    ]


# Computed from the history


async def seed(world: World, rows: dict[CountKey, int]) -> None:
    async with transaction(world.sessions) as session:
        await history.add_counts(session, rows)


def customers_named(world: World, people: dict[str, customers_pb.Customer]) -> None:
    async def read(request: customers_pb.ReadRequest) -> customers_pb.ReadResponse:
        found = people.get(request.id)
        if found is None:
            raise NotFound("customers.read.notfound", "Customer not found")
        return customers_pb.ReadResponse(customer=found)

    world.customers.read.calls_through(read)


def sample(world: World) -> dict[CountKey, int]:
    rows: dict[CountKey, int] = {}
    everyone = {"helloworld": 1000, "db": 100, "cache": 45, "files": 40, "sms": 35, "geo": 30}
    for api, count in everyone.items():
        rows[CountKey("total", YESTERDAY, api)] = count - 1
        rows[CountKey("total", TODAY - timedelta(days=30), api)] = 1
        rows[CountKey("total", YESTERDAY, f"{api}$Svc.Call")] = count  # endpoints: not ranked
    rows[CountKey("total", TODAY, "sms")] = 5000  # today is not complete: not counted
    rows[CountKey("total", TODAY - timedelta(days=31), "geo")] = 5000  # too old
    rows[CountKey("alice", YESTERDAY, "helloworld")] = 600
    rows[CountKey("bob", YESTERDAY, "helloworld")] = 400
    rows[CountKey("bob", YESTERDAY, "db")] = 100
    rows[CountKey("bob", YESTERDAY, "$totalfree")] = 900
    rows[CountKey("carol", YESTERDAY, "cache")] = 45
    rows[CountKey("gone", YESTERDAY, "files")] = 40
    return rows


async def test_ranks_on_sample_data(sql_world: World) -> None:
    world = sql_world
    await seed(world, sample(world))
    customers_named(
        world,
        {
            "alice": customers_pb.Customer(id="alice", name="Alice"),
            "bob": customers_pb.Customer(id="bob", meta={"generated_name": "Beowulf"}),
            "carol": customers_pb.Customer(id="carol"),
        },
    )
    world.publicapi.list.returns(
        publicapi_pb.ListResponse(
            apis=[
                publicapi_pb.PublicAPI(name="helloworld", display_name="Hello World"),
                publicapi_pb.PublicAPI(name="db", display_name=""),
            ]
        )
    )

    computed = await world.ranks.recompute()

    assert [(r.api_name, r.position, r.popularity, r.api_display_name) for r in computed.ranks] == [
        ("helloworld", 1, 10, "Hello World"),
        ("db", 2, 10, "db"),
        ("cache", 3, 5, "cache"),
        ("files", 4, 4, "files"),
        ("sms", 5, 4, "sms"),
        ("geo", 6, 3, "geo"),
    ]
    hello = computed.ranks[0]
    assert [(u.user_name, u.position) for u in hello.top_users] == [("Alice", 1), ("Beowulf", 2)]
    assert [(u.user_name, u.position) for u in computed.ranks[2].top_users] == [("Anonymous", 1)]
    assert [(u.user_name, u.position) for u in computed.ranks[3].top_users] == [("Anonymous", 1)]
    assert computed.ranks[4].top_users == []
    assert [(u.user_name, u.position) for u in computed.global_top_users] == [
        ("Alice", 1),
        ("Beowulf", 2),
        ("Anonymous", 3),
        ("Anonymous", 4),
    ]
    assert sorted(r.id for r in world.customers.read.calls) == ["alice", "bob", "carol", "gone"]

    served = await world.handler.list_api_ranks(
        pb.ListAPIRanksRequest(), call("ListAPIRanks", None)
    )
    assert served == computed


async def test_only_the_top_ten_users_are_ranked(sql_world: World) -> None:
    rows = {CountKey("total", YESTERDAY, "db"): 1000}
    rows.update({CountKey(f"user-{i:02}", YESTERDAY, "db"): 100 - i for i in range(12)})
    await seed(sql_world, rows)
    customers_named(
        sql_world,
        {f"user-{i:02}": customers_pb.Customer(name=f"User {i}") for i in range(12)},
    )
    computed = await sql_world.ranks.recompute()
    assert [u.user_name for u in computed.ranks[0].top_users] == [f"User {i}" for i in range(10)]
    assert len(computed.global_top_users) == 10


async def test_empty_history_gives_empty_ranks(sql_world: World) -> None:
    served = await sql_world.handler.list_api_ranks(
        pb.ListAPIRanksRequest(), call("ListAPIRanks", None)
    )
    assert served == pb.ListAPIRanksResponse()  # before any computation

    computed = await sql_world.ranks.recompute()
    assert computed == pb.ListAPIRanksResponse()
    assert sql_world.customers.read.call_count == 0
    assert sql_world.publicapi.list.call_count == 0


async def test_an_unreachable_catalog_shows_api_names(sql_world: World) -> None:
    await seed(sql_world, {CountKey("total", YESTERDAY, "db"): 3})
    sql_world.publicapi.list.raises(Unavailable("publicapi", "down"))
    computed = await sql_world.ranks.recompute()
    assert computed.ranks[0].api_display_name == "db"


async def test_a_failed_computation_keeps_the_last_ranking(sql_world: World) -> None:
    world = sql_world
    await seed(world, {CountKey("total", YESTERDAY, "db"): 3})
    first = await world.ranks.recompute()
    await seed(world, {CountKey("alice", YESTERDAY, "db"): 3})
    world.customers.read.raises(Unavailable("customers", "down"))

    with pytest.raises(Unavailable):
        await world.ranks.recompute()
    await world.ranks.recompute_quietly()  # what the cron runs: logged, not raised
    assert await world.ranks.latest() == first

    world.customers.read.returns(customers_pb.ReadResponse(customer=customers_pb.Customer()))
    world.clock.advance(timedelta(days=1))
    later = await world.ranks.recompute()
    assert [u.user_name for u in later.global_top_users] == ["Anonymous"]
    assert await world.ranks.latest() == later
