"""Verify: the code's rules, the password policy, all-or-nothing, the Signup event."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from m3o.events.customers import EventType
from m3o.runtime.errors import BadRequest, Conflict, Forbidden, Internal, NotFound
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.customers.proto import customers_pb2 as customers_pb
from m3o.services.signup.proto import signup_pb2 as pb
from m3o.services.signup.tables import codes
from services.signup.support import ISSUED, PASSWORD, World, wrong_code

INVALID = Forbidden("signup.verify", "The token you provided is invalid")
EXPIRED = Forbidden("signup.verify", "The token you provided has expired")


async def test_verify_creates_the_account_verifies_and_returns_a_session(world: World) -> None:
    code = await world.start_signup()
    [customer] = world.customers.by_id.values()
    world.forget_calls()

    response = await world.verify(code, email="ANN@example.com ")

    assert response == pb.VerifyResponse(
        authToken=pb.AuthToken(
            access_token=ISSUED.access_token,
            refresh_token=ISSUED.refresh_token,
            created=ISSUED.created,
            expiry=ISSUED.expiry,
        ),
        customerID=customer.id,
        namespace="micro",
    )
    assert world.auth.generate.calls == [
        auth_pb.GenerateRequest(
            id=customer.id,
            type="customer",
            scopes=["customer"],
            name="ann@example.com",
            secret=PASSWORD,
        )
    ]
    assert world.customers.fake.mark_verified.calls == [
        customers_pb.MarkVerifiedRequest(id=customer.id)
    ]
    assert world.auth.token.calls == [
        auth_pb.TokenRequest(id=customer.id, secret=PASSWORD, token_expiry=30 * 24 * 3600)
    ]
    assert customer.status == "verified"
    [event] = world.events()
    assert event.type == EventType.EventTypeSignup
    assert event.signup.method == "email"
    assert event.customer.id == customer.id
    assert event.customer.email == "ann@example.com"
    assert event.customer.status == "verified"
    assert event.caller_id == customer.id
    assert all(p.in_transaction for p in world.publisher.published)


def test_verify_response_keeps_the_reference_json_names() -> None:
    names = [f.name for f in pb.VerifyResponse.DESCRIPTOR.fields]
    assert names == ["authToken", "customerID", "namespace"]


async def test_verify_without_password_sets_a_random_secret(world: World) -> None:
    code = await world.start_signup()
    await world.verify(code, secret="")
    [generated] = world.auth.generate.calls
    assert len(generated.secret) >= 32
    assert world.auth.token.calls[0].secret == generated.secret


@pytest.mark.parametrize("secret", ["short", "1234567", "x" * 1025])
async def test_verify_weak_password_is_bad_request_and_keeps_the_code(
    world: World, secret: str
) -> None:
    code = await world.start_signup()
    with pytest.raises(BadRequest) as caught:
        await world.verify(code, secret=secret)
    assert caught.value.id == "signup.verify"
    assert "Password must be" in caught.value.detail
    assert world.auth.generate.call_count == 0
    await world.verify(code)


async def test_verify_missing_fields_are_bad_requests(world: World) -> None:
    with pytest.raises(BadRequest) as missing_email:
        await world.verify("ABCDEFGH", email="")
    assert missing_email.value == BadRequest("signup.verify", "Missing email")
    with pytest.raises(BadRequest) as missing_token:
        await world.verify(" ")
    assert missing_token.value == BadRequest("signup.verify", "Missing token")


async def test_verify_without_pending_code_is_not_found(world: World) -> None:
    with pytest.raises(NotFound) as caught:
        await world.verify("ABCDEFGH")
    assert caught.value.id == "signup.verify"
    assert caught.value.code == 404


async def test_verify_wrong_code_is_forbidden_and_the_right_one_still_works(
    world: World,
) -> None:
    code = await world.start_signup()
    with pytest.raises(Forbidden) as caught:
        await world.verify(wrong_code(code))
    assert caught.value == INVALID
    assert world.auth.generate.call_count == 0
    async with world.sessions() as session:
        attempts = await session.scalar(select(codes.c.attempts))
    assert attempts == 1
    await world.verify(code)


async def test_verify_expired_code_is_forbidden(world: World) -> None:
    code = await world.start_signup()
    world.clock.advance(timedelta(minutes=5))
    with pytest.raises(Forbidden) as caught:
        await world.verify(code)
    assert caught.value == EXPIRED
    assert world.auth.generate.call_count == 0


async def test_verify_code_works_until_its_fifth_minute_ends(world: World) -> None:
    code = await world.start_signup()
    world.clock.advance(timedelta(minutes=5) - timedelta(seconds=1))
    await world.verify(code)


async def test_verify_fifth_wrong_attempt_voids_the_code(world: World) -> None:
    code = await world.start_signup()
    for _ in range(5):
        with pytest.raises(Forbidden) as caught:
            await world.verify(wrong_code(code))
        assert caught.value == INVALID
    with pytest.raises(NotFound):
        await world.verify(code)  # the sixth attempt, even with the right code
    assert world.auth.generate.call_count == 0


async def test_verify_four_wrong_attempts_leave_the_code_usable(world: World) -> None:
    code = await world.start_signup()
    for _ in range(4):
        with pytest.raises(Forbidden):
            await world.verify(wrong_code(code))
    await world.verify(code)


async def test_verify_code_is_single_use(world: World) -> None:
    code = await world.start_signup()
    await world.verify(code)
    with pytest.raises(NotFound):
        await world.verify(code)
    assert world.auth.generate.call_count == 1
    assert len(world.events()) == 1


async def test_verify_failing_mark_verified_deletes_the_account_and_keeps_the_code(
    world: World,
) -> None:
    code = await world.start_signup()
    [customer] = world.customers.by_id.values()
    world.customers.fake.mark_verified.returns_once(Internal("customers.markverified", "db"))

    with pytest.raises(Internal) as caught:
        await world.verify(code)

    assert caught.value == Internal("signup.verify", "Internal server error")
    assert world.auth.delete.calls == [auth_pb.DeleteRequest(id=customer.id)]
    assert world.auth.token.call_count == 0
    assert customer.status == "unverified"
    assert world.events() == []

    response = await world.verify(code)
    assert response.customerID == customer.id
    assert world.auth.generate.call_count == 2
    assert customer.status == "verified"
    assert len(world.events()) == 1


async def test_verify_failing_token_deletes_the_account_and_a_retry_completes(
    world: World,
) -> None:
    code = await world.start_signup()
    [customer] = world.customers.by_id.values()
    world.auth.token.returns_once(Internal("auth.token", "keys missing"))

    with pytest.raises(Internal):
        await world.verify(code)
    assert world.auth.delete.calls == [auth_pb.DeleteRequest(id=customer.id)]
    assert world.events() == []

    await world.verify(code)
    assert customer.status == "verified"
    assert len(world.events()) == 1


async def test_verify_failing_generate_changes_nothing_and_keeps_the_code(world: World) -> None:
    code = await world.start_signup()
    world.auth.generate.returns_once(Internal("auth.generate", "db"))
    with pytest.raises(Internal):
        await world.verify(code)
    assert world.auth.delete.call_count == 0
    assert world.customers.fake.mark_verified.call_count == 0
    await world.verify(code)


async def test_verify_account_left_by_a_half_done_attempt_gets_the_new_password(
    world: World,
) -> None:
    code = await world.start_signup()
    [customer] = world.customers.by_id.values()
    world.auth.generate.returns_once(Conflict("auth.generate", "Account already exists"))

    await world.verify(code)

    assert world.auth.change_secret.calls == [
        auth_pb.ChangeSecretRequest(id=customer.id, new_secret=PASSWORD)
    ]
    assert customer.status == "verified"


async def test_verify_failure_after_changing_an_existing_accounts_secret_keeps_the_account(
    world: World,
) -> None:
    code = await world.start_signup()
    world.auth.generate.returns_once(Conflict("auth.generate", "Account already exists"))
    world.customers.fake.mark_verified.returns_once(Internal("customers.markverified", "db"))
    with pytest.raises(Internal):
        await world.verify(code)
    assert world.auth.delete.call_count == 0


async def test_verify_banned_customer_is_conflict(world: World) -> None:
    code = await world.start_signup()
    [customer] = world.customers.by_id.values()
    customer.status = "banned"
    with pytest.raises(Conflict) as caught:
        await world.verify(code)
    assert caught.value.id == "signup.user.exists"
    assert world.auth.generate.call_count == 0


async def test_verify_deleted_customer_is_not_found(world: World) -> None:
    code = await world.start_signup()
    world.customers.by_id.clear()
    with pytest.raises(NotFound):
        await world.verify(code)
    assert world.auth.generate.call_count == 0


async def test_verify_of_a_code_another_verify_is_completing_is_refused(world: World) -> None:
    code = await world.start_signup()
    entered = asyncio.Event()
    proceed = asyncio.Event()

    async def slow_mark_verified(
        request: customers_pb.MarkVerifiedRequest,
    ) -> customers_pb.MarkVerifiedResponse:
        entered.set()
        await proceed.wait()
        world.customers.by_id[request.id].status = "verified"
        return customers_pb.MarkVerifiedResponse()

    world.customers.fake.mark_verified.calls_through(slow_mark_verified)
    first = asyncio.create_task(world.verify(code))
    await asyncio.wait_for(entered.wait(), 10)

    with pytest.raises(Conflict) as caught:
        await world.verify(code)
    assert caught.value.id == "signup.verify"

    proceed.set()
    await first
    assert world.auth.generate.call_count == 1
    assert len(world.events()) == 1


async def test_verify_hold_of_a_crashed_verify_expires(world: World) -> None:
    code = await world.start_signup()
    async with world.sessions.begin() as session:
        await session.execute(
            codes.update().values(claimed_until=world.clock.now + timedelta(seconds=60))
        )
    with pytest.raises(Conflict):
        await world.verify(code)
    world.clock.advance(timedelta(seconds=61))
    await world.verify(code)
