"""Token: credentials and refresh tokens give token pairs; anything wrong is refused alike."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.auth import Account
from m3o.runtime.auth.tokens import JwtAuthenticator, revoked_session_key
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.errors import (
    BadRequest,
    Forbidden,
    M3OError,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from m3o.services.auth import tables
from m3o.services.auth.proto import auth_pb2 as pb
from m3o.services.auth.sessions import hash_token
from m3o.services.auth.settings import AuthSettings
from services.auth.support import ADMIN, SECRET, SERVICE, World, call, customer


async def test_token_by_id_gives_a_working_token_pair(world: World) -> None:
    await world.generate("ann", name="Ann@Example.com")
    issued = await world.login("ann")
    assert issued.account.id == "ann"
    assert issued.token.refresh_token
    assert issued.token.expiry - issued.token.created == 3600
    account = await world.account_of(issued.token.access_token)
    assert (account.id, account.type, account.name, account.scopes) == (
        "ann",
        "customer",
        "ann@example.com",
        ("customer",),
    )
    assert account.metadata["session"]


async def test_token_by_name_ignores_case_and_spaces(world: World) -> None:
    await world.generate("ann", name="ann@example.com")
    request = pb.TokenRequest(name="  ANN@Example.com ", secret=SECRET)
    issued = await world.auth.token(request, call("Token", None))
    assert issued.account.id == "ann"


async def test_access_token_carries_the_documented_claims(world: World) -> None:
    await world.generate("ann", name="ann@example.com")
    issued = await world.login("ann")
    token = issued.token.access_token
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "EdDSA"
    assert header["kid"]
    assert claims["sub"] == "ann"
    assert claims["iss"] == "micro"
    assert claims["type"] == "customer"
    assert claims["scopes"] == ["customer"]
    assert claims["name"] == "ann@example.com"
    assert claims["metadata"] == {}
    assert claims["sid"]
    assert claims["jti"]
    assert claims["iat"] == issued.token.created
    assert claims["exp"] == issued.token.expiry


async def test_token_expiry_sets_the_access_token_lifetime(world: World) -> None:
    await world.generate("ann")
    issued = await world.login("ann", expiry=30 * 24 * 3600)
    assert issued.token.expiry - issued.token.created == 30 * 24 * 3600


async def test_bad_token_requests_are_bad_request(world: World) -> None:
    await world.generate("ann")
    cases = [
        pb.TokenRequest(secret=SECRET),
        pb.TokenRequest(id="ann"),
        pb.TokenRequest(name="  ", secret=SECRET),
        pb.TokenRequest(id="ann", secret=SECRET, token_expiry=-1),
        pb.TokenRequest(id="ann", secret=SECRET, token_expiry=91 * 24 * 3600),
    ]
    for request in cases:
        with pytest.raises(BadRequest) as caught:
            await world.auth.token(request, call("Token", None))
        assert caught.value.id == "auth.token"


async def test_wrong_secret_and_unknown_account_get_the_same_refusal(world: World) -> None:
    await world.generate("ann")
    with pytest.raises(Unauthorized) as wrong:
        await world.login("ann", "wrong secret")
    with pytest.raises(Unauthorized) as unknown:
        await world.login("nobody", "wrong secret")
    assert wrong.value == unknown.value == Unauthorized("auth.token", "Invalid credentials")


async def test_access_token_stops_working_when_it_expires(world: World) -> None:
    await world.generate("ann")
    issued = await world.login("ann")
    world.clock.advance(minutes=59)
    await world.account_of(issued.token.access_token)
    world.clock.advance(minutes=2)
    with pytest.raises(Unauthorized):
        await world.account_of(issued.token.access_token)


async def test_refresh_rotates_the_refresh_token_in_the_same_session(world: World) -> None:
    await world.generate("ann")
    first = await world.login("ann")
    world.clock.advance(minutes=30)
    second = await world.refresh(first.token.refresh_token)
    assert second.token.refresh_token != first.token.refresh_token
    assert second.token.created == first.token.created + 30 * 60
    old = await world.account_of(first.token.access_token)
    new = await world.account_of(second.token.access_token)
    assert new.id == "ann"
    assert new.metadata["session"] == old.metadata["session"]
    async with world.sessions() as session:
        used = await session.scalar(
            select(tables.refresh_tokens.c.used).where(
                tables.refresh_tokens.c.hash == hash_token(first.token.refresh_token)
            )
        )
    assert used is not None


async def test_refresh_keeps_the_lifetime_the_session_started_with(world: World) -> None:
    await world.generate("ann")
    first = await world.login("ann", expiry=7 * 24 * 3600)
    second = await world.refresh(first.token.refresh_token)
    assert second.token.expiry - second.token.created == 7 * 24 * 3600


async def test_reused_refresh_token_revokes_the_whole_family(world: World) -> None:
    await world.generate("ann")
    first = await world.login("ann")
    second = await world.refresh(first.token.refresh_token)
    with pytest.raises(Unauthorized) as caught:
        await world.refresh(first.token.refresh_token)  # the thief, or the victim
    assert caught.value == Unauthorized("auth.token", "Invalid refresh token")
    with pytest.raises(Unauthorized):
        await world.refresh(second.token.refresh_token)
    for issued in (first, second):
        with pytest.raises(Unauthorized):
            await world.account_of(issued.token.access_token)


async def test_concurrent_refreshes_with_one_token_let_one_through_then_end_the_family(
    world: World,
) -> None:
    await world.generate("ann")
    issued = await world.login("ann")
    results = await asyncio.gather(
        *(world.refresh(issued.token.refresh_token) for _ in range(2)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, pb.TokenResponse)]
    assert len(winners) == 1
    assert [type(r) for r in results if not isinstance(r, pb.TokenResponse)] == [Unauthorized]
    with pytest.raises(Unauthorized):
        await world.refresh(winners[0].token.refresh_token)


async def test_reuse_revokes_only_that_family(world: World) -> None:
    await world.generate("ann")
    phone = await world.login("ann")
    laptop = await world.login("ann")
    await world.refresh(phone.token.refresh_token)
    with pytest.raises(Unauthorized):
        await world.refresh(phone.token.refresh_token)
    assert (await world.refresh(laptop.token.refresh_token)).account.id == "ann"


async def test_unknown_or_expired_refresh_token_is_unauthorized(world: World) -> None:
    await world.generate("ann")
    issued = await world.login("ann")
    with pytest.raises(Unauthorized):
        await world.refresh("not-a-token")
    world.clock.advance(days=91)
    with pytest.raises(Unauthorized):
        await world.refresh(issued.token.refresh_token)


async def test_refresh_token_lifetime_is_configurable(world: World) -> None:
    short = world.variant(settings=AuthSettings(refresh_token_ttl=timedelta(days=1)))
    await world.generate("ann")
    issued = await short.login("ann")
    world.clock.advance(days=1, seconds=1)
    with pytest.raises(Unauthorized):
        await short.refresh(issued.token.refresh_token)


async def test_deleted_account_cannot_refresh(world: World) -> None:
    await world.generate("ann")
    issued = await world.login("ann")
    await world.auth.delete(pb.DeleteRequest(id="ann"), call("Delete"))
    with pytest.raises(Unauthorized):
        await world.refresh(issued.token.refresh_token)


async def test_blocked_account_can_neither_log_in_nor_refresh(world: World) -> None:
    await world.generate("ann")
    issued = await world.login("ann")
    await world.auth.block(pb.BlockRequest(id="ann"), call("Block"))
    with pytest.raises(Unauthorized) as caught:
        await world.login("ann")
    assert caught.value.detail == "Invalid credentials"
    with pytest.raises(Unauthorized):
        await world.refresh(issued.token.refresh_token)


async def test_revocation_lasts_as_long_as_the_sessions_access_tokens(world: World) -> None:
    await world.generate("ann")
    issued = await world.login("ann", expiry=3600)
    session_id = (await world.account_of(issued.token.access_token)).metadata["session"]
    await world.auth.revoke_sessions(pb.RevokeSessionsRequest(id="ann"), call("RevokeSessions"))
    assert await world.counters.get(revoked_session_key(session_id)) != 0


async def test_jwks_unreachable_is_unavailable_not_unauthorized(world: World) -> None:
    async def down() -> str:
        raise Unavailable("auth", "Service auth is not available")

    await world.generate("ann")
    issued = await world.login("ann")
    with pytest.raises(Unavailable):
        await JwtAuthenticator(down, world.counters).authenticate(issued.token.access_token)


# Throttling


async def test_repeated_failures_for_an_account_are_throttled(world: World) -> None:
    await world.generate("ann")
    for _ in range(5):
        with pytest.raises(Unauthorized):
            await world.login("ann", "wrong")
    with pytest.raises(TooManyRequests) as caught:
        await world.login("ann")  # from the same client, until its wait ends
    assert caught.value == TooManyRequests(
        "auth.token", "Too many failed attempts, try again in 1 second"
    )


async def test_unknown_accounts_are_throttled_like_known_ones(world: World) -> None:
    for _ in range(5):
        with pytest.raises(Unauthorized):
            await world.login("nobody", "wrong")
    with pytest.raises(TooManyRequests):
        await world.login("nobody", "wrong")


async def test_failures_by_name_and_by_id_count_for_the_same_account(world: World) -> None:
    await world.generate("ann", name="ann@example.com")
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await world.login("ann", "wrong")
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await world.auth.token(
                pb.TokenRequest(name="ann@example.com", secret="wrong"), call("Token", None)
            )
    with pytest.raises(TooManyRequests):
        await world.login("ann")


async def test_success_clears_the_accounts_failures(world: World) -> None:
    await world.generate("ann")
    for _ in range(4):
        with pytest.raises(Unauthorized):
            await world.login("ann", "wrong")
    await world.login("ann")
    for _ in range(4):
        with pytest.raises(Unauthorized):
            await world.login("ann", "wrong")
    await world.login("ann")


async def test_repeated_failures_from_one_address_are_throttled(world: World) -> None:
    for number in range(20):
        await world.generate(f"user{number}")
        with pytest.raises(Unauthorized):
            await login_for(world, f"user{number}", "wrong", "203.0.113.9")
    await world.generate("ann")
    with pytest.raises(TooManyRequests):
        await login_for(world, "ann", SECRET, "203.0.113.9")
    assert (await login_for(world, "ann", SECRET, "198.51.100.1")).account.id == "ann"


async def login_for(world: World, account_id: str, secret: str, address: str) -> pb.TokenResponse:
    """A login a service (customers) makes for an end user at ``address``."""
    request = pb.TokenRequest(id=account_id, secret=secret, client_address=address)
    return await world.auth.token(request, call("Token", SERVICE))


async def test_address_can_come_from_call_metadata(world: World) -> None:
    ctx = call("Token", None, {"x-client-address": "203.0.113.9"})
    for number in range(20):
        with pytest.raises(Unauthorized):
            await world.auth.token(pb.TokenRequest(id=f"u{number}", secret="x"), ctx)
    with pytest.raises(TooManyRequests):
        await world.auth.token(pb.TokenRequest(id="other", secret="x"), ctx)


async def test_successes_from_a_busy_address_do_not_count(world: World) -> None:
    await world.generate("ann")
    for _ in range(25):
        await world.login("ann", address="203.0.113.9")


async def test_throttling_ends_when_the_window_passes(world: World, engine: AsyncEngine) -> None:
    # A counter store on the test clock, so the window can pass without waiting.
    throttled = world.variant(counters=SqlCounterStore(engine, now=world.clock))
    await world.generate("ann")
    for _ in range(5):
        with pytest.raises(Unauthorized):
            await throttled.login("ann", "wrong")
    with pytest.raises(TooManyRequests):
        await throttled.login("ann")
    world.clock.advance(minutes=15, seconds=1)
    assert (await throttled.login("ann")).account.id == "ann"


# Grant


async def test_grant_gives_a_service_tokens_for_an_account_without_its_secret(
    world: World,
) -> None:
    await world.generate("ann")
    issued = await world.auth.grant(
        pb.GrantRequest(id="ann", token_expiry=7200), call("Grant", SERVICE)
    )
    assert issued.token.expiry - issued.token.created == 7200
    assert (await world.account_of(issued.token.access_token)).id == "ann"
    assert (await world.refresh(issued.token.refresh_token)).account.id == "ann"
    assert (await world.login("ann")).account.id == "ann"  # the secret is unchanged


async def test_grant_refusals(world: World) -> None:
    await world.generate("ann")
    await world.auth.block(pb.BlockRequest(id="ann"), call("Block"))
    cases: list[tuple[pb.GrantRequest, Account | None, M3OError]] = [
        (pb.GrantRequest(id="ann"), None, Unauthorized("auth.grant", "Unauthorized")),
        (pb.GrantRequest(id="ann"), ADMIN, Forbidden("auth.grant", "Forbidden")),
        (pb.GrantRequest(id="ann"), customer("ann"), Forbidden("auth.grant", "Forbidden")),
        (pb.GrantRequest(), SERVICE, BadRequest("auth.grant", "Missing account id")),
        (
            pb.GrantRequest(id="ann", token_expiry=-5),
            SERVICE,
            BadRequest("auth.grant", "token_expiry must not be negative"),
        ),
        (pb.GrantRequest(id="nobody"), SERVICE, NotFound("auth.grant", "Account not found")),
        (pb.GrantRequest(id="ann"), SERVICE, Forbidden("auth.grant", "Account is blocked")),
    ]
    for request, caller, expected in cases:
        with pytest.raises(M3OError) as caught:
            await world.auth.grant(request, call("Grant", caller))
        assert caught.value == expected
