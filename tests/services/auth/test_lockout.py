"""Block and Delete never lock the platform out: no account removes itself, and the last
active admin stays; `reset_admin` recovers a platform locked out anyway."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from m3o.runtime.auth import Account
from m3o.runtime.auth.tokens import blocked_key
from m3o.runtime.errors import BadRequest, Conflict, Unauthorized
from m3o.runtime.store import transaction
from m3o.services.auth import tables
from m3o.services.auth.passwords import Passwords
from m3o.services.auth.proto import auth_pb2 as pb
from m3o.services.auth.recovery import reset_admin
from services.auth.support import ADMIN, SERVICE, World, call, cheap_hasher

ROOT = Account(id="root", type="user", scopes=("admin",))


async def make_admin(world: World, account_id: str = "admin") -> None:
    await world.generate(account_id, type="user", scopes=("admin",), name=account_id)


async def block(world: World, account_id: str, caller: Account) -> None:
    await world.auth.block(pb.BlockRequest(id=account_id), call("Block", caller))


async def delete(world: World, account_id: str, caller: Account) -> None:
    await world.auth.delete(pb.DeleteRequest(id=account_id), call("Delete", caller))


async def blocked_ids(world: World) -> list[str]:
    async with transaction(world.sessions) as session:
        return list(await session.scalars(select(tables.blocks.c.account_id)))


async def test_an_admin_cannot_block_or_delete_itself(world: World) -> None:
    await make_admin(world)
    await make_admin(world, "root")
    with pytest.raises(BadRequest, match="You cannot block your own account"):
        await block(world, "admin", ADMIN)
    with pytest.raises(BadRequest, match="You cannot delete your own account"):
        await delete(world, "admin", ADMIN)
    assert await blocked_ids(world) == []
    issued = await world.login("admin")
    assert (await world.account_of(issued.token.access_token)).id == "admin"


async def test_the_last_active_admin_cannot_be_blocked_or_deleted(world: World) -> None:
    await make_admin(world)
    with pytest.raises(Conflict, match="Cannot block the last admin account"):
        await block(world, "admin", SERVICE)
    with pytest.raises(Conflict, match="Cannot delete the last admin account"):
        await delete(world, "admin", SERVICE)
    assert await blocked_ids(world) == []
    await world.login("admin")


async def test_another_admin_can_be_blocked_while_one_stays_active(world: World) -> None:
    await make_admin(world)
    await make_admin(world, "root")
    await block(world, "admin", ROOT)
    assert await blocked_ids(world) == ["admin"]
    # root is now the only active admin.
    with pytest.raises(Conflict):
        await block(world, "root", SERVICE)
    with pytest.raises(Conflict):
        await delete(world, "root", SERVICE)
    # A blocked admin is not active: deleting it leaves root, and blocking it is idempotent.
    await block(world, "admin", ROOT)
    await delete(world, "admin", ROOT)


async def test_customers_are_blocked_and_deleted_as_before(world: World) -> None:
    await make_admin(world)
    await world.generate("ann")
    await block(world, "ann", ADMIN)
    await delete(world, "ann", ADMIN)
    assert await blocked_ids(world) == ["ann"]


async def test_reset_admin_unblocks_sets_the_password_and_ends_sessions(world: World) -> None:
    await make_admin(world)
    old = await world.login("admin")
    # A lockout made by an older version: the block written directly.
    async with transaction(world.sessions) as session:
        await session.execute(
            insert(tables.blocks).values(account_id="admin", created=world.clock())
        )
    await world.counters.incr(blocked_key("admin"))
    with pytest.raises(Unauthorized):
        await world.login("admin")

    done = await reset_admin(
        world.sessions,
        world.counters,
        account_id="admin",
        password="a new admin password",
        passwords=Passwords(cheap_hasher()),
        clock=world.clock,
    )
    assert (done.created, done.was_blocked) == (False, True)
    assert await blocked_ids(world) == []
    with pytest.raises(Unauthorized):
        await world.account_of(old.token.access_token)  # sessions ended
    issued = await world.login("admin", "a new admin password")
    account = await world.account_of(issued.token.access_token)
    assert (account.id, account.type, account.scopes) == ("admin", "user", ("admin",))


async def test_reset_admin_recreates_a_deleted_admin(world: World) -> None:
    await make_admin(world)
    await make_admin(world, "root")
    await delete(world, "admin", ROOT)

    done = await reset_admin(
        world.sessions,
        world.counters,
        account_id="admin",
        password="back again",
        passwords=Passwords(cheap_hasher()),
        clock=world.clock,
    )
    assert done.created
    issued = await world.login("admin", "back again")
    assert (await world.account_of(issued.token.access_token)).scopes == ("admin",)
