"""The stripe consumer: a subscription Stripe ended moves the account that still pays by it
to free, once, and leaves every other account and event alone."""

from __future__ import annotations

from sqlalchemy import select

from m3o.events import stripe as stripe_events
from m3o.events.stripe import events_pb2 as stripe_pb
from m3o.runtime.events import Delivery
from m3o.services.billing.consumers import StripeEvents
from m3o.services.billing.proto import billing_pb2 as pb
from m3o.services.billing.tables import accounts
from services.billing.support import ANN, START, World, call


def ended(customer_id: str, subscription_id: str, event_id: str = "e1") -> Delivery:
    event = stripe_events.Event(
        type=stripe_events.EventType.EventTypeSubscriptionDeleted,
        subscription_deleted=stripe_pb.SubscriptionDeleted(
            customer_id=customer_id, subscription_id=subscription_id, price_id="price_pro"
        ),
    )
    return Delivery(
        id=event_id,
        topic=stripe_events.TOPIC,
        type_name="EventTypeSubscriptionDeleted",
        time=START,
        payload=event.SerializeToString(),
    )


async def tier_of(world: World, account_id: str) -> tuple[str, str]:
    async with world.sessions() as session:
        row = (await session.execute(select(accounts).where(accounts.c.id == account_id))).one()
    return row.tier, row.subscription_id


async def subscribed_to_pro(world: World) -> None:
    world.at_stripe.cards["ann"] = {"card_1"}
    request = pb.SubscribeTierRequest(id="pro", card_id="card_1")
    await world.handler.subscribe_tier(request, call("SubscribeTier", ANN))


async def test_a_subscription_deleted_at_stripe_moves_the_account_to_free_once(
    world: World,
) -> None:
    await subscribed_to_pro(world)
    subscription = (await tier_of(world, "ann"))[1]
    consumer = StripeEvents(subscriptions=world.subscriptions)

    await consumer.handle(ended("ann", subscription))
    await consumer.handle(ended("ann", subscription))  # redelivered

    assert await tier_of(world, "ann") == ("free", "")
    assert world.tiers_published() == [("ann", "pro"), ("ann", "free")]
    assert world.events()[-1].caller_id == "stripe"


async def test_another_subscription_or_event_changes_nothing(world: World) -> None:
    await subscribed_to_pro(world)
    consumer = StripeEvents(subscriptions=world.subscriptions)

    await consumer.handle(ended("ann", "sub_not_paying_for_it"))
    await consumer.handle(ended("", ""))
    charge = stripe_events.Event(type=stripe_events.EventType.EventTypeChargeSucceeded)
    await consumer.handle(
        Delivery(
            id="e9",
            topic=stripe_events.TOPIC,
            type_name="EventTypeChargeSucceeded",
            time=START,
            payload=charge.SerializeToString(),
        )
    )

    assert (await tier_of(world, "ann"))[0] == "pro"
    assert world.tiers_published() == [("ann", "pro")]
