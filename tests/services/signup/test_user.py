"""User: validation, allow and block lists, existing customers (answered as new ones, the
owner told), the emailed code."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.email_address import SignupPolicy
from m3o.runtime.errors import BadRequest, Conflict, Forbidden, Internal, NotFound, Unavailable
from m3o.runtime.rpc.jsonmap import message_to_dict
from m3o.runtime.store import SessionFactory
from m3o.services.customers.proto import customers_pb2 as customers_pb
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


@pytest.mark.parametrize(
    "email",
    ["ann", "ann@", "ann@example", "a nn@example.com", "<script>@x.com", '"a"@example.com',
     "a\x00b@example.com", "ann@ex\u0430mple.com", "ann@example.com>", "ann@example.com\r\n",
     "\tann@example.com", f"{'a' * 65}@example.com",
     f"ann@{'b' * 63}.{'c' * 63}.{'d' * 63}.{'e' * 63}.com"],
)  # fmt: skip
async def test_user_invalid_email_is_bad_request_and_creates_nothing(
    world: World, email: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.user(pb.UserRequest(email=email), call("User"))
    assert caught.value.id == "signup.user"
    assert caught.value.code == 400
    assert caught.value.detail.startswith("Invalid email: ")
    assert world.customers.fake.read.call_count == 0
    assert world.customers.fake.create.call_count == 0
    assert world.emails.send.call_count == 0
    async with world.sessions() as session:
        assert (await session.execute(select(codes))).all() == []


async def answer_to_user(world: World, email: str) -> dict[str, object]:
    """What the caller of User sees, as JSON (the gateway's mapping)."""
    response = await world.handler.user(pb.UserRequest(email=email), call("User"))
    return message_to_dict(response)


@pytest.mark.parametrize("status", ["verified", "active"])
async def test_user_for_an_existing_account_answers_as_for_a_new_address_and_tells_the_owner(
    world: World, status: str
) -> None:
    owner = world.customers.add("ann@example.com", status)
    new = await answer_to_user(world, "bob@example.com")
    world.forget_calls()

    existing = await answer_to_user(world, " Ann@Example.com ")

    assert existing == new
    assert world.customers.fake.create.call_count == 0
    [notice] = world.emails.send.calls
    assert notice.to == "ann@example.com"
    assert notice.template_id == "account_exists"
    assert orjson.loads(notice.template_data) == {"email": "ann@example.com"}
    assert world.customers.by_id[owner.id].status == status
    async with world.sessions() as session:
        stored = (await session.execute(select(codes.c.email))).scalars().all()
    assert stored == ["bob@example.com"]  # no code for the existing address
    assert world.events() == []


async def test_user_for_a_banned_customer_answers_the_same_and_emails_nobody(
    world: World,
) -> None:
    world.customers.add("ann@example.com", "banned")
    assert await answer_to_user(world, "ann@example.com") == {}
    assert world.customers.fake.create.call_count == 0
    assert world.emails.send.call_count == 0


async def test_user_tells_the_owner_at_most_once_an_hour(world: World) -> None:
    world.customers.add("ann@example.com", "verified")
    for _ in range(3):
        assert await answer_to_user(world, "ann@example.com") == {}
    assert len(world.sent("account_exists")) == 1
    world.clock.advance(timedelta(hours=1, seconds=1))
    await answer_to_user(world, "ann@example.com")
    assert len(world.sent("account_exists")) == 2


async def test_user_failing_notice_is_unavailable_and_may_be_retried_at_once(world: World) -> None:
    world.customers.add("ann@example.com", "verified")
    world.emails.send.returns_once(Unavailable("emails.send", "smtp down"))
    with pytest.raises(Unavailable) as caught:
        await answer_to_user(world, "ann@example.com")
    assert caught.value == Unavailable("signup.user", "Service unavailable")
    await answer_to_user(world, "ann@example.com")
    assert len(world.sent("account_exists")) == 2


def policy_world(
    engine: AsyncEngine, sessions: SessionFactory, *, block: list[str], allow: list[str]
) -> World:
    policy = SignupPolicy(block_list=block, allow_list=allow)
    return make_world(engine, sessions, SignupSettings(policy=policy))


@pytest.mark.parametrize(
    ("email", "block", "allow", "allowed"),
    [
        ("ann@spam.com", [r".*@spam\.com"], [], False),
        ("x@spam.com", ["@spam.com"], [], False),  # found anywhere, as Go's MatchString
        ("ann@spam.com.example.org", [r"@spam\.com"], [], False),
        ("ann@spam.com.example.org", [r"@spam\.com$"], [], True),  # anchored by the pattern
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


async def test_user_failing_email_is_a_generic_unavailable_error(world: World) -> None:
    world.emails.send.raises(Unavailable("emails.send", "smtp.example.com refused: 550"))
    with pytest.raises(Unavailable) as caught:
        await world.handler.user(pb.UserRequest(email="ann@example.com"), call("User"))
    assert caught.value == Unavailable("signup.user", "Service unavailable")


async def test_user_failing_customers_is_a_generic_internal_error(world: World) -> None:
    world.customers.fake.read.returns_once(Internal("customers.read", "db down"))
    with pytest.raises(Internal) as caught:
        await world.handler.user(pb.UserRequest(email="ann@example.com"), call("User"))
    assert caught.value == Internal("signup.user", "Internal server error")
    assert world.emails.send.call_count == 0


async def test_user_racing_a_verification_answers_as_usual_and_tells_the_owner(
    world: World,
) -> None:
    async def verified_meanwhile(
        request: customers_pb.CreateRequest,
    ) -> customers_pb.CreateResponse:
        world.customers.add(request.email, "verified")
        raise Conflict("customers.create.exists", "exists")

    world.customers.fake.create.calls_through(verified_meanwhile)
    assert await answer_to_user(world, "ann@example.com") == {}
    [notice] = world.emails.send.calls
    assert notice.template_id == "account_exists"


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
