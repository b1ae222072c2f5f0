"""ReadAccount and ListTiers, for every kind of caller."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from m3o.runtime.auth import Account
from m3o.runtime.errors import BadRequest, Forbidden, NotFound, Unauthorized
from m3o.services.billing.proto import billing_pb2 as pb
from m3o.services.billing.tables import accounts, members
from services.billing.support import ADMIN, ANN, BOB, ROLES, SERVICE, World, call


async def read(
    world: World, account: Account | None = ANN, *, account_id: str = "", admin_id: str = ""
) -> pb.BillingAccount:
    request = pb.ReadAccountRequest(id=account_id, admin_id=admin_id)
    return (await world.handler.read_account(request, call("ReadAccount", account))).billing_account


def own(customer_id: str, tier: str = "free") -> pb.BillingAccount:
    return pb.BillingAccount(
        id=customer_id,
        admins=[customer_id],
        members=[customer_id],
        subscriptions=[pb.Subscription(id=tier)],
    )


async def count_rows(world: World) -> tuple[int, int]:
    async with world.sessions() as session:
        made = (await session.execute(select(func.count()).select_from(accounts))).scalar_one()
        people = (await session.execute(select(func.count()).select_from(members))).scalar_one()
    return made, people


async def test_a_customer_reads_their_own_account_made_on_first_read(world: World) -> None:
    assert await read(world) == own("ann")
    assert await read(world, account_id="bob", admin_id="bob") == own("ann")  # fields ignored
    assert await count_rows(world) == (1, 1)
    assert world.events() == []


async def test_concurrent_first_reads_make_one_account(world: World) -> None:
    found = await asyncio.gather(*(read(world) for _ in range(8)))
    assert all(account == own("ann") for account in found)
    assert await count_rows(world) == (1, 1)


async def test_an_admin_reads_by_id_or_by_admin_id(world: World) -> None:
    await read(world, ANN)
    assert await read(world, ADMIN, account_id="ann") == own("ann")
    assert await read(world, ADMIN, admin_id="ann") == own("ann")


async def test_a_service_reads_by_id_like_an_admin(world: World) -> None:
    await read(world, ANN)
    assert await read(world, SERVICE, account_id="ann") == own("ann")


@pytest.mark.parametrize("account", [ADMIN, SERVICE], ids=["admin", "service"])
async def test_reading_without_id_or_admin_id_is_bad_request(
    world: World, account: Account
) -> None:
    with pytest.raises(BadRequest) as caught:
        await read(world, account)
    assert caught.value.detail == "Missing id or admin_id param"
    assert caught.value.id == "billing.readaccount"


@pytest.mark.parametrize("field", ["account_id", "admin_id"])
async def test_reading_an_unknown_account_is_not_found(world: World, field: str) -> None:
    with pytest.raises(NotFound) as caught:
        await read(world, ADMIN, **{field: "nobody"})
    assert caught.value.detail == "Not found"
    assert await count_rows(world) == (0, 0)  # an admin's read makes nothing


async def test_another_customers_account_is_never_read(world: World) -> None:
    await read(world, ANN)
    assert await read(world, BOB, account_id="ann") == own("bob")


async def test_an_anonymous_caller_cannot_read_accounts(world: World) -> None:
    with pytest.raises(Unauthorized):
        await read(world, None, account_id="ann")


async def test_an_api_key_cannot_read_accounts(world: World) -> None:
    key = Account(id="key-1", type="apikey", scopes=("*",), metadata={"apikey_owner": "ann"})
    with pytest.raises(Forbidden):
        await read(world, key, account_id="ann")


@pytest.mark.parametrize("role", list(ROLES))
async def test_every_caller_lists_the_configured_tiers_without_stripe_prices(
    world: World, role: str
) -> None:
    listed = await world.handler.list_tiers(pb.ListTiersRequest(), call("ListTiers", ROLES[role]))
    assert list(listed.tiers) == [
        pb.Tier(id="free", name="Free", price="$0", description="Free tier"),
        pb.Tier(id="pro", name="Pro", price="$25/month", description="Pro"),
        pb.Tier(id="business", name="Business", price="$250/month", description="Biz"),
    ]
    assert "price_" not in str(listed)
