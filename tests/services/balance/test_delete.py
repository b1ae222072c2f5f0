"""DeleteCustomer and customers/Deleted: the balance, ledger and counters go."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from m3o.events.customers import TOPIC, Event, EventType
from m3o.events.customers import events_pb2 as events_pb
from m3o.runtime.errors import BadRequest, Forbidden
from m3o.runtime.events import Delivery
from m3o.services.balance.consumers import CustomerDeletions
from m3o.services.balance.hot import debited_key
from m3o.services.balance.proto import balance_pb2 as pb
from services.balance.support import ANN, BOB, World, call, customer


async def _delete(world: World, user_id: str) -> None:
    await world.handler.delete_customer(
        pb.DeleteCustomerRequest(user_id=user_id), call("DeleteCustomer")
    )


async def test_delete_customer_removes_balance_ledger_and_counters(hot_world: World) -> None:
    await hot_world.increment(ANN, 1000)
    await hot_world.increment(BOB, 1000)
    assert (await hot_world.admit(ANN, 10)).admitted
    await hot_world.balances.flusher.flush()
    assert (await hot_world.admit(ANN, 10)).admitted

    await _delete(hot_world, ANN)

    ann = await hot_world.ledger(ANN)
    assert (ann.deltas, ann.balance) == ([], None)
    assert await hot_world.hot(ANN) is None
    assert await hot_world.counters.get(debited_key(ANN)) == 0
    assert await hot_world.current(ANN) == 0
    assert (await hot_world.ledger(BOB)).deltas == [1000]
    assert await hot_world.current(BOB) == 1000


async def test_deleting_twice_or_an_unknown_customer_succeeds(world: World) -> None:
    await world.increment(ANN, 1000)

    await _delete(world, ANN)
    await _delete(world, ANN)
    await _delete(world, "nobody")

    assert (await world.ledger(ANN)).deltas == []


async def test_delete_customer_needs_a_user_id_and_an_admin(world: World) -> None:
    with pytest.raises(BadRequest) as raised:
        await _delete(world, "")
    assert raised.value == BadRequest("balance.deletecustomer", "Missing user ID")

    with pytest.raises(Forbidden):
        await world.handler.delete_customer(
            pb.DeleteCustomerRequest(user_id=ANN), call("DeleteCustomer", customer(ANN))
        )


def _customers_event(event_type: EventType.ValueType, customer_id: str) -> Delivery:
    event = Event(type=event_type, customer=events_pb.Customer(id=customer_id))
    return Delivery(
        id=f"evt-{customer_id}",
        topic=TOPIC,
        type_name=EventType.Name(event_type),
        time=datetime(2024, 1, 1, tzinfo=UTC),
        payload=event.SerializeToString(),
    )


async def test_a_deleted_customer_event_removes_the_balance_once_or_twice(
    hot_world: World,
) -> None:
    await hot_world.increment(ANN, 1000)
    consumer = CustomerDeletions(balances=hot_world.balances)
    assert consumer.consumer().topic == TOPIC

    await consumer.handle(_customers_event(EventType.EventTypeDeleted, ANN))
    await consumer.handle(_customers_event(EventType.EventTypeDeleted, ANN))  # redelivered

    assert (await hot_world.ledger(ANN)).deltas == []
    assert await hot_world.hot(ANN) is None


async def test_other_customer_events_are_ignored(world: World) -> None:
    await world.increment(ANN, 1000)
    consumer = CustomerDeletions(balances=world.balances)

    for event_type in (EventType.EventTypeBanned, EventType.EventTypeUpdated):
        await consumer.handle(_customers_event(event_type, ANN))

    assert (await world.ledger(ANN)).deltas == [1000]
