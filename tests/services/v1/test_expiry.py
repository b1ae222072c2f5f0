"""Keys that expire (GenerateKey's expires_in): they stop resolving, and their mirror entry
lives no longer than they do."""

from __future__ import annotations

from datetime import timedelta

import pytest

from m3o.runtime.errors import BadRequest, NotFound
from m3o.services.v1.keys.format import hash_key
from m3o.services.v1.proto import v1_pb2 as pb
from m3o.services.v1.view import read_key_record
from services.v1.support import ADMIN, GATEWAY, PEPPER, World, call


async def test_a_key_may_be_given_a_lifetime(mirrored_world: World) -> None:
    world = mirrored_world
    response = await world.generate(expires_in=3600)
    row = await world.row(response.api_key_id)
    assert row is not None and row.expires is not None
    assert row.expires == row.created + timedelta(hours=1)
    [listed] = (await world.handler.list_keys(pb.ListRequest(), call("ListKeys"))).api_keys
    assert listed.expires == int(row.expires.timestamp())
    key_hash = hash_key(response.api_key, PEPPER)
    record = await world.mirrored(key_hash)
    assert record is not None
    assert record.expires == int(row.expires.timestamp())
    assert not record.expired(row.created.timestamp())
    assert record.expired(row.expires.timestamp())


async def test_a_key_without_a_lifetime_never_expires(world: World) -> None:
    response = await world.generate()
    row = await world.row(response.api_key_id)
    assert row is not None and row.expires is None
    [listed] = (await world.handler.list_keys(pb.ListRequest(), call("ListKeys"))).api_keys
    assert listed.expires == 0
    assert not row.record.expired(10**12)


@pytest.mark.parametrize(
    ("expires_in", "detail"),
    [
        (-1, "expires_in must not be negative"),
        (3650 * 86400 + 1, "expires_in must be at most 315360000 seconds"),
    ],
)
async def test_a_bad_lifetime_is_a_bad_request(world: World, expires_in: int, detail: str) -> None:
    with pytest.raises(BadRequest) as raised:
        await world.generate(expires_in=expires_in)
    assert raised.value == BadRequest("v1.generatekey", detail)
    assert world.auth.generate.call_count == 0


async def test_an_expired_key_does_not_resolve(mirrored_world: World) -> None:
    world = mirrored_world
    response = await world.generate(expires_in=60)
    key_hash = hash_key(response.api_key, PEPPER)
    world.clock.now += timedelta(minutes=2)
    with pytest.raises(NotFound):
        await world.handler.resolve_key(
            pb.ResolveKeyRequest(hash=key_hash), call("ResolveKey", GATEWAY)
        )


async def test_the_gateway_reads_an_expired_record_as_missing(mirrored_world: World) -> None:
    world = mirrored_world
    response = await world.generate(expires_in=60)
    key_hash = hash_key(response.api_key, PEPPER)
    row = await world.row(response.api_key_id)
    assert row is not None and row.expires is not None
    counters = world.counters.inner
    assert await read_key_record(counters, key_hash, now=row.created.timestamp()) is not None
    assert await read_key_record(counters, key_hash, now=row.expires.timestamp()) is None


async def test_writing_an_expired_keys_record_deletes_its_entry(mirrored_world: World) -> None:
    world = mirrored_world
    response = await world.generate(expires_in=60)
    key_hash = hash_key(response.api_key, PEPPER)
    world.clock.now += timedelta(minutes=2)
    await world.handler.block_key(
        pb.BlockKeyRequest(key_id=response.api_key_id), call("BlockKey", ADMIN)
    )
    assert await world.counters.inner.get_value(f"v1:key:{key_hash}") is None
