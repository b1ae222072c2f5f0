"""The customers consumer: AddPaymentMethod makes the account, Deleted removes the customer
and cancels the subscription of an account left without an admin."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from m3o.events.customers import TOPIC, Event, EventType
from m3o.events.customers import events_pb2 as customers_pb
from m3o.runtime.errors import Unavailable
from m3o.runtime.events import Delivery
from m3o.runtime.store import transaction
from m3o.services.billing import records
from m3o.services.billing.consumers import CustomerEvents
from m3o.services.billing.proto import billing_pb2 as pb
from m3o.services.billing.tables import accounts, members
from services.billing.support import ADMIN, ANN, START, World, call


def consumer_of(world: World) -> CustomerEvents:
    return CustomerEvents(
        sessions=world.sessions, subscriptions=world.subscriptions, clock=world.clock
    )


def delivery(event_type: EventType.ValueType, customer_id: str, event_id: str = "e1") -> Delivery:
    event = Event(type=event_type, customer=customers_pb.Customer(id=customer_id))
    return Delivery(
        id=event_id,
        topic=TOPIC,
        type_name=EventType.Name(event_type),
        time=START,
        payload=event.SerializeToString(),
    )


async def rows(world: World) -> tuple[list[str], list[tuple[str, str]]]:
    async with world.sessions() as session:
        made = list(
            (await session.execute(select(accounts.c.id).order_by(accounts.c.id))).scalars()
        )
        people = [
            (r.account_id, r.customer_id)
            for r in await session.execute(
                select(members).order_by(members.c.account_id, members.c.customer_id)
            )
        ]
    return made, people


async def test_a_payment_method_makes_the_account_once(world: World) -> None:
    consumer = consumer_of(world)
    await consumer.handle(delivery(EventType.EventTypeAddPaymentMethod, "ann"))
    await consumer.handle(delivery(EventType.EventTypeAddPaymentMethod, "ann"))
    assert await rows(world) == (["ann"], [("ann", "ann")])
    read = await world.handler.read_account(
        pb.ReadAccountRequest(admin_id="ann"), call("ReadAccount", ADMIN)
    )
    assert read.billing_account.id == "ann"


async def test_a_deleted_customer_loses_the_account_and_its_subscription(world: World) -> None:
    world.at_stripe.cards["ann"] = {"card_1"}
    await world.handler.subscribe_tier(
        pb.SubscribeTierRequest(id="pro", card_id="card_1"), call("SubscribeTier", ANN)
    )
    consumer = consumer_of(world)
    await consumer.handle(delivery(EventType.EventTypeDeleted, "ann"))
    assert world.at_stripe.log == ["subscribe price_pro", "unsubscribe sub_1"]
    assert world.at_stripe.active == {}
    assert await rows(world) == ([], [])

    await consumer.handle(delivery(EventType.EventTypeDeleted, "ann"))  # redelivered
    assert await rows(world) == ([], [])


async def test_a_cancel_that_fails_leaves_everything_for_the_retry(world: World) -> None:
    world.at_stripe.cards["ann"] = {"card_1"}
    await world.handler.subscribe_tier(
        pb.SubscribeTierRequest(id="pro", card_id="card_1"), call("SubscribeTier", ANN)
    )
    consumer = consumer_of(world)
    world.at_stripe.fail_unsubscribe = Unavailable("stripe.unsubscribe", "Service unavailable")
    with pytest.raises(Unavailable):
        await consumer.handle(delivery(EventType.EventTypeDeleted, "ann"))
    assert await rows(world) == (["ann"], [("ann", "ann")])

    world.at_stripe.fail_unsubscribe = None
    await consumer.handle(delivery(EventType.EventTypeDeleted, "ann"))
    assert await rows(world) == ([], [])
    assert world.at_stripe.active == {}


async def test_a_subscription_already_gone_at_stripe_counts_as_cancelled(world: World) -> None:
    world.at_stripe.cards["ann"] = {"card_1"}
    await world.handler.subscribe_tier(
        pb.SubscribeTierRequest(id="pro", card_id="card_1"), call("SubscribeTier", ANN)
    )
    world.at_stripe.active.clear()  # stripe deleted the Stripe customer first
    await consumer_of(world).handle(delivery(EventType.EventTypeDeleted, "ann"))
    assert await rows(world) == ([], [])


async def test_a_deleted_member_leaves_an_account_that_keeps_its_admin(world: World) -> None:
    async with transaction(world.sessions) as session:
        await records.ensure(session, "ann", START)
        await session.execute(
            members.insert().values(account_id="ann", customer_id="bob", admin=False)
        )
    await consumer_of(world).handle(delivery(EventType.EventTypeDeleted, "bob"))
    assert await rows(world) == (["ann"], [("ann", "ann")])
    assert world.at_stripe.log == []


async def test_other_events_and_events_without_a_customer_are_ignored(world: World) -> None:
    consumer = consumer_of(world)
    await consumer.handle(delivery(EventType.EventTypeLogin, "ann"))
    await consumer.handle(delivery(EventType.EventTypeAddPaymentMethod, ""))
    await consumer.handle(delivery(EventType.EventTypeDeleted, ""))
    assert await rows(world) == ([], [])
    assert world.events() == []
