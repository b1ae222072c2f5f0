"""DeleteCustomer (admin's erasure, services only): the customer's codes, reset tokens and
onboarding go, with its address its tracking and waitlist entries; others' stay."""

from __future__ import annotations

import pytest
from sqlalchemy import Table, select

from m3o.runtime.auth import Account, CallContext
from m3o.runtime.errors import BadRequest, Forbidden, M3OError, Unauthorized
from m3o.services.signup.proto import signup_pb2 as pb
from m3o.services.signup.tables import codes, reset_tokens, tracking, waitlist
from services.signup.support import World, call

SERVICE = Account(id="admin-service", type="service", scopes=("service",))
ADMIN = Account(id="admin", type="user", scopes=("admin",))
ANN = Account(id="ann", type="customer", scopes=("customer",), name="ann@example.com")


def as_(account: Account | None) -> CallContext:
    return CallContext(service="signup", method="DeleteCustomer", account=account)


async def emails_in(world: World, table: Table) -> list[str]:
    async with world.sessions() as session:
        return sorted(await session.scalars(select(table.c.email)))


async def customer_of(world: World, email: str) -> str:
    async with world.sessions() as session:
        found = await session.scalar(select(codes.c.customer_id).where(codes.c.email == email))
    assert found
    return str(found)


async def some_of_everything(world: World) -> None:
    for email in ("ann@example.com", "bob@example.com"):
        await world.start_signup(email)  # an unverified customer with a code
        [customer] = [c for c in world.customers.by_id.values() if c.email == email]
        customer.status = "verified"  # (as if verified elsewhere) for a reset token
        await world.handler.recover(pb.RecoverRequest(email=email), call("Recover"))
        await world.handler.track(pb.TrackRequest(id=f"t-{email}", email=email), call("Track"))
        await world.handler.waitlist(pb.WaitlistRequest(email=email), call("Waitlist"))


async def test_the_customers_rows_go_and_others_stay(world: World) -> None:
    await some_of_everything(world)
    ann = await customer_of(world, "ann@example.com")
    request = pb.DeleteCustomerRequest(customer_id=ann, email=" Ann@Example.com ")
    await world.handler.delete_customer(request, as_(SERVICE))
    for table in (codes, reset_tokens, tracking, waitlist):
        assert await emails_in(world, table) == ["bob@example.com"], table.name
    await world.handler.delete_customer(request, as_(SERVICE))  # again: nothing more
    for table in (codes, reset_tokens, tracking, waitlist):
        assert await emails_in(world, table) == ["bob@example.com"], table.name


async def test_without_an_address_only_rows_kept_by_id_go(world: World) -> None:
    await some_of_everything(world)
    ann = await customer_of(world, "ann@example.com")
    await world.handler.delete_customer(pb.DeleteCustomerRequest(customer_id=ann), as_(SERVICE))
    assert await emails_in(world, codes) == ["bob@example.com"]
    assert await emails_in(world, reset_tokens) == ["bob@example.com"]
    assert await emails_in(world, waitlist) == ["ann@example.com", "bob@example.com"]


@pytest.mark.parametrize(
    ("account", "error"), [(ANN, Forbidden), (ADMIN, Forbidden), (None, Unauthorized)]
)
async def test_only_services_may_delete_customers(
    world: World, account: Account | None, error: type[M3OError]
) -> None:
    await some_of_everything(world)
    ann = await customer_of(world, "ann@example.com")
    with pytest.raises(error):
        await world.handler.delete_customer(
            pb.DeleteCustomerRequest(customer_id=ann, email="ann@example.com"), as_(account)
        )
    assert await emails_in(world, codes) == ["ann@example.com", "bob@example.com"]


@pytest.mark.parametrize("customer_id", ["", "  "])
async def test_a_missing_customer_id_is_bad_request(world: World, customer_id: str) -> None:
    with pytest.raises(BadRequest) as raised:
        await world.handler.delete_customer(
            pb.DeleteCustomerRequest(customer_id=customer_id, email="a@example.com"),
            as_(SERVICE),
        )
    assert raised.value.detail == "Missing customer ID"
