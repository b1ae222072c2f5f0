"""Block and Unblock: a blocked account's tokens stop working at once, on every process."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from m3o.runtime.errors import BadRequest, Forbidden, Unauthorized
from m3o.services.auth import tables
from m3o.services.auth.proto import auth_pb2 as pb
from services.auth.support import SERVICE, World, call, customer


async def block(world: World, account_id: str) -> None:
    await world.auth.block(pb.BlockRequest(id=account_id), call("Block"))


async def unblock(world: World, account_id: str) -> None:
    await world.auth.unblock(pb.UnblockRequest(id=account_id), call("Unblock"))


async def test_block_refuses_the_accounts_tokens_at_once_everywhere(world: World) -> None:
    await world.generate("ann")
    await world.generate("bob")
    anns = await world.login("ann")
    bobs = await world.login("bob")
    elsewhere = world.variant()
    await elsewhere.account_of(anns.token.access_token)  # cached keys, warm
    await block(world, "ann")
    for process in (world, elsewhere):
        with pytest.raises(Unauthorized):
            await process.account_of(anns.token.access_token)
        assert (await process.account_of(bobs.token.access_token)).id == "bob"


async def test_unblock_lets_the_tokens_work_again(world: World) -> None:
    await world.generate("ann")
    issued = await world.login("ann")
    await block(world, "ann")
    await unblock(world, "ann")
    assert (await world.account_of(issued.token.access_token)).id == "ann"
    assert (await world.login("ann")).account.id == "ann"


async def test_blocking_is_durable_and_idempotent(world: World) -> None:
    await block(world, "ann")
    await block(world, "ann")
    async with world.sessions() as session:
        rows = (await session.execute(select(tables.blocks.c.account_id))).all()
    assert [row.account_id for row in rows] == ["ann"]
    await unblock(world, "ann")
    await unblock(world, "ann")  # not blocked: nothing to do


async def test_an_id_blocked_before_it_exists_stays_blocked(world: World) -> None:
    await block(world, "ann")
    await world.generate("ann")
    with pytest.raises(Unauthorized):
        await world.login("ann")


async def test_blocklist_is_rebuilt_after_the_counter_store_loses_it(world: World) -> None:
    await world.generate("ann")
    issued = await world.login("ann")
    await block(world, "ann")
    await world.counters.delete("auth:blocked:ann", "auth:mirror:filled")
    await world.auth.restore_counters_if_lost()
    with pytest.raises(Unauthorized):
        await world.account_of(issued.token.access_token)


async def test_restore_at_start_copies_every_block(world: World) -> None:
    await world.generate("ann")
    issued = await world.login("ann")
    await block(world, "ann")
    await world.counters.delete("auth:blocked:ann")
    await world.variant().auth.restore_counters()  # a restart
    with pytest.raises(Unauthorized):
        await world.account_of(issued.token.access_token)


async def test_block_and_unblock_need_an_id_and_an_admin_or_service(world: World) -> None:
    with pytest.raises(BadRequest):
        await world.auth.block(pb.BlockRequest(), call("Block"))
    with pytest.raises(BadRequest):
        await world.auth.unblock(pb.UnblockRequest(), call("Unblock"))
    with pytest.raises(Forbidden):
        await world.auth.block(pb.BlockRequest(id="bob"), call("Block", customer()))
    with pytest.raises(Unauthorized):
        await world.auth.unblock(pb.UnblockRequest(id="bob"), call("Unblock", None))
    await world.auth.block(pb.BlockRequest(id="bob"), call("Block", SERVICE))
    await world.auth.unblock(pb.UnblockRequest(id="bob"), call("Unblock", SERVICE))
