"""customers/Deleted runs the deletion with the event's address, retried (by the bus, then
by the resume cron) until every service has succeeded, each success asked once."""

from __future__ import annotations

import asyncio

import pytest

from m3o.events.customers import TOPIC, Event, EventType
from m3o.events.customers import events_pb2 as customers_pb
from m3o.runtime.errors import Internal, Unavailable
from m3o.runtime.events import Delivery
from m3o.services.admin.consumers import CustomerDeletions
from m3o.services.customers.proto import customers_pb2
from m3o.services.v1.proto import v1_pb2
from services.admin.support import SERVICE_NAMES, START, World


def delivery(
    event_type: EventType.ValueType, customer_id: str = "ann", email: str = "Ann@Example.com"
) -> Delivery:
    event = Event(type=event_type, customer=customers_pb.Customer(id=customer_id, email=email))
    return Delivery(
        id="e1",
        topic=TOPIC,
        type_name=EventType.Name(event_type),
        time=START,
        payload=event.SerializeToString(),
    )


async def test_deleted_asks_every_service_with_the_events_address(world: World) -> None:
    # the record is gone already: customers knows no address, the event does
    world.fakes.customers.delete_customer.returns(customers_pb2.DeleteCustomerResponse())
    await CustomerDeletions(deletions=world.deletions).handle(delivery(EventType.EventTypeDeleted))
    assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 1)
    assert world.fakes.emails.delete_customer.calls[0].email == "ann@example.com"
    assert world.fakes.signup.delete_customer.calls[0].email == "ann@example.com"


@pytest.mark.parametrize(
    "event_type", [EventType.EventTypeCreated, EventType.EventTypeBanned, EventType.EventTypeLogin]
)
async def test_other_events_ask_nobody(world: World, event_type: EventType.ValueType) -> None:
    await CustomerDeletions(deletions=world.deletions).handle(delivery(event_type))
    assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 0)


async def test_a_deleted_event_without_a_customer_is_skipped(world: World) -> None:
    await CustomerDeletions(deletions=world.deletions).handle(
        delivery(EventType.EventTypeDeleted, customer_id="")
    )
    assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 0)


async def test_a_failure_fails_the_event_and_redelivery_asks_only_the_failed(
    world: World,
) -> None:
    consumer = CustomerDeletions(deletions=world.deletions)
    world.fakes.stripe.delete_customer.returns_once(Unavailable("stripe.deletecustomer", "down"))
    with pytest.raises(Unavailable):
        await consumer.handle(delivery(EventType.EventTypeDeleted))
    await consumer.handle(delivery(EventType.EventTypeDeleted))
    assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 1) | {"stripe": 2}
    await consumer.handle(delivery(EventType.EventTypeDeleted))  # a late redelivery
    assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 1) | {"stripe": 2}


async def test_the_resume_cron_finishes_what_the_bus_gave_up_on(world: World) -> None:
    consumer = CustomerDeletions(deletions=world.deletions)
    failure = Internal("usage.deletecustomer", "boom")
    world.fakes.usage.delete_customer.returns_once(failure, failure)
    with pytest.raises(Unavailable):
        await consumer.handle(delivery(EventType.EventTypeDeleted))
    await world.deletions.resume()  # still failing
    assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 1) | {"usage": 2}
    await world.deletions.resume()
    assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 1) | {"usage": 3}
    await world.deletions.resume()  # nothing left to do
    assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 1) | {"usage": 3}


async def test_a_deleted_event_during_a_run_is_retried_after_it(world: World) -> None:
    release = asyncio.Event()
    asked = asyncio.Event()

    async def slow(request: v1_pb2.DeleteCustomerRequest) -> v1_pb2.DeleteCustomerResponse:
        asked.set()
        await release.wait()
        return v1_pb2.DeleteCustomerResponse()

    world.fakes.v1.delete_customer.calls_through(slow)
    running = asyncio.create_task(world.deletions.run("ann"))
    await asyncio.wait_for(asked.wait(), timeout=30)
    consumer = CustomerDeletions(deletions=world.deletions)
    with pytest.raises(Unavailable):
        await consumer.handle(delivery(EventType.EventTypeDeleted))
    release.set()
    await asyncio.wait_for(running, timeout=30)
    await consumer.handle(delivery(EventType.EventTypeDeleted))  # redelivered: all done
    assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 1)
