"""Revoke, RevokeSessions and Inspect: ending sessions works at once, on every process."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from m3o.runtime.errors import BadRequest, Forbidden, Unauthorized
from m3o.services.auth import tables
from m3o.services.auth.proto import auth_pb2 as pb
from services.auth.support import ADMIN, SERVICE, World, call, customer


async def _session_of(world: World, issued: pb.TokenResponse) -> str:
    return (await world.account_of(issued.token.access_token)).metadata["session"]


async def test_revoke_without_token_ends_the_callers_own_session(world: World) -> None:
    await world.generate("ann")
    mine = await world.login("ann")
    other = await world.login("ann")
    caller = await world.account_of(mine.token.access_token)
    await world.auth.revoke(pb.RevokeRequest(), call("Revoke", caller))
    with pytest.raises(Unauthorized):
        await world.account_of(mine.token.access_token)
    with pytest.raises(Unauthorized):
        await world.refresh(mine.token.refresh_token)
    assert (await world.account_of(other.token.access_token)).id == "ann"


async def test_revoke_with_a_refresh_token_ends_that_family(world: World) -> None:
    await world.generate("ann")
    issued = await world.login("ann")
    current = await world.login("ann")
    caller = await world.account_of(current.token.access_token)
    request = pb.RevokeRequest(refresh_token=issued.token.refresh_token)
    await world.auth.revoke(request, call("Revoke", caller))
    with pytest.raises(Unauthorized):
        await world.refresh(issued.token.refresh_token)
    with pytest.raises(Unauthorized):
        await world.account_of(issued.token.access_token)
    assert (await world.account_of(current.token.access_token)).id == "ann"


async def test_revoking_a_used_refresh_token_still_ends_its_family(world: World) -> None:
    await world.generate("ann")
    first = await world.login("ann")
    second = await world.refresh(first.token.refresh_token)
    request = pb.RevokeRequest(refresh_token=first.token.refresh_token)
    await world.auth.revoke(request, call("Revoke", customer("ann")))
    with pytest.raises(Unauthorized):
        await world.refresh(second.token.refresh_token)


async def test_revoking_an_unknown_refresh_token_succeeds(world: World) -> None:
    request = pb.RevokeRequest(refresh_token="never issued")
    await world.auth.revoke(request, call("Revoke", customer("ann")))


async def test_revoking_another_accounts_session_is_forbidden(world: World) -> None:
    await world.generate("ann")
    await world.generate("bob")
    bobs = await world.login("bob")
    request = pb.RevokeRequest(refresh_token=bobs.token.refresh_token)
    with pytest.raises(Forbidden):
        await world.auth.revoke(request, call("Revoke", customer("ann")))
    await world.auth.revoke(request, call("Revoke", ADMIN))
    with pytest.raises(Unauthorized):
        await world.refresh(bobs.token.refresh_token)


async def test_revoke_needs_an_account_and_a_session(world: World) -> None:
    with pytest.raises(Unauthorized):
        await world.auth.revoke(pb.RevokeRequest(), call("Revoke", None))
    with pytest.raises(BadRequest) as caught:
        await world.auth.revoke(pb.RevokeRequest(), call("Revoke", customer("ann")))
    assert caught.value == BadRequest("auth.revoke", "No session to revoke")


async def test_revoking_twice_is_harmless(world: World) -> None:
    await world.generate("ann")
    issued = await world.login("ann")
    caller = await world.account_of(issued.token.access_token)
    for _ in range(2):
        await world.auth.revoke(pb.RevokeRequest(), call("Revoke", caller))


async def test_revoke_sessions_ends_every_session_of_the_account(world: World) -> None:
    await world.generate("ann")
    await world.generate("bob")
    anns = [await world.login("ann") for _ in range(2)]
    bobs = await world.login("bob")
    await world.auth.revoke_sessions(pb.RevokeSessionsRequest(id="ann"), call("RevokeSessions"))
    for issued in anns:
        with pytest.raises(Unauthorized):
            await world.account_of(issued.token.access_token)
        with pytest.raises(Unauthorized):
            await world.refresh(issued.token.refresh_token)
    assert (await world.account_of(bobs.token.access_token)).id == "bob"
    fresh = await world.login("ann")  # the account itself still works
    assert (await world.account_of(fresh.token.access_token)).id == "ann"


async def test_revoke_sessions_needs_an_id_and_an_admin_or_service(world: World) -> None:
    with pytest.raises(BadRequest):
        await world.auth.revoke_sessions(pb.RevokeSessionsRequest(), call("RevokeSessions"))
    with pytest.raises(Forbidden):
        await world.auth.revoke_sessions(
            pb.RevokeSessionsRequest(id="ann"), call("RevokeSessions", customer("ann"))
        )
    await world.auth.revoke_sessions(
        pb.RevokeSessionsRequest(id="ann"), call("RevokeSessions", SERVICE)
    )


async def test_a_revoked_session_is_refused_by_another_process(world: World) -> None:
    await world.generate("ann")
    issued = await world.login("ann")
    elsewhere = world.variant()  # shares only the database and the counter store
    await elsewhere.account_of(issued.token.access_token)
    await world.auth.revoke_sessions(pb.RevokeSessionsRequest(id="ann"), call("RevokeSessions"))
    with pytest.raises(Unauthorized):
        await elsewhere.account_of(issued.token.access_token)


async def test_revocations_survive_the_loss_of_the_counter_store(world: World) -> None:
    await world.generate("ann")
    issued = await world.login("ann")
    await world.auth.restore_counters()
    await world.auth.revoke_sessions(pb.RevokeSessionsRequest(id="ann"), call("RevokeSessions"))
    session_id = await _session_of_revoked(world)
    await world.counters.delete(f"auth:revoked:{session_id}", "auth:mirror:filled")
    await world.auth.restore_counters_if_lost()
    with pytest.raises(Unauthorized):
        await world.account_of(issued.token.access_token)


async def _session_of_revoked(world: World) -> str:
    async with world.sessions() as session:
        found = await session.scalar(
            select(tables.sessions.c.id).where(tables.sessions.c.revoked.is_not(None))
        )
    assert isinstance(found, str)
    return found


# Inspect


async def test_inspect_returns_the_tokens_account(world: World) -> None:
    await world.generate("ann", name="ann@example.com")
    issued = await world.login("ann")
    inspected = await world.auth.inspect(
        pb.InspectRequest(token=issued.token.access_token), call("Inspect", SERVICE)
    )
    assert inspected.account.id == "ann"
    assert inspected.account.name == "ann@example.com"
    assert list(inspected.account.scopes) == ["customer"]
    assert inspected.account.metadata["session"] == await _session_of(world, issued)


async def test_inspect_refuses_bad_revoked_and_expired_tokens(world: World) -> None:
    await world.generate("ann")
    issued = await world.login("ann")
    ctx = call("Inspect", SERVICE)
    with pytest.raises(Unauthorized) as caught:
        await world.auth.inspect(pb.InspectRequest(token="not.a.jwt"), ctx)
    assert caught.value == Unauthorized("auth.inspect", "Invalid token")
    world.clock.advance(hours=2)
    with pytest.raises(Unauthorized):
        await world.auth.inspect(pb.InspectRequest(token=issued.token.access_token), ctx)


async def test_inspect_needs_an_account_and_a_token(world: World) -> None:
    with pytest.raises(Unauthorized):
        await world.auth.inspect(pb.InspectRequest(token="x"), call("Inspect", None))
    with pytest.raises(BadRequest):
        await world.auth.inspect(pb.InspectRequest(), call("Inspect", customer()))


async def test_purge_forgets_expired_sessions_only(world: World) -> None:
    await world.generate("ann")
    await world.login("ann")
    world.clock.advance(days=60)
    live = await world.login("ann")
    world.clock.advance(days=31)  # the first session's refresh token has expired
    await world.auth.purge_expired_sessions()
    async with world.sessions() as session:
        sessions = await session.scalar(select(func.count()).select_from(tables.sessions))
        tokens = await session.scalar(select(func.count()).select_from(tables.refresh_tokens))
    assert (sessions, tokens) == (1, 1)
    assert (await world.refresh(live.token.refresh_token)).account.id == "ann"
