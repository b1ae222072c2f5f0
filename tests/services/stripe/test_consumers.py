"""customers/Deleted: the Stripe customer and the mapping go, once or many times."""

from __future__ import annotations

from datetime import UTC, datetime

from m3o.events import customers as customers_events
from m3o.events.customers import events_pb2
from m3o.runtime.events import Delivery
from m3o.services.stripe.consumers import CustomerDeletions
from services.stripe.support import ANN, World


def _deleted(customer_id: str) -> Delivery:
    event = customers_events.Event(
        type=customers_events.EventType.EventTypeDeleted,
        customer=events_pb2.Customer(id=customer_id),
    )
    return Delivery(
        id="evt-1",
        topic=customers_events.TOPIC,
        type_name="events.customers.Event",
        time=datetime(2024, 1, 1, tzinfo=UTC),
        payload=event.SerializeToString(),
    )


async def test_a_deleted_customer_loses_its_stripe_customer_even_redelivered(
    world: World,
) -> None:
    stripe_customer = await world.customers.ensure("test", ANN)
    deletions = CustomerDeletions(customers=world.customers)

    await deletions.handle(_deleted(ANN))
    await deletions.handle(_deleted(ANN))

    assert world.fake.get(stripe_customer).get("deleted") is True
    assert await world.customers.find(ANN) is None


async def test_a_customer_without_stripe_customer_is_nothing_to_do(world: World) -> None:
    await CustomerDeletions(customers=world.customers).handle(_deleted(ANN))

    assert world.fake.requests == []
