"""GenerateKey: validation, scopes, owner, the auth account, the stored hash, the mirror, the
event, and nothing left behind when a step fails."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import StatementError

from m3o.events.customers import EventType
from m3o.runtime.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Internal,
    NotFound,
    Unauthorized,
    Unavailable,
)
from m3o.services.v1.keys.format import hash_key, is_well_formed
from m3o.services.v1.owners import Project
from m3o.services.v1.proto import v1_pb2 as pb
from m3o.services.v1.tables import keys
from m3o.services.v1.view import KeyStatus
from services.v1.support import ADMIN, ANN, BOB, GATEWAY, PEPPER, World, call


async def key_count(world: World) -> int:
    async with world.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(keys)) or 0)


async def test_generate_returns_a_well_formed_key_once_and_stores_only_its_hash(
    world: World,
) -> None:
    response = await world.generate(scopes=["helloworld"], description="my key")
    assert is_well_formed(response.api_key)
    row = await world.row(response.api_key_id)
    assert row is not None
    assert row.hash == hash_key(response.api_key, PEPPER)
    async with world.sessions() as session:
        stored = (await session.execute(select(keys))).mappings().one()
    assert response.api_key not in str(dict(stored))
    assert row.scopes == ("helloworld",)
    assert row.description == "my key"
    assert row.status is KeyStatus.ACTIVE
    assert row.status_message == ""
    assert row.last_seen is None
    assert row.created_by == ANN.id


async def test_the_key_belongs_to_the_callers_default_project(world: World) -> None:
    world.projects.by_account[ANN.id] = [
        Project(id="other", billing_account="someone"),
        Project(id=ANN.id, billing_account=ANN.id),
    ]
    response = await world.generate()
    row = await world.row(response.api_key_id)
    assert row is not None
    assert (row.owner, row.billing_account) == (ANN.id, ANN.id)
    [asked] = world.projects.asked
    assert asked.account == ANN
    assert asked.metadata["authorization"] == f"Bearer token-of-{ANN.id}"


async def test_without_a_default_project_the_key_belongs_to_the_first(world: World) -> None:
    world.projects.by_account[ANN.id] = [
        Project(id="team", billing_account="boss"),
        Project(id="side", billing_account=ANN.id),
    ]
    row = await world.row((await world.generate()).api_key_id)
    assert row is not None
    assert (row.owner, row.billing_account) == ("team", "boss")


async def test_a_named_project_of_the_caller_owns_the_key(world: World) -> None:
    world.projects.by_account[ANN.id] = [
        Project(id=ANN.id, billing_account=ANN.id),
        Project(id="team", billing_account="boss"),
    ]
    row = await world.row((await world.generate(project_id="team")).api_key_id)
    assert row is not None
    assert (row.owner, row.billing_account) == ("team", "boss")


async def test_a_project_not_of_the_caller_is_not_found(world: World) -> None:
    with pytest.raises(NotFound) as raised:
        await world.generate(project_id="bobs-project")
    assert raised.value == NotFound("v1.generatekey", "Project not found")
    assert world.auth.generate.call_count == 0
    assert await key_count(world) == 0


async def test_the_auth_account_is_an_apikey_account_named_by_the_key_id(world: World) -> None:
    response = await world.generate(scopes=["helloworld", "cache"])
    [request] = world.auth.generate.calls
    assert request.id == response.api_key_id
    assert request.type == "apikey"
    assert list(request.scopes) == ["helloworld", "cache"]
    assert dict(request.metadata) == {"apikey_owner": ANN.id, "billing_account": ANN.id}
    assert request.secret == ""  # a random one: the key is not its secret


async def test_generate_publishes_generate_key_in_the_same_transaction(world: World) -> None:
    response = await world.generate(scopes=["helloworld"])
    [event] = world.events()
    assert event.type == EventType.EventTypeGenerateKey
    assert event.customer.id == ANN.id
    assert event.customer.email == ANN.name
    assert event.caller_id == ANN.id
    assert event.project_id == ANN.id
    assert event.generate_key.id == response.api_key_id
    assert list(event.generate_key.scopes) == ["helloworld"]
    world.assert_all_in_transaction()


async def test_generate_mirrors_the_record_into_the_counter_store(mirrored_world: World) -> None:
    world = mirrored_world
    response = await world.generate(scopes=["helloworld"])
    record = await world.mirrored(hash_key(response.api_key, PEPPER))
    assert record is not None
    assert record.id == response.api_key_id
    assert record.scopes == ("helloworld",)
    assert record.owner == ANN.id
    assert record.billing_account == ANN.id
    assert record.status is KeyStatus.ACTIVE
    assert response.api_key not in record.to_json()


async def test_scopes_are_trimmed_lower_cased_and_kept_once(world: World) -> None:
    response = await world.generate(scopes=[" HelloWorld ", "helloworld", "", "Cache"])
    row = await world.row(response.api_key_id)
    assert row is not None
    assert row.scopes == ("helloworld", "cache")


async def test_the_star_scope_needs_no_catalog(world: World) -> None:
    response = await world.generate(scopes=["*"])
    row = await world.row(response.api_key_id)
    assert row is not None
    assert row.scopes == ("*",)
    assert world.publicapi.list.call_count == 0


@pytest.mark.parametrize(
    ("scopes", "description", "detail"),
    [
        ([], "my key", "Missing scopes field"),
        (["", "  "], "my key", "Missing scopes field"),
        (["helloworld"], "", "Missing description field"),
        (["helloworld"], "   ", "Missing description field"),
        ([], "", "Missing scopes field"),
        (["helloworld"], "x" * 501, "description is longer than 500 characters"),
        ([f"api{i}" for i in range(101)], "my key", "A key may have at most 100 scopes"),
    ],
)
async def test_bad_requests(world: World, scopes: list[str], description: str, detail: str) -> None:
    with pytest.raises(BadRequest) as raised:
        await world.generate(scopes=scopes, description=description)
    assert raised.value == BadRequest("v1.generatekey", detail)
    assert world.auth.generate.call_count == 0
    assert await key_count(world) == 0


@pytest.mark.parametrize("scopes", [["nosuchapi"], ["helloworld", "nosuchapi"], ["*", "x"]])
async def test_scopes_other_than_published_apis_or_star_are_forbidden(
    world: World, scopes: list[str]
) -> None:
    with pytest.raises(Forbidden) as raised:
        await world.generate(scopes=scopes)
    assert raised.value == Forbidden(
        "v1.generatekey", "Not allowed to generate a key with requested scopes"
    )
    assert world.auth.generate.call_count == 0
    assert world.events() == []


async def test_anonymous_callers_are_unauthorized_and_services_forbidden(world: World) -> None:
    request = pb.GenerateKeyRequest(scopes=["helloworld"], description="k")
    with pytest.raises(Unauthorized):
        await world.handler.generate_key(request, call("GenerateKey", None))
    with pytest.raises(Forbidden):
        await world.handler.generate_key(request, call("GenerateKey", GATEWAY))


async def test_an_admin_generates_a_key_for_the_project_they_name(world: World) -> None:
    world.projects.known["team"] = Project(id="team", billing_account="boss")
    response = await world.generate(account=ADMIN, project_id=" team ")
    row = await world.row(response.api_key_id)
    assert row is not None
    assert (row.owner, row.billing_account, row.created_by) == ("team", "boss", ADMIN.id)
    assert world.projects.read == ["team"]
    assert world.projects.asked == []  # an admin's own projects are never asked for
    [event] = world.events()
    assert event.customer.id == "boss"  # the key's billing account
    assert event.customer.email == ""
    assert event.caller_id == ADMIN.id


async def test_an_admin_naming_no_project_is_a_bad_request_and_creates_nothing(
    world: World,
) -> None:
    with pytest.raises(BadRequest) as raised:
        await world.generate(account=ADMIN)
    assert raised.value == BadRequest(
        "v1.generatekey", "Missing project_id field: an admin has no project of their own"
    )
    assert world.projects.asked == world.projects.read == []
    assert world.auth.generate.call_count == 0
    assert await key_count(world) == 0


async def test_an_admin_naming_an_unknown_project_is_not_found(world: World) -> None:
    with pytest.raises(NotFound) as raised:
        await world.generate(account=ADMIN, project_id="nope")
    assert raised.value == NotFound("v1.generatekey", "Project not found")
    assert world.auth.generate.call_count == 0
    assert await key_count(world) == 0


async def test_projects_failing_to_read_an_admins_project_is_unavailable(world: World) -> None:
    world.projects.error = Unavailable("projects", "down")
    with pytest.raises(Unavailable) as raised:
        await world.generate(account=ADMIN, project_id="team")
    assert raised.value == Unavailable("v1.generatekey", "Service unavailable")
    assert await key_count(world) == 0


async def test_keys_of_two_customers_are_separate(world: World) -> None:
    await world.generate(account=ANN)
    await world.generate(account=BOB)
    owners = sorted(row.owner for row in await world.all_rows())
    assert owners == [ANN.id, BOB.id]


# -- failures: nothing is left behind -----------------------------------------------------------


async def test_publicapi_failing_is_unavailable_and_creates_nothing(world: World) -> None:
    world.publicapi.list.raises(Unavailable("publicapi", "down"))
    with pytest.raises(Unavailable) as raised:
        await world.generate()
    assert raised.value == Unavailable("v1.generatekey", "Service unavailable")
    assert world.auth.generate.call_count == 0


async def test_projects_failing_is_unavailable_and_creates_nothing(world: World) -> None:
    world.projects.error = Unavailable("projects", "down")
    with pytest.raises(Unavailable):
        await world.generate()
    assert world.auth.generate.call_count == 0
    assert await key_count(world) == 0


async def test_auth_failing_is_internal_and_creates_nothing(world: World) -> None:
    world.auth.generate.raises(Conflict("auth.generate", "Account already exists"))
    with pytest.raises(Internal):
        await world.generate()
    assert await key_count(world) == 0
    assert world.events() == []
    assert world.auth.delete.call_count == 0


async def test_mirror_failing_deletes_the_auth_account(mirrored_world: World) -> None:
    world = mirrored_world
    world.counters.fail_set = True
    with pytest.raises(Unavailable):
        await world.generate()
    [created] = world.auth.generate.calls
    assert [r.id for r in world.auth.delete.calls] == [created.id]
    assert await key_count(world) == 0
    assert world.events() == []


async def test_publishing_failing_rolls_back_the_row_and_undoes_the_rest(
    mirrored_world: World,
) -> None:
    world = mirrored_world
    world.publisher.raises(Unavailable("events", "down"))
    with pytest.raises(Unavailable):
        await world.generate()
    [created] = world.auth.generate.calls
    assert [r.id for r in world.auth.delete.calls] == [created.id]
    assert await key_count(world) == 0
    [mirror_name] = world.counters.written
    assert mirror_name.startswith("v1:key:")
    assert await world.counters.inner.get_value(mirror_name) is None


async def test_a_database_failure_undoes_the_auth_account_and_the_mirror(
    mirrored_world: World,
) -> None:
    world = mirrored_world
    world.handler._clock = lambda: datetime(2024, 1, 1)  # noqa: DTZ001 - refused by the column
    with pytest.raises(StatementError):
        await world.generate()
    [created] = world.auth.generate.calls
    assert [r.id for r in world.auth.delete.calls] == [created.id]
    assert await key_count(world) == 0
    assert world.events() == []
    [mirror_name] = world.counters.written
    assert await world.counters.inner.get_value(mirror_name) is None


async def test_a_failing_undo_is_logged_and_the_original_error_raised(world: World) -> None:
    world.publisher.raises(Unavailable("events", "down"))
    world.auth.delete.raises(Unavailable("auth", "down"))
    with pytest.raises(Unavailable):
        await world.generate()
    assert world.auth.delete.call_count == 1
    assert await key_count(world) == 0


async def test_an_auth_account_already_gone_counts_as_undone(world: World) -> None:
    world.publisher.raises(Unavailable("events", "down"))
    world.auth.delete.raises(NotFound("auth.delete", "Account not found"))
    with pytest.raises(Unavailable):
        await world.generate()
    assert world.auth.delete.call_count == 1
