"""User: validation, allow and block lists, existing customers, the emailed code."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.errors import BadRequest, Conflict, Forbidden, Internal, NotFound, Unavailable
from m3o.runtime.store import SessionFactory
from m3o.services.signup.addresses import SignupPolicy
from m3o.services.signup.proto import signup_pb2 as pb
from m3o.services.signup.settings import SignupSettings
from m3o.services.signup.tables import codes
from services.signup.conftest import make_world
from services.signup.support import CODE_SHAPE, PASSWORD, World, call, wrong_code


async def test_user_creates_the_customer_and_emails_an_eight_letter_code(world: World) -> None:
    await world.handler.user(pb.UserRequest(email="  Ann@Example.COM "), call("User"))

    assert [r.email for r in world.customers.fake.create.calls] == ["ann@example.com"]
    [sent] = world.emails.send.calls
    assert sent.to == "ann@example.com"
    assert sent.template_id == "verification"
    assert sent.idempotency_key.startswith("verification:")
    assert CODE_SHAPE.fullmatch(world.last_code())
    assert world.events() == []


async def test_user_stores_only_a_hash_of_the_code(world: World) -> None:
    code = await world.start_signup()
    async with world.sessions() as session:
        [row] = (await session.execute(select(codes))).all()
    assert code not in repr(tuple(row))
    assert row.email == "ann@example.com"
    assert row.attempts == 0


async def test_user_codes_come_from_a_csprng_and_differ(world: World) -> None:
    found = {await world.start_signup(f"user{i}@example.com") for i in range(20)}
    assert len(found) == 20


async def test_user_new_code_replaces_the_old_one(world: World) -> None:
    first = await world.start_signup()
    second = await world.start_signup()
    assert first != second
    with pytest.raises(Forbidden):
        await world.verify(first)
    response = await world.verify(second)
    assert response.customerID


async def test_user_reuses_the_existing_unverified_customer(world: World) -> None:
    existing = world.customers.add("ann@example.com")
    await world.start_signup()
    response = await world.verify(world.last_code())
    assert response.customerID == existing.id


@pytest.mark.parametrize(("email", "detail"), [("", "Missing email"), ("  ", "Missing email")])
async def test_user_missing_email_is_bad_request(world: World, email: str, detail: str) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.user(pb.UserRequest(email=email), call("User"))
    assert caught.value == BadRequest("signup.user", detail)


@pytest.mark.parametrize("email", ["ann", "ann@", "ann@example", "a nn@example.com"])
async def test_user_invalid_email_is_bad_request(world: World, email: str) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.user(pb.UserRequest(email=email), call("User"))
    assert caught.value == BadRequest("signup.user", "Invalid email")
    assert world.customers.fake.create.call_count == 0
    assert world.emails.send.call_count == 0


@pytest.mark.parametrize("status", ["verified", "active", "banned"])
async def test_user_existing_verified_or_banned_customer_is_conflict(
    world: World, status: str
) -> None:
    world.customers.add("ann@example.com", status)
    with pytest.raises(Conflict) as caught:
        await world.handler.user(pb.UserRequest(email="ann@example.com"), call("User"))
    assert caught.value.id == "signup.user.exists"
    assert caught.value.code == 409
    assert "banned" not in caught.value.detail
    assert world.customers.fake.create.call_count == 0
    assert world.emails.send.call_count == 0


def policy_world(
    engine: AsyncEngine, sessions: SessionFactory, *, block: list[str], allow: list[str]
) -> World:
    policy = SignupPolicy(block_list=block, allow_list=allow)
    return make_world(engine, sessions, SignupSettings(policy=policy))


@pytest.mark.parametrize(
    ("email", "block", "allow", "allowed"),
    [
        ("ann@spam.com", [r".*@spam\.com"], [], False),
        ("ann@spam.com.example.org", [r".*@spam\.com"], [], True),  # whole-address match
        ("ann@example.com", [], [r".*@example\.com"], True),
        ("ann@other.com", [], [r".*@example\.com"], False),
        ("bad@example.com", ["bad@.*"], [r".*@example\.com"], False),  # must pass both
        ("ann@example.com", [""], [], True),  # an empty entry matches nothing
        ("ann@example.com", [], [""], False),
    ],
)
async def test_user_block_and_allow_lists(
    engine: AsyncEngine,
    sessions: SessionFactory,
    email: str,
    block: list[str],
    allow: list[str],
    allowed: bool,
) -> None:
    world = policy_world(engine, sessions, block=block, allow=allow)
    if allowed:
        await world.handler.user(pb.UserRequest(email=email), call("User"))
        assert world.emails.send.call_count == 1
        return
    with pytest.raises(Forbidden) as caught:
        await world.handler.user(pb.UserRequest(email=email.upper()), call("User"))
    assert caught.value == Forbidden("signup.user", "This email address cannot be used to sign up")
    assert world.customers.fake.read.call_count == 0
    assert world.emails.send.call_count == 0


async def test_user_failing_email_is_a_generic_internal_error(world: World) -> None:
    world.emails.send.raises(Unavailable("emails.send", "smtp.example.com refused: 550"))
    with pytest.raises(Internal) as caught:
        await world.handler.user(pb.UserRequest(email="ann@example.com"), call("User"))
    assert caught.value == Internal("signup.user", "Internal server error")


async def test_user_failing_customers_is_a_generic_internal_error(world: World) -> None:
    world.customers.fake.read.returns_once(Internal("customers.read", "db down"))
    with pytest.raises(Internal) as caught:
        await world.handler.user(pb.UserRequest(email="ann@example.com"), call("User"))
    assert caught.value == Internal("signup.user", "Internal server error")
    assert world.emails.send.call_count == 0


async def test_user_conflict_from_a_concurrent_verification_is_conflict(world: World) -> None:
    world.customers.fake.create.returns_once(Conflict("customers.create.exists", "exists"))
    with pytest.raises(Conflict) as caught:
        await world.handler.user(pb.UserRequest(email="ann@example.com"), call("User"))
    assert caught.value.id == "signup.user.exists"


async def test_user_then_verify_works_with_the_code_typed_in_lower_case(world: World) -> None:
    code = await world.start_signup()
    assert code != wrong_code(code)
    response = await world.verify(f" {code.lower()} ", secret=PASSWORD)
    assert response.namespace == "micro"


async def test_user_twice_at_once_for_one_address_leaves_one_working_code(world: World) -> None:
    request = pb.UserRequest(email="ann@example.com")
    await asyncio.gather(
        world.handler.user(request, call("User")), world.handler.user(request, call("User"))
    )
    async with world.sessions() as session:
        rows = (await session.execute(select(codes))).all()
    assert len(rows) == 1
    codes_sent = [orjson.loads(r.template_data)["code"] for r in world.emails.send.calls]
    results = []
    for code in codes_sent:
        try:
            await world.verify(code)
            results.append(True)
        except (Forbidden, NotFound):
            results.append(False)
    assert results.count(True) == 1
