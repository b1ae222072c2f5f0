"""DeleteCustomer (admin's erasure, services only): as on customers/Deleted, the customer
leaves every account, an account left without an admin is cancelled at Stripe and deleted;
a Stripe failure changes nothing; deleting again succeeds."""

from __future__ import annotations

import pytest

from m3o.runtime.auth import Account
from m3o.runtime.errors import BadRequest, Forbidden, M3OError, Unauthorized, Unavailable
from m3o.runtime.store import transaction
from m3o.services.billing import records
from m3o.services.billing.proto import billing_pb2 as pb
from m3o.services.billing.tables import members
from services.billing.support import ADMIN, ANN, BOB, SERVICE, START, World, call
from services.billing.test_customer_events import rows


async def subscribed(world: World) -> None:
    world.at_stripe.cards["ann"] = {"card_1"}
    await world.handler.subscribe_tier(
        pb.SubscribeTierRequest(id="pro", card_id="card_1"), call("SubscribeTier", ANN)
    )


async def erase(world: World, customer_id: str = "ann", account: Account | None = SERVICE) -> None:
    await world.handler.delete_customer(
        pb.DeleteCustomerRequest(customer_id=customer_id), call("DeleteCustomer", account)
    )


async def test_the_account_goes_with_its_subscription_and_again_succeeds(world: World) -> None:
    await subscribed(world)
    await erase(world)
    assert world.at_stripe.log == ["subscribe price_pro", "unsubscribe sub_1"]
    assert await rows(world) == ([], [])
    await erase(world)
    assert world.at_stripe.log == ["subscribe price_pro", "unsubscribe sub_1"]


async def test_a_member_leaves_an_account_that_keeps_its_admin(world: World) -> None:
    async with transaction(world.sessions) as session:
        await records.ensure(session, "ann", START)
        await session.execute(
            members.insert().values(account_id="ann", customer_id="bob", admin=False)
        )
    await erase(world, "bob")
    assert await rows(world) == (["ann"], [("ann", "ann")])


async def test_a_stripe_failure_changes_nothing(world: World) -> None:
    await subscribed(world)
    world.at_stripe.fail_unsubscribe = Unavailable("stripe.unsubscribe", "Service unavailable")
    with pytest.raises(Unavailable):
        await erase(world)
    assert await rows(world) == (["ann"], [("ann", "ann")])


@pytest.mark.parametrize(
    ("account", "error"),
    [(ANN, Forbidden), (BOB, Forbidden), (ADMIN, Forbidden), (None, Unauthorized)],
)
async def test_only_services_may_delete_customers(
    world: World, account: Account | None, error: type[M3OError]
) -> None:
    await subscribed(world)
    with pytest.raises(error):
        await erase(world, "ann", account)
    assert await rows(world) == (["ann"], [("ann", "ann")])


@pytest.mark.parametrize("customer_id", ["", " "])
async def test_a_missing_customer_id_is_bad_request(world: World, customer_id: str) -> None:
    with pytest.raises(BadRequest) as raised:
        await erase(world, customer_id)
    assert raised.value.detail == "Missing customer ID"
