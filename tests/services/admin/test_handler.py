"""DeleteData: who may call it, bad tenant ids, every service asked once and all at once,
and a failing service reported, then retried alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from m3o.runtime.auth import Account
from m3o.runtime.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Internal,
    M3OError,
    Unauthorized,
    Unavailable,
)
from m3o.runtime.store import transaction
from m3o.services.admin import records
from m3o.services.admin.proto import admin_pb2 as pb
from m3o.services.billing.proto import billing_pb2
from m3o.services.customers.proto import customers_pb2
from services.admin.support import EMAIL, ROLES, SERVICE_NAMES, START, World, call

ALL = list(SERVICE_NAMES)


async def delete(world: World, tenant_id: str = "micro/ann", account: Account | None = None):  # type: ignore[no-untyped-def]
    ctx = call("DeleteData") if account is None else call("DeleteData", account)
    return await world.handler.delete_data(pb.DeleteDataRequest(tenant_id=tenant_id), ctx)


@pytest.mark.parametrize(
    ("role", "error"),
    [
        ("customer", Forbidden),
        ("other customer", Forbidden),
        ("admin", None),
        ("service", None),
        ("anonymous", Unauthorized),
    ],
)
async def test_delete_data_by_role(world: World, role: str, error: type[M3OError] | None) -> None:
    ctx = call("DeleteData", ROLES[role])
    request = pb.DeleteDataRequest(tenant_id="micro/ann")
    if error is None:
        answer = await world.handler.delete_data(request, ctx)
        assert list(answer.services) == ALL
        assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 1)
    else:
        with pytest.raises(error):
            await world.handler.delete_data(request, ctx)
        assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 0)


@pytest.mark.parametrize(
    ("tenant_id", "detail"),
    [
        ("", "Missing tenant ID"),
        ("   ", "Missing tenant ID"),
        ("micro/", "Invalid tenant ID"),
        ("other/ann", "Invalid tenant ID"),
        ("micro/ann/more", "Invalid tenant ID"),
        ("micro/" + "a" * 256, "Invalid tenant ID"),
    ],
)
async def test_bad_tenant_id_is_bad_request_and_asks_nobody(
    world: World, tenant_id: str, detail: str
) -> None:
    with pytest.raises(BadRequest) as raised:
        await delete(world, tenant_id)
    assert raised.value.detail == detail
    assert raised.value.id == "admin.deletedata"
    assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 0)


async def test_every_service_is_asked_once_with_the_customer_and_its_address(
    world: World,
) -> None:
    answer = await delete(world)
    assert list(answer.services) == ALL
    f = world.fakes
    assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 1)
    assert f.customers.delete_customer.calls[0].customer_id == "ann"
    assert (
        f.signup.delete_customer.calls[0].customer_id,
        f.signup.delete_customer.calls[0].email,
    ) == ("ann", EMAIL)
    assert (
        f.emails.delete_customer.calls[0].customer_id,
        f.emails.delete_customer.calls[0].email,
    ) == ("ann", EMAIL)
    assert f.mailchimp.delete_customer.calls[0].email == EMAIL
    assert f.projects.delete_customer.calls[0].id == "ann"
    assert f.balance.delete_customer.calls[0].user_id == "ann"
    assert f.stripe.delete_customer.calls[0].customer_id == "ann"
    assert f.usage.delete_customer.calls[0].id == "ann"
    assert f.billing.delete_customer.calls[0].customer_id == "ann"
    assert f.v1.delete_customer.calls[0].id == "ann"


async def test_a_bare_customer_id_is_accepted(world: World) -> None:
    await delete(world, "ann")
    assert world.fakes.customers.delete_customer.calls[0].customer_id == "ann"


async def test_services_after_customers_are_asked_all_at_once(world: World) -> None:
    others = [n for n in SERVICE_NAMES if n != "customers"]
    started: set[str] = set()
    everyone = asyncio.Event()

    def waiting(name: str, response: object):  # type: ignore[no-untyped-def]
        async def answer(request: object) -> object:
            started.add(name)
            if started == set(others):
                everyone.set()
            await everyone.wait()  # only if every other call is in flight at once
            return response

        return answer

    for name in others:
        method = getattr(world.fakes, name).delete_customer
        method.calls_through(waiting(name, method._response_type()))
    answer = await asyncio.wait_for(delete(world), timeout=30)
    assert list(answer.services) == ALL


async def test_a_failing_service_is_named_then_retried_alone(world: World) -> None:
    world.fakes.billing.delete_customer.returns_once(Internal("billing.deletecustomer", "boom"))
    with capture_logs() as logs, pytest.raises(Unavailable) as raised:
        await delete(world)
    assert raised.value.detail == "Deleting data failed in: billing; call again to retry"
    failures = [e for e in logs if e["event"] == "admin.delete_failed"]
    assert [(e["service"], e["customer_id"]) for e in failures] == [("billing", "ann")]
    assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 1)

    answer = await delete(world)
    assert list(answer.services) == ALL
    counts = world.fakes.counts()
    assert counts == {**dict.fromkeys(SERVICE_NAMES, 1), "billing": 2}
    assert world.fakes.billing.delete_customer.calls[1] == billing_pb2.DeleteCustomerRequest(
        customer_id="ann"
    )


async def test_several_failures_are_named_in_order(world: World) -> None:
    world.fakes.v1.delete_customer.returns_once(Unavailable("v1.deletecustomer", "down"))
    world.fakes.balance.delete_customer.returns_once(Internal("balance.deletecustomer", "x"))
    with pytest.raises(Unavailable) as raised:
        await delete(world)
    assert raised.value.detail == "Deleting data failed in: balance, v1; call again to retry"


async def test_a_finished_deletion_asks_nobody_again(world: World) -> None:
    await delete(world)
    answer = await delete(world)
    assert list(answer.services) == ALL
    assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 1)


async def test_while_customers_fails_services_kept_by_address_wait_for_it(world: World) -> None:
    world.fakes.customers.delete_customer.returns_once(
        Unavailable("customers.deletecustomer", "down")
    )
    with pytest.raises(Unavailable) as raised:
        await delete(world)
    assert raised.value.detail == (
        "Deleting data failed in: customers, emails, mailchimp, signup; call again to retry"
    )
    assert world.fakes.counts() == {
        **dict.fromkeys(SERVICE_NAMES, 1),
        "customers": 1,
        "emails": 0,
        "mailchimp": 0,
        "signup": 0,
    }

    await delete(world)
    assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 1) | {"customers": 2}
    assert world.fakes.emails.delete_customer.calls[0].email == EMAIL
    assert world.fakes.signup.delete_customer.calls[0].email == EMAIL


async def test_a_customer_without_a_record_still_has_the_rest_deleted(world: World) -> None:
    world.fakes.customers.delete_customer.returns(customers_pb2.DeleteCustomerResponse())
    answer = await delete(world)
    assert list(answer.services) == ALL
    assert world.fakes.emails.delete_customer.calls[0].email == ""
    assert world.fakes.mailchimp.delete_customer.call_count == 0  # no address: nothing to find


async def test_a_second_call_while_one_runs_asks_nobody_and_is_conflict(world: World) -> None:
    release = asyncio.Event()
    asked = asyncio.Event()

    async def slow(
        request: billing_pb2.DeleteCustomerRequest,
    ) -> billing_pb2.DeleteCustomerResponse:
        asked.set()
        await release.wait()
        return billing_pb2.DeleteCustomerResponse()

    world.fakes.billing.delete_customer.calls_through(slow)
    first = asyncio.create_task(delete(world))
    await asyncio.wait_for(asked.wait(), timeout=30)
    with pytest.raises(Conflict) as raised:
        await delete(world)
    assert raised.value.detail == "Deletion already under way; call again shortly"
    release.set()
    answer = await asyncio.wait_for(first, timeout=30)
    assert list(answer.services) == ALL
    assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 1)


async def test_a_run_whose_process_died_is_taken_over_after_its_lease(world: World) -> None:
    async with transaction(world.sessions) as session:
        await records.start(session, "ann", "", START)
        assert await records.claim(session, "ann", START, START + timedelta(seconds=1))
    answer = await delete(world)  # the clock has passed the lease
    assert list(answer.services) == ALL


async def test_a_failed_run_lets_the_next_one_in(world: World) -> None:
    world.fakes.v1.delete_customer.returns_once(Unavailable("v1.deletecustomer", "down"))
    with pytest.raises(Unavailable):
        await delete(world)
    await delete(world)
    assert world.fakes.counts() == dict.fromkeys(SERVICE_NAMES, 1) | {"v1": 2}
