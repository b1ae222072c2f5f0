"""Recover and ResetPassword: no enumeration, the rate limit, single-use expiring tokens."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import orjson
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.events.customers import EventType
from m3o.runtime.counters.redis import RedisCounterStore
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.errors import BadRequest, Internal, TooManyRequests, Unavailable
from m3o.runtime.store import SessionFactory
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.customers.proto import customers_pb2 as customers_pb
from m3o.services.signup.proto import signup_pb2 as pb
from m3o.services.signup.settings import SignupSettings
from m3o.services.signup.tables import reset_tokens
from services.signup.conftest import make_world
from services.signup.support import World, call

NEW_PASSWORD = "a brand new password"


async def recover(world: World, email: str = "ann@example.com") -> None:
    await world.handler.recover(pb.RecoverRequest(email=email), call("Recover"))


async def reset(
    world: World, token: str, email: str = "ann@example.com", password: str = NEW_PASSWORD
) -> None:
    request = pb.ResetPasswordRequest(email=email, token=token, password=password)
    await world.handler.reset_password(request, call("ResetPassword"))


def verified(world: World) -> customers_pb.Customer:
    return world.customers.add("ann@example.com", "verified")


async def test_the_recovery_email_links_to_the_consoles_reset_page(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    page = "https://m3o.example.com/console/reset"
    world = make_world(engine, sessions, SignupSettings(reset_page=page))
    verified(world)
    await recover(world)
    [sent] = world.emails.send.calls
    data = orjson.loads(sent.template_data)
    query = urlencode({"email": "ann@example.com", "token": data["token"]})
    assert data["reset_url"] == f"{page}?{query}"


async def test_recover_emails_a_reset_token_and_publishes_password_reset(world: World) -> None:
    customer = verified(world)
    await recover(world, " ANN@example.com")

    [sent] = world.emails.send.calls
    assert sent.to == "ann@example.com"
    assert sent.template_id == "recovery"
    assert sent.idempotency_key.startswith("recovery:")
    data = orjson.loads(sent.template_data)
    assert data["email"] == "ann@example.com"
    assert len(data["token"]) >= 40
    assert "reset_url" not in data  # no console page configured
    [event] = world.events()
    assert event.type == EventType.EventTypePasswordReset
    assert event.customer.id == customer.id
    assert all(p.in_transaction for p in world.publisher.published)
    async with world.sessions() as session:
        [row] = (await session.execute(select(reset_tokens))).all()
    assert data["token"] not in repr(tuple(row))


@pytest.mark.parametrize("status", [None, "unverified", "banned"])
async def test_recover_for_unknown_unverified_or_banned_succeeds_without_email(
    world: World, status: str | None
) -> None:
    if status is not None:
        world.customers.add("ann@example.com", status)
    await recover(world)
    assert world.emails.send.call_count == 0
    assert world.events() == []


async def test_recover_twice_within_a_minute_is_too_many_requests(world: World) -> None:
    verified(world)
    await recover(world)
    world.clock.advance(timedelta(seconds=59))
    with pytest.raises(TooManyRequests) as caught:
        await recover(world, "Ann@Example.com")
    assert caught.value.id == "signup.recover"
    assert caught.value.code == 429
    assert world.emails.send.call_count == 1

    world.clock.advance(timedelta(seconds=2))
    await recover(world)
    assert world.emails.send.call_count == 2


async def test_recover_limit_applies_to_unknown_addresses_too(world: World) -> None:
    await recover(world, "nobody@example.com")
    with pytest.raises(TooManyRequests):
        await recover(world, "nobody@example.com")


async def test_recover_answers_registered_and_unknown_addresses_alike(world: World) -> None:
    verified(world)
    answers: dict[str, list[str]] = {}
    for email in ("ann@example.com", "nobody@example.com"):
        seen = answers.setdefault(email, [])
        for _ in range(2):
            try:
                await recover(world, email)
                seen.append("ok")
            except TooManyRequests as exc:
                seen.append(f"{exc.code} {exc.detail}")
    assert answers["ann@example.com"] == answers["nobody@example.com"]
    assert answers["nobody@example.com"][0] == "ok"
    assert answers["nobody@example.com"][1].startswith("429 ")


async def test_recover_failing_email_is_unavailable_and_may_be_retried_at_once(
    world: World,
) -> None:
    verified(world)
    world.emails.send.returns_once(Unavailable("emails.send", "smtp down"))
    with pytest.raises(Unavailable) as caught:
        await recover(world)
    assert caught.value == Unavailable("signup.recover", "Service unavailable")
    await recover(world)
    assert world.emails.send.call_count == 2


@pytest.mark.parametrize(
    ("email", "detail"),
    [
        ("", "Missing email"),
        ("not-an-email", "Invalid email: it must be one address such as name@example.com"),
        ('"a"@example.com', "Invalid email: quoted names are not accepted"),
        ("a\x00b@example.com", "Invalid email: spaces and control characters are not accepted"),
    ],
)
async def test_recover_bad_email_is_bad_request(world: World, email: str, detail: str) -> None:
    with pytest.raises(BadRequest) as caught:
        await recover(world, email)
    assert caught.value == BadRequest("signup.recover", detail)
    assert world.customers.fake.read.call_count == 0


async def test_reset_password_changes_the_secret_and_ends_every_session(world: World) -> None:
    customer = verified(world)
    await recover(world)
    await reset(world, world.last_reset_token(), email="Ann@example.com")

    assert world.auth.change_secret.calls == [
        auth_pb.ChangeSecretRequest(id=customer.id, new_secret=NEW_PASSWORD)
    ]
    assert world.auth.revoke_sessions.calls == [auth_pb.RevokeSessionsRequest(id=customer.id)]


async def test_reset_password_with_a_used_token_is_bad_request(world: World) -> None:
    verified(world)
    await recover(world)
    token = world.last_reset_token()
    await reset(world, token)
    with pytest.raises(BadRequest) as caught:
        await reset(world, token, password="yet another password")
    assert caught.value.id == "signup.resetpassword"
    assert "used" in caught.value.detail
    assert world.auth.change_secret.call_count == 1


async def test_reset_password_with_a_wrong_token_is_bad_request(world: World) -> None:
    verified(world)
    await recover(world)
    with pytest.raises(BadRequest) as caught:
        await reset(world, "not-the-token")
    assert caught.value == BadRequest("signup.resetpassword", "The reset token is invalid")
    assert world.auth.change_secret.call_count == 0


async def test_reset_password_with_another_addresses_token_is_bad_request(
    world: World,
) -> None:
    verified(world)
    await recover(world)
    with pytest.raises(BadRequest) as caught:
        await reset(world, world.last_reset_token(), email="eve@example.com")
    assert caught.value.detail == "The reset token is invalid"


async def test_reset_password_with_an_expired_token_is_bad_request(world: World) -> None:
    verified(world)
    await recover(world)
    world.clock.advance(timedelta(minutes=10))
    with pytest.raises(BadRequest) as caught:
        await reset(world, world.last_reset_token())
    assert "expired" in caught.value.detail
    assert world.auth.change_secret.call_count == 0


async def test_reset_password_token_works_within_ten_minutes(world: World) -> None:
    verified(world)
    await recover(world)
    world.clock.advance(timedelta(minutes=9, seconds=59))
    await reset(world, world.last_reset_token())


@pytest.mark.parametrize("password", ["", "short"])
async def test_reset_password_weak_password_is_bad_request(world: World, password: str) -> None:
    verified(world)
    await recover(world)
    with pytest.raises(BadRequest) as caught:
        await reset(world, world.last_reset_token(), password=password)
    assert caught.value.detail == "Password must be at least 8 characters"
    await reset(world, world.last_reset_token())


async def test_reset_password_missing_token_is_bad_request(world: World) -> None:
    with pytest.raises(BadRequest) as caught:
        await reset(world, "")
    assert caught.value == BadRequest("signup.resetpassword", "Missing token")


async def test_reset_password_failing_auth_keeps_the_token_usable(world: World) -> None:
    verified(world)
    await recover(world)
    world.auth.change_secret.returns_once(Internal("auth.changesecret", "db"))
    with pytest.raises(Internal) as caught:
        await reset(world, world.last_reset_token())
    assert caught.value == Internal("signup.resetpassword", "Internal server error")
    await reset(world, world.last_reset_token())
    assert world.auth.change_secret.call_count == 2


async def test_reset_password_for_a_customer_banned_since_is_bad_request(world: World) -> None:
    customer = verified(world)
    await recover(world)
    customer.status = "banned"
    with pytest.raises(BadRequest):
        await reset(world, world.last_reset_token())
    assert world.auth.change_secret.call_count == 0


async def test_a_newer_recovery_token_replaces_the_older_one(world: World) -> None:
    verified(world)
    await recover(world)
    older = world.last_reset_token()
    world.clock.advance(timedelta(minutes=1))
    await recover(world)
    with pytest.raises(BadRequest):
        await reset(world, older)
    await reset(world, world.last_reset_token())


@pytest.mark.parametrize("store", ["sql", "redis"])
async def test_recover_limit_holds_across_processes(
    engine: AsyncEngine, sessions: SessionFactory, redis: aioredis.Redis, store: str
) -> None:
    shared = SqlCounterStore(engine) if store == "sql" else RedisCounterStore(redis)
    first = make_world(engine, sessions, counters=shared)
    second = make_world(engine, sessions, counters=shared)
    await recover(first, "nobody@example.com")
    with pytest.raises(TooManyRequests):
        await recover(second, "nobody@example.com")
