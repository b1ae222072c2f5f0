"""The service definition: its parts, its config, its handler served in process, and its
consumers and events on a real event bus (the transactional outbox)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import pytest
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from m3o.events import customers, stripe
from m3o.platform.clients import ClientFactory
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.errors import BadRequest
from m3o.runtime.events import Delivery, Publisher
from m3o.runtime.events.sqlite import sql_event_bus
from m3o.runtime.rpc import MethodSpec, ServiceSpec, StaticToken
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.service import Dependencies
from m3o.runtime.store import SessionFactory
from m3o.services.balance.balances import Balances
from m3o.services.balance.hot import debited_key
from m3o.services.balance.proto import balance_pb2 as pb
from m3o.services.balance.proto.client import SPEC, BalanceClient
from m3o.services.balance.service import definition
from m3o.services.balance.tables import metadata
from m3o.services.customers.proto import customers_pb2 as customers_pb
from services.balance.support import ADMIN, ANN, World, make_world
from support.services import EveryTokenIs, Unreachable, dependencies, serve


class CustomersTransport(Unreachable):
    """Answers customers.Read for every id: every customer exists."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    async def unary(
        self,
        spec: ServiceSpec,
        method: MethodSpec,
        request: Message,
        *,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> Message:
        assert (spec.service, method.name) == ("customers", "Read")
        assert isinstance(request, customers_pb.ReadRequest)
        self.reads.append(request.id)
        return customers_pb.ReadResponse(customer=customers_pb.Customer(id=request.id))


def _deps(
    engine: AsyncEngine,
    sessions: SessionFactory,
    publisher: Publisher,
    document: dict[str, object] | None = None,
) -> Dependencies:
    customers = ClientFactory(CustomersTransport(), None)
    return dependencies(
        "balance", engine, sessions, document, publisher=publisher, clients=customers
    )


async def test_definition_builds_a_served_handler_consumers_and_the_flush_cron(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    assert definition.name == "balance"
    assert definition.metadata is metadata
    assert list(definition.specs) == [SPEC]
    deps = _deps(engine, sessions, FakePublisher(), {"balance": {"flush_interval": "15s"}})

    parts = await definition.build(deps)

    assert sorted(c.topic for c in parts.consumers) == ["customers", "stripe"]
    [cron] = parts.crons
    assert (cron.name, cron.every, cron.at_start) == ("flush-debits", timedelta(seconds=15), True)
    [handler] = parts.handlers
    local = serve(SPEC, handler.implementation, authenticator=EveryTokenIs(ADMIN))
    client = BalanceClient(local, StaticToken("admin-token"))
    credited = await client.increment(
        pb.IncrementRequest(customer_id=ANN, delta=700, reference="Welcome")
    )
    assert credited.new_balance == 700
    assert (await client.current(pb.CurrentRequest(customer_id=ANN))).current_balance == 700
    with pytest.raises(BadRequest) as raised:
        await client.increment(pb.IncrementRequest(customer_id=ANN, delta=1))
    assert raised.value == BadRequest("balance.increment", "Missing reference")
    await cron.run()  # nothing to flush: runs clean


class CrashAfterPublishing:
    """Writes each event into the transaction, then fails the operation there."""

    def __init__(self, inner: Publisher) -> None:
        self.inner = inner

    async def publish(
        self, topic: str, event: Message, *, session: AsyncSession | None = None
    ) -> str:
        await self.inner.publish(topic, event, session=session)
        raise RuntimeError("crashed after the event was written")


async def test_events_go_out_only_with_their_change_and_consumers_credit_and_delete(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    bus = sql_event_bus(engine, poll_interval=0.05)
    parts = await definition.build(_deps(engine, sessions, bus.publisher))
    for consumer in parts.consumers:
        bus.subscribe(consumer.topic, f"balance-{consumer.topic}", consumer.handle)
    seen: list[customers.Event] = []

    async def record(delivery: Delivery) -> None:
        event = delivery.decode(customers.Event)
        if event.type != customers.EventType.EventTypeDeleted:
            seen.append(event)

    bus.subscribe(customers.TOPIC, "test-recorder", record)
    world: World = make_world(sessions, SqlCounterStore(engine))
    crashing = Balances(
        sessions=sessions, counters=world.counters, publisher=CrashAfterPublishing(bus.publisher)
    )
    await bus.start()
    try:
        charge = stripe.Event(
            type=stripe.EventType.EventTypeChargeSucceeded,
            charge_succeeded=stripe.events_pb2.ChargeSucceeded(
                customer_id=ANN, currency="usd", amount=1000, charge_id="ch_1"
            ),
        )
        await bus.publisher.publish(stripe.TOPIC, charge)
        await bus.publisher.publish(stripe.TOPIC, charge)  # Stripe retried the webhook
        await bus.wait_idle(timeout=20)
        assert await world.current(ANN) == 10_000_000

        await world.counters.incr(debited_key(ANN), 5)  # the gateway charged a call
        with pytest.raises(RuntimeError):
            await crashing.flusher.flush_customer(ANN)
        await bus.wait_idle(timeout=20)
        assert (await world.ledger(ANN)).deltas == [10_000_000]

        await bus.publisher.publish(
            customers.TOPIC,
            customers.Event(
                type=customers.EventType.EventTypeDeleted,
                customer=customers.events_pb2.Customer(id=ANN),
            ),
        )
        await bus.wait_idle(timeout=20)
    finally:
        await bus.stop()
    assert [(e.type, e.balance_increment.amount) for e in seen] == [
        (customers.EventType.EventTypeBalanceIncrement, 10_000_000)
    ]
    assert seen[0].balance_increment.type == "topup"
    assert (await world.ledger(ANN)).deltas == []
