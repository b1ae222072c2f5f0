"""Failed logins slow down the client that fails, per account, and never lock the owner out.

Logins arrive as the gateway sends them: anonymous, the client's address in the call
metadata ``x-client-address``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.auth import CallContext
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.errors import TooManyRequests, Unauthorized
from m3o.services.auth.credentials import CredentialCheck
from m3o.services.auth.passwords import Passwords
from m3o.services.auth.proto import auth_pb2 as pb
from m3o.services.auth.records import AccountRecord
from services.auth.support import SECRET, World, call, cheap_hasher

ATTACKER = "203.0.113.9"
OWNER = "198.51.100.1"


async def login(
    world: World, secret: str, client: str, *, claimed: str = "", account_id: str = "ann"
) -> pb.TokenResponse:
    """Token through the gateway from ``client`` (``claimed``: what the caller writes into
    the request's own ``client_address`` field)."""
    request = pb.TokenRequest(id=account_id, secret=secret, client_address=claimed)
    ctx = call("Token", None, {"x-client-address": client})
    return await world.auth.token(request, ctx)


async def fail(world: World, times: int, client: str, **kwargs: str) -> None:
    for _ in range(times):
        with pytest.raises(Unauthorized):
            await login(world, "wrong", client, **kwargs)


async def test_another_clients_failures_do_not_lock_the_owner_out(world: World) -> None:
    await world.generate("ann")
    await fail(world, 5, ATTACKER)
    with pytest.raises(TooManyRequests):
        await login(world, "wrong", ATTACKER)

    assert (await login(world, SECRET, OWNER)).account.id == "ann"
    with pytest.raises(TooManyRequests):
        await login(world, SECRET, ATTACKER)  # the failing client still waits


async def test_a_failing_client_waits_longer_after_each_failure_then_gets_through(
    world: World, engine: AsyncEngine
) -> None:
    # A counter store on the test clock, so the waits pass without waiting.
    timed = world.variant(counters=SqlCounterStore(engine, now=world.clock))
    await world.generate("ann")
    await fail(timed, 5, ATTACKER)
    for seconds in (1, 2, 4, 8):
        with pytest.raises(TooManyRequests) as caught:
            await login(timed, "wrong", ATTACKER)
        unit = "second" if seconds == 1 else "seconds"
        assert caught.value == TooManyRequests(
            "auth.token", f"Too many failed attempts, try again in {seconds} {unit}"
        )
        timed.clock.advance(seconds=seconds + 0.1)
        await fail(timed, 1, ATTACKER)  # the next guess is checked, and fails
    with pytest.raises(TooManyRequests):
        await login(timed, SECRET, ATTACKER)
    timed.clock.advance(seconds=16.1)
    assert (await login(timed, SECRET, ATTACKER)).account.id == "ann"  # slowed, not locked


async def test_the_request_field_cannot_pose_as_another_client(world: World) -> None:
    await world.generate("ann")
    # Anonymous callers' own client_address is ignored: these count for the attacker...
    await fail(world, 5, ATTACKER, claimed=OWNER)
    with pytest.raises(TooManyRequests):
        await login(world, "wrong", ATTACKER, claimed="192.0.2.77")  # ...a fresh one too
    # ...so the owner's client has no failures.
    assert (await login(world, SECRET, OWNER)).account.id == "ann"


async def test_concurrent_guesses_from_one_client_cannot_slip_past_the_count(
    world: World,
) -> None:
    await world.generate("ann")
    results = await asyncio.gather(
        *(login(world, "wrong", ATTACKER) for _ in range(12)), return_exceptions=True
    )
    checked = [r for r in results if isinstance(r, Unauthorized)]
    refused = [r for r in results if isinstance(r, TooManyRequests)]
    assert len(checked) == 5
    assert len(refused) == 7


# Past the per-account ceiling (guessing spread over many clients)


def record(secret_hash: str) -> AccountRecord:
    return AccountRecord(
        id="ann",
        type="customer",
        name="ann@example.com",
        scopes=("customer",),
        metadata={},
        secret_hash=secret_hash,
        created=datetime(2024, 1, 1, tzinfo=UTC),
    )


async def test_past_the_accounts_ceiling_every_client_backs_off_from_its_first_failure(
    world: World,
) -> None:
    passwords = Passwords(cheap_hasher())
    check = CredentialCheck(
        passwords,
        world.counters,
        account_limit=5,
        address_limit=20,
        window=timedelta(minutes=15),
        account_ceiling=3,
    )
    ann = record(await passwords.hash(SECRET))
    ctx = CallContext("auth", "Token")
    for number in range(3):  # three clients, one failure each: the ceiling
        with pytest.raises(Unauthorized):
            await check.check(ctx, ann, "ann", "wrong", f"192.0.2.{number}")

    with pytest.raises(Unauthorized):
        await check.check(ctx, ann, "ann", "wrong", "192.0.2.50")  # its first try is checked
    with pytest.raises(TooManyRequests):
        await check.check(ctx, ann, "ann", "wrong", "192.0.2.50")  # its second must wait

    await check.check(ctx, ann, "ann", SECRET, OWNER)  # a client with no failures gets in
    await check.check(ctx, ann, "ann", SECRET, "192.0.2.60")
