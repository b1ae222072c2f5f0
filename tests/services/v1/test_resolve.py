"""ResolveKey and what the gateway reads: the key-record mirror on SQL and Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from m3o.runtime.auth import Account
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import BadRequest, Forbidden, NotFound, Unauthorized
from m3o.services import v1
from m3o.services.v1.keys.format import hash_key
from m3o.services.v1.proto import v1_pb2 as pb
from m3o.services.v1.records import KeyRow
from m3o.services.v1.view import (
    MIRROR_TTL,
    RATE_WINDOW,
    KeyRecord,
    KeyStatus,
    mirror_name,
    rate_key,
    read_key_record,
)
from services.v1.support import ADMIN, ANN, GATEWAY, PEPPER, World, call

RECORD = KeyRecord(
    id="k1",
    hash="ab" * 32,
    scopes=("helloworld", "*"),
    owner="project-1",
    billing_account="ann",
    status=KeyStatus.BLOCKED,
    status_message="Unpaid",
)


async def resolve(world: World, key_hash: str, account: Account | None = GATEWAY) -> KeyRecord:
    response = await world.handler.resolve_key(
        pb.ResolveKeyRequest(hash=key_hash), call("ResolveKey", account)
    )
    return KeyRecord.from_proto(response.key)


async def test_resolve_reloads_a_lost_mirror_entry(mirrored_world: World) -> None:
    world = mirrored_world
    response = await world.generate(scopes=["helloworld"])
    key_hash = hash_key(response.api_key, PEPPER)
    await world.counters.inner.delete(mirror_name(key_hash))
    record = await resolve(world, key_hash)
    assert record.id == response.api_key_id
    assert record.hash == key_hash
    assert record.scopes == ("helloworld",)
    assert record.owner == ANN.id
    assert record.billing_account == ANN.id
    assert record.status is KeyStatus.ACTIVE
    assert await world.mirrored(key_hash) == record


async def test_resolve_returns_the_blocked_state(mirrored_world: World) -> None:
    world = mirrored_world
    response = await world.generate()
    await world.handler.block_key(
        pb.BlockKeyRequest(key_id=response.api_key_id, message="Unpaid"), call("BlockKey", ADMIN)
    )
    key_hash = hash_key(response.api_key, PEPPER)
    await world.counters.inner.delete(mirror_name(key_hash))
    record = await resolve(world, key_hash)
    assert (record.status, record.status_message) == (KeyStatus.BLOCKED, "Unpaid")
    assert await world.mirrored(key_hash) == record


async def test_resolve_corrects_an_entry_a_racing_write_left_stale(world: World) -> None:
    response = await world.generate()
    key_hash = hash_key(response.api_key, PEPPER)
    row = await world.row(response.api_key_id)
    assert row is not None
    # A stale copy (active) is in the mirror while the row says blocked.
    await world.handler.block_key(
        pb.BlockKeyRequest(key_id=response.api_key_id), call("BlockKey", ADMIN)
    )
    await world.counters.inner.set_value(mirror_name(key_hash), row.record.to_json())
    record = await resolve(world, key_hash)
    assert record.status is KeyStatus.BLOCKED
    assert await world.mirrored(key_hash) == record


def change_after_first_read(world: World, change: Callable[[], Awaitable[object]]) -> None:
    """Make a change commit (and write the mirror) right after ResolveKey's first read."""
    original = world.handler._by_hash
    reads = 0

    async def racing(key_hash: str) -> KeyRow | None:
        nonlocal reads
        reads += 1
        found = await original(key_hash)
        if reads == 1:
            await change()
        return found

    world.handler._by_hash = racing  # type: ignore[method-assign]


async def test_a_key_revoked_during_resolve_is_not_found_and_not_mirrored(
    mirrored_world: World,
) -> None:
    world = mirrored_world
    response = await world.generate()
    key_hash = hash_key(response.api_key, PEPPER)
    change_after_first_read(
        world,
        lambda: world.handler.revoke_key(
            pb.RevokeRequest(id=response.api_key_id), call("RevokeKey", ANN)
        ),
    )
    with pytest.raises(NotFound):
        await resolve(world, key_hash)
    assert await world.mirrored(key_hash) is None


async def test_a_key_blocked_during_resolve_is_mirrored_blocked(mirrored_world: World) -> None:
    world = mirrored_world
    response = await world.generate()
    key_hash = hash_key(response.api_key, PEPPER)
    change_after_first_read(
        world,
        lambda: world.handler.block_key(
            pb.BlockKeyRequest(key_id=response.api_key_id), call("BlockKey", ADMIN)
        ),
    )
    record = await resolve(world, key_hash)
    assert record.status is KeyStatus.BLOCKED
    mirrored = await world.mirrored(key_hash)
    assert mirrored is not None and mirrored.status is KeyStatus.BLOCKED


