"""A run's steps against a fake of the platform's HTTP front and the fakes of the services it
calls: a clean slate, signup with the code from Mailin or the outbox, a key, funds, and
every run_check example through /v1 with the key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import Internal, NotFound, Unavailable
from m3o.runtime.store import SessionFactory
from m3o.services.balance.proto import balance_pb2 as balance_pb
from m3o.services.customers.proto import customers_pb2 as customers_pb
from m3o.services.emails.proto import emails_pb2 as emails_pb
from m3o.services.endtoend.alerts import Alert
from m3o.services.endtoend.run import TOP_UP, TOP_UP_REFERENCE
from m3o.services.endtoend.settings import EndtoendSettings
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb
from services.endtoend.support import (
    API_KEY,
    CODE,
    CUSTOMER_ID,
    CUSTOMER_TOKEN,
    EMAIL,
    Fakes,
    FrontState,
    World,
    build_world,
    check_run_factory,
    examples,
    fake_front,
    mail,
    settings,
    until,
    verification_text,
)


@pytest.fixture
def state() -> FrontState:
    return FrontState()


@pytest.fixture
def front(state: FrontState) -> Iterator[str]:
    with fake_front(state) as url:
        yield url


@pytest.fixture
def fakes(state: FrontState) -> Fakes:
    return Fakes(state)


def world_for(
    sessions: SessionFactory,
    counters: CounterStore,
    fakes: Fakes,
    http: httpx.AsyncClient,
    chosen: EndtoendSettings,
) -> World:
    return build_world(sessions, counters, check_run_factory(fakes, sessions, chosen, http), chosen)


async def run_once(world: World) -> None:
    await world.runner.run_scheduled()


async def test_a_run_signs_up_funds_and_calls_every_checked_example(
    sessions: SessionFactory,
    counters: CounterStore,
    http: httpx.AsyncClient,
    state: FrontState,
    front: str,
    fakes: Fakes,
) -> None:
    fakes.apis(
        publicapi_pb.PublicAPI(
            name="alpha", examples_json=examples(("create", True), ("skip", False), ("read", True))
        ),
        publicapi_pb.PublicAPI(name="beta", examples_json=""),
    )
    world = world_for(sessions, counters, fakes, http, settings(api_url=front))
    await run_once(world)

    checked = await world.check()
    assert checked.healthy, checked.detail
    assert world.alerts.alerts == []
    assert fakes.customers.delete.calls == [customers_pb.DeleteRequest(email=EMAIL, force=True)]
    assert state.signups == [{"email": EMAIL}]
    [verify] = state.verifies
    assert (verify["email"], verify["token"]) == (EMAIL, CODE)
    assert len(verify["secret"]) >= 16
    assert state.keys == [
        (
            f"Bearer {CUSTOMER_TOKEN}",
            {"description": "endtoend check", "scopes": ["*"], "expires_in": 3600},
        )
    ]
    [increment] = fakes.balance.increment.calls
    assert (increment.customer_id, increment.delta, increment.reference) == (
        CUSTOMER_ID,
        TOP_UP,
        TOP_UP_REFERENCE,
    )
    assert not increment.visible
    assert increment.idempotency_key == f"endtoend:{checked.result.run_id}"
    assert state.calls == [
        ("alpha", "create", f"Bearer {API_KEY}", {"n": 1}),
        ("alpha", "read", f"Bearer {API_KEY}", {"n": 1}),
    ]


async def test_the_code_stored_by_mailin_after_the_run_asked_is_used(
    sessions: SessionFactory,
    counters: CounterStore,
    http: httpx.AsyncClient,
    state: FrontState,
    front: str,
    fakes: Fakes,
) -> None:
    chosen = settings(api_url=front, read_outbox=False)
    world = world_for(sessions, counters, fakes, http, chosen)
    state.code = "MAILEDIN"
    await world.mailin(mail())  # an older code (ABCDEFGH), from before the run
    running = asyncio.create_task(run_once(world))
    await until(lambda: bool(state.signups))
    await world.mailin(mail(plain=verification_text("MAILEDIN")))
    await running

    assert (await world.check()).healthy
    assert [v["token"] for v in state.verifies] == ["MAILEDIN"]
    assert fakes.emails.list_outbox.call_count == 0


async def test_no_code_within_the_wait_fails_the_signup(
    sessions: SessionFactory,
    counters: CounterStore,
    http: httpx.AsyncClient,
    state: FrontState,
    front: str,
    fakes: Fakes,
) -> None:
    chosen = settings(api_url=front, read_outbox=False, code_wait=timedelta(milliseconds=200))
    world = world_for(sessions, counters, fakes, http, chosen)
    await world.mailin(mail())  # from before the run: not this run's
    await run_once(world)

    checked = await world.check()
    assert checked.detail == "No verification code arrived within 0:00:00.200000"
    assert state.verifies == []
    assert world.alerts.alerts == [Alert(action="signup", metadata={"error": checked.detail})]


async def test_a_customer_that_never_reads_verified_fails_the_signup(
    sessions: SessionFactory,
    counters: CounterStore,
    http: httpx.AsyncClient,
    front: str,
    fakes: Fakes,
) -> None:
    async def unverified(request: customers_pb.ReadRequest) -> customers_pb.ReadResponse:
        return customers_pb.ReadResponse(customer=customers_pb.Customer(status="unverified"))

    fakes.customers.read.calls_through(unverified)
    chosen = settings(api_url=front, code_wait=timedelta(milliseconds=200))
    world = world_for(sessions, counters, fakes, http, chosen)
    await run_once(world)
    detail = (await world.check()).detail
    assert detail == "The customer did not read as verified (last: status unverified)"


@pytest.mark.parametrize("error", [NotFound("customers.delete", "Customer not found"), None])
async def test_a_missing_or_deleted_customer_is_a_clean_slate(
    sessions: SessionFactory,
    counters: CounterStore,
    http: httpx.AsyncClient,
    front: str,
    fakes: Fakes,
    error: Exception | None,
) -> None:
    if error is not None:
        fakes.customers.delete.raises(error)
    world = world_for(sessions, counters, fakes, http, settings(api_url=front))
    await run_once(world)
    assert (await world.check()).healthy
    assert fakes.customers.delete.call_count == 1


async def test_deleting_is_tried_three_times(
    sessions: SessionFactory,
    counters: CounterStore,
    http: httpx.AsyncClient,
    state: FrontState,
    front: str,
    fakes: Fakes,
) -> None:
    fakes.customers.delete.returns_once(
        Unavailable("customers.delete", "busy"), Unavailable("customers.delete", "busy")
    )
    world = world_for(sessions, counters, fakes, http, settings(api_url=front))
    await run_once(world)
    assert (await world.check()).healthy
    assert fakes.customers.delete.call_count == 3

    fakes.customers.delete.raises(Unavailable("customers.delete", "down"))
    await run_once(world)
    checked = await world.check()
    assert checked.detail == (
        "Error while cleaning up the existing customer: customers.delete 503: down"
    )
    assert fakes.customers.delete.call_count == 6
    assert len(state.signups) == 1  # the second run stopped before signing up


async def test_a_refused_signup_request_fails_the_signup(
    sessions: SessionFactory,
    counters: CounterStore,
    http: httpx.AsyncClient,
    state: FrontState,
    front: str,
    fakes: Fakes,
) -> None:
    state.signup_status = 503
    world = world_for(sessions, counters, fakes, http, settings(api_url=front))
    await run_once(world)
    detail = (await world.check()).detail
    assert detail.startswith("Error requesting the verification email: /signup/user answered 503")
    assert [a.action for a in world.alerts.alerts] == ["signup"]


async def test_an_unreachable_front_fails_the_signup(
    sessions: SessionFactory,
    counters: CounterStore,
    http: httpx.AsyncClient,
    fakes: Fakes,
) -> None:
    world = world_for(sessions, counters, fakes, http, settings(api_url="http://127.0.0.1:9"))
    await run_once(world)
    detail = (await world.check()).detail
    assert (
        detail == "Error requesting the verification email: /signup/user unreachable: ConnectError"
    )


async def test_a_failed_key_or_top_up_is_a_setup_failure(
    sessions: SessionFactory,
    counters: CounterStore,
    http: httpx.AsyncClient,
    state: FrontState,
    front: str,
    fakes: Fakes,
) -> None:
    world = world_for(sessions, counters, fakes, http, settings(api_url=front))
    state.key_status = 500
    await run_once(world)
    assert (await world.check()).detail.startswith(
        "Error generating a key: /v1/api/keys/generate answered 500"
    )
    state.key_status = 200
    fakes.balance.increment.raises(Internal("balance.increment", "Internal server error"))
    await run_once(world)
    assert (await world.check()).detail == (
        "Error adding to the balance: balance.increment 500: Internal server error"
    )
    fakes.balance.increment.returns(balance_pb.IncrementResponse())
    fakes.publicapi.list.raises(Unavailable("publicapi.list", "down"))
    await run_once(world)
    assert (await world.check()).detail == "Error listing the APIs: publicapi.list 503: down"
    assert [a.action for a in world.alerts.alerts] == ["signup"] * 3
    assert state.calls == []


async def test_broken_examples_of_two_apis_fail_the_run_store_the_error_and_alert_once(
    sessions: SessionFactory,
    counters: CounterStore,
    http: httpx.AsyncClient,
    state: FrontState,
    front: str,
    fakes: Fakes,
) -> None:
    fakes.apis(
        publicapi_pb.PublicAPI(name="alpha", examples_json=examples(("call", True))),
        publicapi_pb.PublicAPI(name="beta", examples_json=examples(("call", True))),
        publicapi_pb.PublicAPI(name="gamma", examples_json=examples(("call", True))),
    )
    state.broken = {"alpha/call", "gamma/call"}
    world = world_for(sessions, counters, fakes, http, settings(api_url=front))
    await run_once(world)

    checked = await world.check()
    assert not checked.healthy
    assert not checked.result.passed
    assert checked.detail.startswith(
        "Error running example alpha call call example: /v1/alpha/call answered 500"
    )
    assert (
        "Error running example gamma call call example: /v1/gamma/call answered 500"
        in checked.detail
    )
    assert [call[0] for call in state.calls] == ["alpha", "beta", "gamma"]
    assert world.alerts.alerts == [Alert(action="examples", metadata={"error": checked.detail})]


async def test_a_broken_example_of_one_api_passes_the_run_but_is_reported(
    sessions: SessionFactory,
    counters: CounterStore,
    http: httpx.AsyncClient,
    state: FrontState,
    front: str,
    fakes: Fakes,
) -> None:
    fakes.apis(
        publicapi_pb.PublicAPI(name="alpha", examples_json=examples(("one", True), ("two", True))),
        publicapi_pb.PublicAPI(name="beta", examples_json=examples(("call", True))),
    )
    state.broken = {"alpha/one", "alpha/two"}
    world = world_for(sessions, counters, fakes, http, settings(api_url=front))
    await run_once(world)

    checked = await world.check()
    assert checked.healthy
    assert checked.result.error.count("Error running example alpha") == 2
    assert [a.action for a in world.alerts.alerts] == ["examples"]


async def test_an_unreadable_examples_document_is_that_apis_failure(
    sessions: SessionFactory,
    counters: CounterStore,
    http: httpx.AsyncClient,
    state: FrontState,
    front: str,
    fakes: Fakes,
) -> None:
    fakes.apis(
        publicapi_pb.PublicAPI(name="alpha", examples_json="{not json"),
        publicapi_pb.PublicAPI(name="beta", examples_json='{"call": "not a list"}'),
    )
    world = world_for(sessions, counters, fakes, http, settings(api_url=front))
    await run_once(world)
    checked = await world.check()
    assert checked.detail == (
        "Error running example alpha: examples_json is not valid JSON. "
        "Error running example beta: examples of call are not a list"
    )
    assert state.calls == []


async def test_an_outbox_email_from_before_the_run_is_not_its_code(
    sessions: SessionFactory,
    counters: CounterStore,
    http: httpx.AsyncClient,
    state: FrontState,
    front: str,
    fakes: Fakes,
) -> None:
    async def old_email(request: emails_pb.ListOutboxRequest) -> emails_pb.ListOutboxResponse:
        sent = emails_pb.OutboxEmail(
            to=request.to, text=verification_text(CODE), created=int(time.time()) - 3600
        )
        return emails_pb.ListOutboxResponse(emails=[sent])

    fakes.emails.list_outbox.calls_through(old_email)
    chosen = settings(api_url=front, code_wait=timedelta(milliseconds=200))
    world = world_for(sessions, counters, fakes, http, chosen)
    await run_once(world)
    assert (await world.check()).detail.startswith("No verification code arrived")
    assert fakes.emails.list_outbox.calls[0] == emails_pb.ListOutboxRequest(to=EMAIL, limit=5)
    assert state.verifies == []
