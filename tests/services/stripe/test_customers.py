"""The mapping of customers to Stripe customers: made once, even when asked at once."""

from __future__ import annotations

import asyncio

from m3o.services.stripe.proto import stripe_pb2 as pb
from services.stripe.support import ANN, World, call, customer


async def test_first_requests_at_once_make_one_stripe_customer(world: World) -> None:
    made = await asyncio.gather(*(world.customers.ensure("test", ANN) for _ in range(5)))

    assert len(set(made)) == 1
    creations = world.fake.requests_to("POST", "/v1/customers")
    assert {r.idempotency_key for r in creations} == {f"customer:{ANN}"}
    assert len([c for c in world.fake.events_of("customer.created")]) == 1


async def test_a_mapped_customer_is_not_made_again(world: World) -> None:
    first = await world.customers.ensure("test", ANN)
    await world.handler.setup_card(pb.SetupCardRequest(), call("SetupCard", customer(ANN)))

    assert await world.customers.ensure("test", ANN) == first
    assert len(world.fake.requests_to("POST", "/v1/customers")) == 1


async def test_delete_customer_twice_succeeds(world: World) -> None:
    stripe_customer = await world.customers.ensure("test", ANN)

    await world.customers.delete("test", ANN)
    await world.customers.delete("test", ANN)

    assert world.fake.get(stripe_customer).get("deleted") is True
    assert await world.customers.find(ANN) is None


async def test_a_stripe_customer_deleted_elsewhere_counts_as_deleted(world: World) -> None:
    stripe_customer = await world.customers.ensure("test", ANN)
    world.fake.client().v1.customers.delete(stripe_customer)

    await world.customers.delete("test", ANN)

    assert await world.customers.find(ANN) is None
