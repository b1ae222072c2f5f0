"""DeleteCustomer (admin's erasure, services only): every email to the customer's address
goes, sent or scheduled, whatever the case it was written in; others' stay."""

from __future__ import annotations

from datetime import timedelta

import pytest

from m3o.runtime.auth import Account
from m3o.runtime.errors import BadRequest, Forbidden, M3OError, Unauthorized
from m3o.services.emails.proto import emails_pb2 as pb
from services.emails.support import ADMIN, CUSTOMER, SERVICE, World, call, send_request


async def recipients(world: World) -> list[str]:
    return sorted(e.recipient for e in await world.emails(limit=1000))


async def some_emails(world: World) -> None:
    await world.send(send_request(to="ann@example.com"))
    await world.send(send_request(to="Ann@Example.com"))
    scheduled = send_request(to="ann@example.com")
    scheduled.send_at = int((world.clock() + timedelta(days=1)).timestamp())
    await world.send(scheduled)
    await world.send(send_request(to="bob@example.com"))


def erase(email: str = "ANN@example.com", customer_id: str = "ann") -> pb.DeleteCustomerRequest:
    return pb.DeleteCustomerRequest(customer_id=customer_id, email=email)


async def test_every_email_to_the_address_goes(world: World) -> None:
    await some_emails(world)
    await world.handler.delete_customer(erase(), call("DeleteCustomer", SERVICE))
    assert await recipients(world) == ["bob@example.com"]
    await world.handler.delete_customer(erase(), call("DeleteCustomer", SERVICE))  # again
    assert await recipients(world) == ["bob@example.com"]


async def test_without_an_address_nothing_goes(world: World) -> None:
    await some_emails(world)
    before = await recipients(world)
    await world.handler.delete_customer(erase(email=""), call("DeleteCustomer", SERVICE))
    assert await recipients(world) == before


@pytest.mark.parametrize(
    ("account", "error"), [(CUSTOMER, Forbidden), (ADMIN, Forbidden), (None, Unauthorized)]
)
async def test_only_services_may_delete_customers(
    world: World, account: Account | None, error: type[M3OError]
) -> None:
    await some_emails(world)
    before = await recipients(world)
    with pytest.raises(error):
        await world.handler.delete_customer(erase(), call("DeleteCustomer", account))
    assert await recipients(world) == before


@pytest.mark.parametrize("customer_id", ["", " "])
async def test_a_missing_customer_id_is_bad_request(world: World, customer_id: str) -> None:
    with pytest.raises(BadRequest) as raised:
        await world.handler.delete_customer(
            erase(customer_id=customer_id), call("DeleteCustomer", SERVICE)
        )
    assert raised.value.detail == "Missing customer ID"
