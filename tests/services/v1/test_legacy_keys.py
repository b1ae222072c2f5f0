"""ImportKeys and RollKey: keys moved from M3O keep working, are listed as legacy, and can be
rolled to a key in our format and revoked."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from typing import Any

import pytest

from m3o.runtime.auth import Account
from m3o.runtime.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    Unavailable,
)
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.v1.keys.format import hash_key, is_well_formed, legacy_hash
from m3o.services.v1.proto import v1_pb2 as pb
from m3o.services.v1.view import KeyStatus
from services.v1.support import ADMIN, ANN, BOB, GATEWAY, PEPPER, START, World, call


def m3o_key() -> str:
    return base64.b64encode(str(uuid.uuid4()).encode()).decode()


def legacy(key: str, line: int = 0, **fields: Any) -> pb.LegacyKey:
    values: dict[str, Any] = {
        "line": line,
        "id": str(uuid.uuid4()),
        "hash": legacy_hash(key),
        "project": ANN.id,
        "owner": ANN.id,
        "scopes": ["helloworld"],
        "description": "from m3o",
        "created": 1_600_000_000,
    }
    values.update(fields)
    return pb.LegacyKey(**values)


async def import_keys(
    world: World, *keys: pb.LegacyKey, check_only: bool = False, account: Account = ADMIN
) -> pb.ImportKeysResponse:
    request = pb.ImportKeysRequest(keys=list(keys), check_only=check_only)
    return await world.handler.import_keys(request, call("ImportKeys", account))


async def roll(world: World, key_id: str, account: Account | None = ANN) -> pb.RollKeyResponse:
    return await world.handler.roll_key(pb.RollKeyRequest(id=key_id), call("RollKey", account))


async def resolve(world: World, key_hash: str) -> pb.KeyRecord:
    request = pb.ResolveKeyRequest(hash=key_hash)
    return (await world.handler.resolve_key(request, call("ResolveKey", GATEWAY))).key


async def listed(world: World, account: Account = ANN) -> list[pb.APIKey]:
    response = await world.handler.list_keys(pb.ListRequest(), call("ListKeys", account))
    return list(response.api_keys)


async def test_imported_keys_are_stored_with_m3os_hash_and_listed_as_legacy(world: World) -> None:
    key = m3o_key()
    row = legacy(key, status="blocked", status_message="unpaid", last_seen=1_650_000_000)
    response = await import_keys(world, row, legacy(m3o_key(), owner=""))
    assert (response.imported, response.already_present) == (2, 0)
    stored = await world.row(row.id)
    assert stored is not None
    assert stored.legacy
    assert stored.hash == legacy_hash(key)
    assert (stored.owner, stored.billing_account, stored.created_by) == (ANN.id, ANN.id, ADMIN.id)
    assert stored.status is KeyStatus.BLOCKED
    assert stored.status_message == "unpaid"
    assert int(stored.created.timestamp()) == 1_600_000_000
    assert stored.last_seen is not None and int(stored.last_seen.timestamp()) == 1_650_000_000
    # one auth account per key, as for a generated key; no event: the keys are not new
    accounts = {request.id: request for request in world.auth.generate.calls}
    assert set(accounts) == {key.id for key in await world.all_rows()}
    assert accounts[row.id].type == "apikey"
    assert accounts[row.id].metadata["apikey_owner"] == ANN.id
    assert world.events() == []
    shown = {key.id: key for key in await listed(world)}
    assert shown[row.id].legacy
    assert shown[row.id].status == "blocked"
    assert shown[row.id].created_time == 1_600_000_000
    # the gateway's lookup finds it by the plain SHA-256
    record = await resolve(world, legacy_hash(key))
    assert (record.id, record.legacy, record.owner) == (row.id, True, ANN.id)


async def test_defaults_of_an_imported_key(world: World) -> None:
    row = legacy(m3o_key(), owner="", description="", created=0, scopes=["HelloWorld", " "])
    await import_keys(world, row)
    stored = await world.row(row.id)
    assert stored is not None
    assert stored.billing_account == ANN.id  # M3O's default project has the customer's id
    assert stored.description == "Imported from M3O"
    assert START <= stored.created < START + timedelta(minutes=1)  # the time of the import
    assert stored.scopes == ("helloworld",)
    assert stored.status is KeyStatus.ACTIVE


async def test_importing_the_same_keys_again_adds_nothing(world: World) -> None:
    rows = [legacy(m3o_key()) for _ in range(3)]
    await import_keys(world, *rows[:2])
    again = await import_keys(world, *rows)
    assert (again.imported, again.already_present) == (1, 2)
    assert len(await world.all_rows()) == 3


def account_exists(world: World, account_type: str, project: str) -> None:
    """auth answers Generate with Conflict: the account is there, of this type and project."""
    world.auth.generate.raises(Conflict("auth.generate", "Account already exists"))
    world.auth.grant.returns(auth_pb.TokenResponse(token=auth_pb.Token(access_token="probe")))
    account = auth_pb.Account(type=account_type, metadata={"apikey_owner": project})
    world.auth.inspect.returns(auth_pb.InspectResponse(account=account))


async def test_key_accounts_an_earlier_attempt_made_are_used(world: World) -> None:
    account_exists(world, "apikey", ANN.id)
    response = await import_keys(world, legacy(m3o_key()), legacy(m3o_key()))
    assert response.imported == 2
    assert len(await world.all_rows()) == 2
    assert [request.token for request in world.auth.inspect.calls] == ["probe", "probe"]


@pytest.mark.parametrize(("account_type", "project"), [("customer", ANN.id), ("apikey", "other")])
async def test_an_id_another_account_has_is_refused(
    world: World, account_type: str, project: str
) -> None:
    account_exists(world, account_type, project)
    row = legacy(m3o_key())
    with pytest.raises(BadRequest) as raised:
        await import_keys(world, row)
    assert raised.value.detail == f"key {row.id}: the id of another account, not a key's"
    assert await world.all_rows() == []


async def test_bad_lines_are_named_and_nothing_is_imported(world: World) -> None:
    good = legacy(m3o_key(), line=1)
    with pytest.raises(BadRequest) as raised:
        await import_keys(
            world,
            good,
            legacy(m3o_key(), line=2, hash="not-a-hash"),
            legacy(m3o_key(), line=3, project=""),
            legacy(m3o_key(), line=4, scopes=[]),
            legacy(m3o_key(), line=5, status="gone"),
            legacy(m3o_key(), line=6, id=good.id),
            legacy(m3o_key(), line=7, id="admin"),
            legacy(m3o_key(), line=8, created=-1),
        )
    detail = raised.value.detail
    assert detail == (
        "line 2: hash must be the key's hex SHA-256 (64 hexadecimal digits); "
        "line 3: missing project; line 4: missing scopes; "
        "line 5: status must be active or blocked; line 6: the same id as line 1; "
        "line 7: id must be a UUID, as M3O's key ids were; "
        "line 8: created and last_seen are unix seconds, not negative"
    )
    assert await world.all_rows() == []
    assert world.auth.generate.call_count == 0


async def test_a_hash_another_key_has_is_a_bad_line(world: World) -> None:
    key = m3o_key()
    await import_keys(world, legacy(key))
    with pytest.raises(BadRequest) as raised:
        await import_keys(world, legacy(key, line=9), legacy(m3o_key(), line=10))
    [existing] = await world.all_rows()
    assert raised.value.detail == f"line 9: key {existing.id} already has this hash"
    with pytest.raises(BadRequest) as twice:
        await import_keys(world, legacy(key := m3o_key(), line=1), legacy(key, line=2))
    assert twice.value.detail == "line 2: the same hash as line 1"
    assert len(await world.all_rows()) == 1


async def test_many_bad_lines_are_summarised(world: World) -> None:
    rows = [legacy(m3o_key(), line=n, project="") for n in range(1, 31)]
    with pytest.raises(BadRequest) as raised:
        await import_keys(world, *rows)
    assert raised.value.detail.endswith("line 20: missing project; and 10 more bad lines")


async def test_check_only_reports_without_importing(world: World) -> None:
    present = legacy(m3o_key())
    await import_keys(world, present)
    world.forget_calls()
    response = await import_keys(world, present, legacy(m3o_key()), check_only=True)
    assert (response.imported, response.already_present) == (1, 1)
    assert len(await world.all_rows()) == 1
    assert world.auth.generate.call_count == 0


@pytest.mark.parametrize("account", [ANN, BOB])
async def test_only_admins_and_services_import(world: World, account: Account) -> None:
    with pytest.raises(Forbidden):
        await import_keys(world, legacy(m3o_key()), account=account)


async def test_anonymous_callers_neither_import_nor_roll_and_a_service_imports(
    world: World,
) -> None:
    generated = await world.generate()
    with pytest.raises(Unauthorized):
        await import_keys(world, legacy(m3o_key()), account=None)
    with pytest.raises(Unauthorized):
        await roll(world, generated.api_key_id, None)
    assert await world.row(generated.api_key_id) is not None
    assert (await import_keys(world, legacy(m3o_key()), account=GATEWAY)).imported == 1


async def test_an_empty_or_oversized_import_is_a_bad_request(world: World) -> None:
    with pytest.raises(BadRequest) as empty:
        await import_keys(world)
    assert empty.value.detail == "Missing keys field"
    with pytest.raises(BadRequest) as big:
        await import_keys(world, *[legacy(m3o_key()) for _ in range(1001)], check_only=True)
    assert big.value.detail == "At most 1000 keys per request"


async def test_an_import_with_auth_failing_writes_no_row(world: World) -> None:
    world.auth.generate.raises(Unavailable("auth", "down"))
    with pytest.raises(Unavailable):
        await import_keys(world, legacy(m3o_key()))
    assert await world.all_rows() == []


async def test_rolling_an_imported_key_gives_it_a_key_in_our_format(mirrored_world: World) -> None:
    world = mirrored_world
    key = m3o_key()
    row = legacy(key)
    await import_keys(world, row)
    await resolve(world, legacy_hash(key))  # now in the gateway's mirror
    rolled = await roll(world, row.id)
    assert rolled.api_key_id == row.id
    assert is_well_formed(rolled.api_key)
    stored = await world.row(row.id)
    assert stored is not None
    assert not stored.legacy
    assert stored.hash == hash_key(rolled.api_key, PEPPER)
    # the old key is gone everywhere; the new one is found
    assert await world.mirrored(legacy_hash(key)) is None
    with pytest.raises(NotFound):
        await resolve(world, legacy_hash(key))
    record = await world.mirrored(hash_key(rolled.api_key, PEPPER))
    assert record is not None and record.id == row.id and not record.legacy
    [shown] = await listed(world)
    assert not shown.legacy
    assert shown.description == "from m3o"


async def test_rolling_a_key_of_ours_replaces_its_secret(world: World) -> None:
    generated = await world.generate()
    rolled = await roll(world, generated.api_key_id)
    assert rolled.api_key != generated.api_key
    with pytest.raises(NotFound):
        await resolve(world, hash_key(generated.api_key, PEPPER))
    assert (await resolve(world, hash_key(rolled.api_key, PEPPER))).id == generated.api_key_id


async def test_rolling_someone_elses_or_an_unknown_key_is_not_found(world: World) -> None:
    bobs = await world.generate(account=BOB)
    for key_id in (bobs.api_key_id, "unknown"):
        with pytest.raises(NotFound) as raised:
            await roll(world, key_id)
        assert raised.value == NotFound("v1.rollkey", "Not found")
    with pytest.raises(BadRequest) as empty:
        await roll(world, " ")
    assert empty.value.detail == "Missing ID field"
    assert (await roll(world, bobs.api_key_id, ADMIN)).api_key_id == bobs.api_key_id


async def test_roll_with_the_counter_store_down_changes_nothing(mirrored_world: World) -> None:
    world = mirrored_world
    key = m3o_key()
    row = legacy(key)
    await import_keys(world, row)
    world.counters.fail_delete = True
    with pytest.raises(Unavailable):
        await roll(world, row.id)
    stored = await world.row(row.id)
    assert stored is not None and stored.legacy and stored.hash == legacy_hash(key)


async def test_importing_again_never_brings_a_revoked_key_back(world: World) -> None:
    revoked, kept = legacy(m3o_key()), legacy(m3o_key())
    await import_keys(world, revoked, kept)
    await world.handler.revoke_key(pb.RevokeRequest(id=revoked.id), call("RevokeKey", ANN))
    checked = await import_keys(world, revoked, kept, check_only=True)
    again = await import_keys(world, revoked, kept)
    for response in (checked, again):
        assert (response.imported, response.already_present, response.revoked) == (0, 1, 1)
    assert [row.id for row in await world.all_rows()] == [kept.id]
    with pytest.raises(NotFound):
        await resolve(world, revoked.hash)


async def test_an_imported_key_can_be_revoked(world: World) -> None:
    key = m3o_key()
    row = legacy(key)
    await import_keys(world, row)
    await world.handler.revoke_key(pb.RevokeRequest(id=row.id), call("RevokeKey", ANN))
    assert await world.row(row.id) is None
    with pytest.raises(NotFound):
        await resolve(world, legacy_hash(key))
    assert [request.id for request in world.auth.delete.calls] == [row.id]