async def test_resolve_of_an_unknown_hash_is_not_found_and_writes_nothing(
    mirrored_world: World,
) -> None:
    world = mirrored_world
    key_hash = "0" * 64
    with pytest.raises(NotFound) as raised:
        await resolve(world, key_hash)
    assert raised.value == NotFound("v1.resolvekey", "Not found")
    assert await world.counters.inner.get_value(mirror_name(key_hash)) is None


async def test_resolve_of_a_revoked_key_is_not_found(world: World) -> None:
    response = await world.generate()
    await world.handler.revoke_key(pb.RevokeRequest(id=response.api_key_id), call("RevokeKey", ANN))
    with pytest.raises(NotFound):
        await resolve(world, hash_key(response.api_key, PEPPER))


@pytest.mark.parametrize(
    ("key_hash", "detail"),
    [("", "Missing hash field"), ("xyz", "Invalid hash field"), ("AB" * 32, "Invalid hash field")],
)
async def test_resolve_bad_requests(world: World, key_hash: str, detail: str) -> None:
    with pytest.raises(BadRequest) as raised:
        await resolve(world, key_hash)
    assert raised.value == BadRequest("v1.resolvekey", detail)


@pytest.mark.parametrize("account", [ANN, ADMIN])
async def test_resolve_is_for_services_only(world: World, account: Account) -> None:
    with pytest.raises(Forbidden):
        await resolve(world, "0" * 64, account)
    with pytest.raises(Unauthorized):
        await resolve(world, "0" * 64, None)


async def test_resolve_answers_even_when_the_mirror_cannot_be_written(world: World) -> None:
    response = await world.generate()
    world.counters.fail_set = True
    record = await resolve(world, hash_key(response.api_key, PEPPER))
    assert record.id == response.api_key_id


# -- records: what the gateway reads -------------------------------------------------------------


async def test_the_gateway_reads_what_the_service_mirrors(counters: CounterStore) -> None:
    await counters.set_value(mirror_name(RECORD.hash), RECORD.to_json(), ttl=MIRROR_TTL)
    assert await read_key_record(counters, RECORD.hash) == RECORD
    assert await read_key_record(counters, "cd" * 32) is None


async def test_an_unreadable_entry_reads_as_missing(counters: CounterStore) -> None:
    await counters.set_value(mirror_name(RECORD.hash), "{not json")
    assert await read_key_record(counters, RECORD.hash) is None
    await counters.set_value(mirror_name(RECORD.hash), '{"id": "k1"}')
    assert await read_key_record(counters, RECORD.hash) is None


async def test_an_entry_for_another_hash_reads_as_missing(counters: CounterStore) -> None:
    await counters.set_value(mirror_name("cd" * 32), RECORD.to_json())
    assert await read_key_record(counters, "cd" * 32) is None


def test_key_names() -> None:
    assert mirror_name("ab" * 32) == "v1:key:" + "ab" * 32
    assert rate_key("project-1") == "v1:rate:project-1"
    assert RATE_WINDOW.total_seconds() == 1


def test_the_package_exports_what_the_gateway_uses() -> None:
    assert v1.rate_key is rate_key
    assert v1.read_key_record is read_key_record
    assert v1.mirror_name is mirror_name
    assert v1.KeyRecord is KeyRecord
    assert v1.hash_key is hash_key
    assert sorted(v1.__all__) == sorted(
        [
            "RATE_WINDOW",
            "KeyRecord",
            "KeyStatus",
            "hash_key",
            "is_legacy_form",
            "is_well_formed",
            "legacy_hash",
            "mirror_name",
            "rate_key",
            "read_key_record",
        ]
    )


@pytest.mark.parametrize(
    ("scopes", "api", "permitted"),
    [
        (("*",), "helloworld", True),
        (("helloworld",), "helloworld", True),
        (("helloworld",), "HelloWorld", True),
        (("HelloWorld",), "helloworld", True),
        (("cache",), "helloworld", False),
        ((), "helloworld", False),
    ],
)
def test_a_scope_permits_its_api_or_every_api(
    scopes: tuple[str, ...], api: str, permitted: bool
) -> None:
    record = KeyRecord(id="k", hash="h", scopes=scopes, owner="p", billing_account="c")
    assert record.permits(api) is permitted


def test_a_record_survives_json_and_proto() -> None:
    assert KeyRecord.from_json(RECORD.to_json()) == RECORD
    assert KeyRecord.from_proto(RECORD.to_proto()) == RECORD
    assert RECORD.blocked
    with pytest.raises(ValueError, match="not a key record"):
        KeyRecord.from_json('{"id": 1, "scopes": "x"}')
