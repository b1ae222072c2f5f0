"""SubscribeTier and SubscriptionEnded: make before break against the fake stripe client,
the event in the change's transaction, and failures that change nothing."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from m3o.runtime.auth import Account
from m3o.runtime.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Internal,
    Unauthorized,
    Unavailable,
)
from m3o.services.billing.proto import billing_pb2 as pb
from m3o.services.billing.subscriptions import STALE_AFTER
from m3o.services.billing.tables import accounts
from services.billing.support import ADMIN, ANN, BOB, SERVICE, World, call


async def subscribe(
    world: World, tier: str, card: str = "card_1", account: Account | None = ANN
) -> None:
    request = pb.SubscribeTierRequest(id=tier, card_id=card)
    await world.handler.subscribe_tier(request, call("SubscribeTier", account))


async def state(world: World, account_id: str = "ann") -> tuple[str, str, str]:
    async with world.sessions() as session:
        row = (await session.execute(select(accounts).where(accounts.c.id == account_id))).one()
    return row.tier, row.subscription_id, row.pending_change


@pytest.fixture
def ann_has_a_card(world: World) -> World:
    world.at_stripe.cards["ann"] = {"card_1"}
    return world


async def test_free_to_pro_to_business_to_free_makes_before_it_breaks(
    ann_has_a_card: World,
) -> None:
    world = ann_has_a_card
    stripe = world.at_stripe

    await subscribe(world, "pro")
    assert stripe.log == ["subscribe price_pro"]
    assert await state(world) == ("pro", "sub_1", "")
    assert stripe.active == {"sub_1": "ann"}

    await subscribe(world, "business")
    assert stripe.log[1:] == ["subscribe price_business", "unsubscribe sub_1"]
    assert await state(world) == ("business", "sub_2", "")
    assert stripe.active == {"sub_2": "ann"}

    await subscribe(world, "free")
    assert stripe.log[3:] == ["unsubscribe sub_2"]
    assert await state(world) == ("free", "", "")
    assert stripe.active == {}

    assert world.tiers_published() == [("ann", "pro"), ("ann", "business"), ("ann", "free")]
    assert all(p.in_transaction for p in world.publisher.published)
    assert all(e.caller_id == "ann" for e in world.events())
    subscribed = world.stripe.subscribe.calls
    assert [(s.customer_id, s.card_id) for s in subscribed] == [("ann", "card_1")] * 2
    keys = [s.idempotency_key for s in subscribed]
    assert keys[0].startswith("billing-subscribe:ann:pro:")
    assert keys[1].startswith("billing-subscribe:ann:business:")


async def test_the_same_tier_changes_nothing(ann_has_a_card: World) -> None:
    world = ann_has_a_card
    await subscribe(world, "free")
    await subscribe(world, "pro")
    await subscribe(world, "pro")
    assert world.at_stripe.log == ["subscribe price_pro"]
    assert world.tiers_published() == [("ann", "pro")]


async def test_an_unknown_tier_is_bad_request_before_anything_else(world: World) -> None:
    with pytest.raises(BadRequest) as caught:
        await subscribe(world, "gold", card="")
    assert caught.value.detail == "Subscription ID not valid"
    assert caught.value.id == "billing.subscribetier"
    assert world.at_stripe.log == []


async def test_a_paid_tier_needs_a_card(world: World) -> None:
    with pytest.raises(BadRequest) as caught:
        await subscribe(world, "pro", card="")
    assert caught.value.detail == "Missing card_id"


async def test_a_card_that_is_not_the_customers_is_refused_and_nothing_changes(
    ann_has_a_card: World,
) -> None:
    world = ann_has_a_card
    with pytest.raises(Forbidden) as caught:
        await subscribe(world, "pro", card="bobs_card")
    assert (caught.value.id, caught.value.detail) == (
        "billing.subscribetier",
        "Card does not belong to user",
    )
    assert await state(world) == ("free", "", "")
    assert world.events() == []


async def test_a_failed_new_subscription_leaves_the_old_tier_and_subscription(
    ann_has_a_card: World,
) -> None:
    world = ann_has_a_card
    await subscribe(world, "pro")
    world.at_stripe.fail_subscribe = BadRequest("stripe.subscribe", "Your card was declined")
    with pytest.raises(BadRequest) as caught:
        await subscribe(world, "business")
    assert caught.value.detail == "Your card was declined"
    assert world.at_stripe.log == ["subscribe price_pro", "subscribe price_business"]
    assert await state(world) == ("pro", "sub_1", "")
    assert world.at_stripe.active == {"sub_1": "ann"}
    assert world.tiers_published() == [("ann", "pro")]


async def test_a_subscription_that_is_not_active_is_cancelled_and_nothing_changes(
    ann_has_a_card: World,
) -> None:
    world = ann_has_a_card
    await subscribe(world, "pro")
    world.at_stripe.status = "incomplete"
    with pytest.raises(BadRequest) as caught:
        await subscribe(world, "business")
    assert caught.value.detail == "The subscription could not be paid (its status is incomplete)"
    assert world.at_stripe.log[1:] == ["subscribe price_business", "unsubscribe sub_2"]
    assert await state(world) == ("pro", "sub_1", "")
    assert world.at_stripe.active == {"sub_1": "ann"}


async def test_failing_to_cancel_the_old_subscription_cancels_the_new_one_and_keeps_the_old(
    ann_has_a_card: World,
) -> None:
    world = ann_has_a_card
    await subscribe(world, "pro")
    stripe = world.at_stripe
    stripe.fail_unsubscribe = Unavailable("stripe.unsubscribe", "Service unavailable")
    with pytest.raises(Unavailable):
        await subscribe(world, "business")
    assert stripe.log[1:] == ["subscribe price_business", "unsubscribe sub_1", "unsubscribe sub_2"]
    assert await state(world) == ("pro", "sub_1", "")
    assert world.tiers_published() == [("ann", "pro")]

    stripe.fail_unsubscribe = None  # the next attempt starts afresh and succeeds
    await subscribe(world, "business")
    assert await state(world) == ("business", "sub_3", "")
    assert stripe.active == {"sub_2": "ann", "sub_3": "ann"}  # sub_2 left for an operator


async def test_an_unexpected_stripe_failure_is_internal_and_changes_nothing(
    ann_has_a_card: World,
) -> None:
    world = ann_has_a_card
    world.at_stripe.fail_subscribe = Internal("stripe.subscribe", "boom")
    with pytest.raises(Internal) as caught:
        await subscribe(world, "pro")
    assert caught.value.detail == "Internal server error"
    assert await state(world) == ("free", "", "")


async def test_a_change_interrupted_after_subscribing_is_retried_with_the_same_key(
    ann_has_a_card: World,
) -> None:
    world = ann_has_a_card
    world.publisher.down = True
    with pytest.raises(RuntimeError):
        await subscribe(world, "pro")
    tier, subscription, pending = await state(world)
    assert (tier, subscription) == ("free", "")
    assert pending
    world.publisher.down = False

    await subscribe(world, "pro")
    first, second = world.stripe.subscribe.calls
    assert first.idempotency_key == second.idempotency_key
    assert await state(world) == ("pro", "sub_1", "")
    assert world.at_stripe.active == {"sub_1": "ann"}


async def test_another_change_while_one_is_under_way_is_conflict_until_it_is_stale(
    ann_has_a_card: World,
) -> None:
    world = ann_has_a_card
    world.publisher.down = True
    with pytest.raises(RuntimeError):
        await subscribe(world, "pro")
    world.publisher.down = False
    with pytest.raises(Conflict):
        await subscribe(world, "business")
    world.clock.now += STALE_AFTER
    await subscribe(world, "business")
    assert (await state(world))[0] == "business"


@pytest.mark.parametrize(
    ("account", "error"),
    [(ADMIN, Forbidden), (SERVICE, Forbidden), (None, Unauthorized)],
    ids=["admin", "service", "anonymous"],
)
async def test_only_customers_subscribe(
    world: World, account: Account | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await subscribe(world, "pro", account=account)
    assert world.at_stripe.log == []


async def test_a_customer_changes_only_their_own_account(ann_has_a_card: World) -> None:
    world = ann_has_a_card
    await subscribe(world, "pro")
    world.at_stripe.cards["bob"] = {"card_b"}
    await subscribe(world, "business", card="card_b", account=BOB)
    assert await state(world, "ann") == ("pro", "sub_1", "")
    assert (await state(world, "bob"))[0] == "business"


async def ended(world: World, subscription: str, account: Account | None = SERVICE) -> None:
    request = pb.SubscriptionEndedRequest(customer_id="ann", subscription_id=subscription)
    await world.handler.subscription_ended(request, call("SubscriptionEnded", account))


async def test_a_subscription_ended_at_stripe_moves_its_account_to_free(
    ann_has_a_card: World,
) -> None:
    world = ann_has_a_card
    await subscribe(world, "pro")
    await ended(world, "sub_1")
    assert await state(world) == ("free", "", "")
    assert world.tiers_published() == [("ann", "pro"), ("ann", "free")]
    assert world.events()[-1].caller_id == "stripe"
    assert all(p.in_transaction for p in world.publisher.published)

    await ended(world, "sub_1")  # a redelivery changes nothing
    assert len(world.events()) == 2


async def test_an_ended_subscription_the_account_no_longer_pays_by_changes_nothing(
    ann_has_a_card: World,
) -> None:
    world = ann_has_a_card
    await subscribe(world, "pro")
    await subscribe(world, "business")
    await ended(world, "sub_1")
    await ended(world, "sub_1")
    assert await state(world) == ("business", "sub_2", "")
    assert len(world.events()) == 2


@pytest.mark.parametrize(
    ("account", "error"),
    [(ANN, Forbidden), (BOB, Forbidden), (ADMIN, Forbidden), (None, Unauthorized)],
    ids=["customer", "other customer", "admin", "anonymous"],
)
async def test_only_services_report_ended_subscriptions(
    ann_has_a_card: World, account: Account | None, error: type[Exception]
) -> None:
    world = ann_has_a_card
    await subscribe(world, "pro")
    with pytest.raises(error):
        await ended(world, "sub_1", account)
    assert await state(world) == ("pro", "sub_1", "")


@pytest.mark.parametrize("missing", ["customer_id", "subscription_id"])
async def test_an_ended_subscription_must_be_named(world: World, missing: str) -> None:
    request = pb.SubscriptionEndedRequest(customer_id="ann", subscription_id="sub_1")
    request.ClearField(missing)  # type: ignore[arg-type]
    with pytest.raises(BadRequest) as caught:
        await world.handler.subscription_ended(request, call("SubscriptionEnded", SERVICE))
    assert caught.value.detail == f"Missing {missing}"


async def test_concurrent_requests_for_the_same_tier_make_one_subscription_and_one_event(
    ann_has_a_card: World,
) -> None:
    world = ann_has_a_card
    await asyncio.gather(*(subscribe(world, "pro") for _ in range(4)))
    assert await state(world) == ("pro", "sub_1", "")
    assert world.at_stripe.active == {"sub_1": "ann"}
    assert len({s.idempotency_key for s in world.stripe.subscribe.calls}) == 1
    assert world.tiers_published() == [("ann", "pro")]
