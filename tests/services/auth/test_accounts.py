"""Generate, Delete, List and ChangeSecret, and the service accounts made at start."""

from __future__ import annotations

from typing import Literal

import pytest
from argon2 import PasswordHasher, profiles
from sqlalchemy import select

from m3o.runtime.auth import Account
from m3o.runtime.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from m3o.services.auth import tables
from m3o.services.auth.proto import auth_pb2 as pb
from m3o.services.auth.settings import AuthSettings
from services.auth.support import (
    ADMIN,
    SECRET,
    SERVICE,
    SERVICE_SECRET,
    World,
    call,
    customer,
)

# Generate


async def test_generate_creates_an_account_that_can_log_in(world: World) -> None:
    world.clock.advance(seconds=5)
    created = await world.generate(
        "ann", type="customer", scopes=["customer"], name="Ann@Example.com"
    )
    assert created.account == pb.Account(
        id="ann",
        type="customer",
        issuer="micro",
        name="ann@example.com",
        scopes=["customer"],
        created=int(world.clock().timestamp()),
    )
    assert created.secret == ""  # the caller chose it
    assert (await world.login("ann")).account.id == "ann"


async def test_generate_without_secret_returns_a_generated_one_once(world: World) -> None:
    created = await world.generate("ann", secret="")
    assert len(created.secret) >= 32
    assert (await world.login("ann", created.secret)).account.id == "ann"
    listed = await world.auth.list(pb.ListRequest(), call("List"))
    assert created.secret not in str(listed)


async def test_generate_keeps_metadata_and_defaults_the_type_to_user(world: World) -> None:
    request = pb.GenerateRequest(id="key1", secret=SECRET, metadata={"apikey_owner": "p1"})
    created = await world.auth.generate(request, call("Generate"))
    assert created.account.type == "user"
    assert dict(created.account.metadata) == {"apikey_owner": "p1"}
    token = (await world.login("key1")).token.access_token
    assert (await world.account_of(token)).metadata["apikey_owner"] == "p1"


async def test_generate_bad_input_is_bad_request(world: World) -> None:
    cases = [
        (pb.GenerateRequest(secret=SECRET), "Missing account id"),
        (pb.GenerateRequest(id="  ", secret=SECRET), "Missing account id"),
        (pb.GenerateRequest(id="x" * 256, secret=SECRET), "Account id is too long"),
        (pb.GenerateRequest(id="a", name="n" * 321), "Account name is too long"),
        (
            pb.GenerateRequest(id="a", type="robot"),
            "Account type must be one of ['apikey', 'customer', 'service', 'user']",
        ),
    ]
    for request, detail in cases:
        with pytest.raises(BadRequest) as caught:
            await world.auth.generate(request, call("Generate"))
        assert caught.value == BadRequest("auth.generate", detail)


async def test_generate_existing_id_is_conflict(world: World) -> None:
    await world.generate("ann")
    with pytest.raises(Conflict) as caught:
        await world.generate("ann", secret="another one")
    assert caught.value == Conflict("auth.generate", "Account already exists")
    assert (await world.login("ann")).account.id == "ann"  # unchanged


async def test_generate_name_in_use_is_conflict_whatever_its_case(world: World) -> None:
    await world.generate("ann", name="ann@example.com")
    with pytest.raises(Conflict) as caught:
        await world.generate("other", name=" ANN@example.com")
    assert caught.value == Conflict("auth.generate", "Account name is already in use")


async def test_accounts_without_a_name_do_not_conflict(world: World) -> None:
    await world.generate("a")
    await world.generate("b")


async def test_generate_needs_an_admin_or_service(world: World) -> None:
    request = pb.GenerateRequest(id="x")
    with pytest.raises(Unauthorized):
        await world.auth.generate(request, call("Generate", None))
    with pytest.raises(Forbidden):
        await world.auth.generate(request, call("Generate", customer()))
    await world.auth.generate(request, call("Generate", SERVICE))


# Delete


async def test_delete_removes_the_account_and_ends_its_sessions(world: World) -> None:
    await world.generate("ann")
    issued = await world.login("ann")
    await world.auth.delete(pb.DeleteRequest(id="ann"), call("Delete"))
    with pytest.raises(Unauthorized):
        await world.account_of(issued.token.access_token)
    with pytest.raises(Unauthorized):
        await world.login("ann")
    await world.generate("ann")  # the id is free again


async def test_delete_unknown_account_is_not_found(world: World) -> None:
    with pytest.raises(NotFound) as caught:
        await world.auth.delete(pb.DeleteRequest(id="nobody"), call("Delete"))
    assert caught.value == NotFound("auth.delete", "Account not found")


async def test_delete_needs_an_id_and_an_admin(world: World) -> None:
    with pytest.raises(BadRequest):
        await world.auth.delete(pb.DeleteRequest(), call("Delete"))
    await world.generate("ann")
    with pytest.raises(Forbidden):
        await world.auth.delete(pb.DeleteRequest(id="ann"), call("Delete", customer("ann")))


# List


async def test_list_pages_through_accounts_oldest_first(world: World) -> None:
    for name in ("a", "b", "c"):
        await world.generate(name)
        world.clock.advance(seconds=1)
    page = await world.auth.list(pb.ListRequest(limit=2), call("List"))
    assert [a.id for a in page.accounts] == ["a", "b"]
    page = await world.auth.list(pb.ListRequest(limit=2, offset=2), call("List", SERVICE))
    assert [a.id for a in page.accounts] == ["c"]


async def test_list_bad_paging_is_bad_request_and_customers_are_forbidden(world: World) -> None:
    with pytest.raises(BadRequest):
        await world.auth.list(pb.ListRequest(limit=-1), call("List"))
    with pytest.raises(Forbidden):
        await world.auth.list(pb.ListRequest(), call("List", customer()))


# ChangeSecret


async def test_account_changes_its_own_secret_with_the_old_one(world: World) -> None:
    await world.generate("ann")
    request = pb.ChangeSecretRequest(id="ann", old_secret=SECRET, new_secret="new secret!")
    await world.auth.change_secret(request, call("ChangeSecret", customer("ann")))
    assert (await world.login("ann", "new secret!")).account.id == "ann"
    with pytest.raises(Unauthorized):
        await world.login("ann", SECRET)


async def test_admin_and_service_change_a_secret_without_the_old_one(world: World) -> None:
    await world.generate("ann")
    for caller, secret in ((ADMIN, "set by admin"), (SERVICE, "set by service")):
        request = pb.ChangeSecretRequest(id="ann", new_secret=secret)
        await world.auth.change_secret(request, call("ChangeSecret", caller))
        assert (await world.login("ann", secret)).account.id == "ann"


async def test_change_secret_ends_every_session(world: World) -> None:
    await world.generate("ann")
    issued = [await world.login("ann") for _ in range(2)]
    request = pb.ChangeSecretRequest(id="ann", new_secret="reset")
    await world.auth.change_secret(request, call("ChangeSecret"))
    for pair in issued:
        with pytest.raises(Unauthorized):
            await world.account_of(pair.token.access_token)
        with pytest.raises(Unauthorized):
            await world.refresh(pair.token.refresh_token)


async def test_change_secret_with_wrong_old_secret_is_unauthorized_and_throttled(
    world: World,
) -> None:
    await world.generate("ann")
    ctx = call("ChangeSecret", customer("ann"))
    request = pb.ChangeSecretRequest(id="ann", old_secret="wrong", new_secret="new")
    for _ in range(5):
        with pytest.raises(Unauthorized) as caught:
            await world.auth.change_secret(request, ctx)
        assert caught.value == Unauthorized("auth.changesecret", "Invalid credentials")
    with pytest.raises(TooManyRequests):
        await world.auth.change_secret(request, ctx)
    with pytest.raises(TooManyRequests):
        await world.login("ann")  # the account's failures count for every way in


async def test_change_secret_of_another_account_is_forbidden(world: World) -> None:
    await world.generate("ann")
    await world.generate("bob")
    request = pb.ChangeSecretRequest(id="bob", old_secret=SECRET, new_secret="mine now")
    with pytest.raises(Forbidden):
        await world.auth.change_secret(request, call("ChangeSecret", customer("ann")))


async def test_change_secret_refusals(world: World) -> None:
    await world.generate("ann")
    cases: list[tuple[pb.ChangeSecretRequest, Account | None, type[Exception]]] = [
        (pb.ChangeSecretRequest(id="ann", new_secret="n"), None, Unauthorized),
        (pb.ChangeSecretRequest(new_secret="n"), ADMIN, BadRequest),
        (pb.ChangeSecretRequest(id="ann"), ADMIN, BadRequest),
        (pb.ChangeSecretRequest(id="ann", new_secret="n"), customer("ann"), BadRequest),
        (pb.ChangeSecretRequest(id="nobody", new_secret="n"), ADMIN, NotFound),
    ]
    for request, caller, error in cases:
        with pytest.raises(error):
            await world.auth.change_secret(request, call("ChangeSecret", caller))
    assert (await world.login("ann")).account.id == "ann"


# Service accounts


def _with_services(world: World, secret: str = SERVICE_SECRET) -> World:
    settings = AuthSettings(service_names=("customers", "signup"), service_secret=secret)
    return world.variant(settings=settings)


async def test_service_accounts_are_created_and_get_service_tokens(world: World) -> None:
    await _with_services(world).auth.ensure_service_accounts()
    issued = await world.login("customers", SERVICE_SECRET)
    account = await world.account_of(issued.token.access_token)
    assert (account.id, account.type, account.name, account.scopes) == (
        "customers",
        "service",
        "customers",
        ("service",),
    )


async def test_ensuring_service_accounts_twice_changes_nothing(world: World) -> None:
    services = _with_services(world)
    await services.auth.ensure_service_accounts()
    async with world.sessions() as session:
        before = (await session.execute(select(tables.accounts))).all()
    world.clock.advance(minutes=1)
    await services.auth.ensure_service_accounts()
    async with world.sessions() as session:
        after = (await session.execute(select(tables.accounts))).all()
    assert before == after


async def test_a_changed_service_secret_replaces_the_old_one(world: World) -> None:
    await _with_services(world).auth.ensure_service_accounts()
    await _with_services(world, "rotated secret").auth.ensure_service_accounts()
    assert (await world.login("signup", "rotated secret")).account.id == "signup"
    with pytest.raises(Unauthorized):
        await world.login("signup", SERVICE_SECRET)


class CountingHasher(PasswordHasher):
    """The cheapest Argon2id, counting what it is asked to do."""

    def __init__(self) -> None:
        cheap = PasswordHasher.from_parameters(profiles.CHEAPEST)
        super().__init__(
            time_cost=cheap.time_cost,
            memory_cost=cheap.memory_cost,
            parallelism=cheap.parallelism,
            hash_len=cheap.hash_len,
            salt_len=cheap.salt_len,
        )
        self.hashed = 0
        self.verified = 0

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.hashed += 1
        return super().hash(password, salt=salt)

    def verify(self, hashed: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified += 1
        return super().verify(hashed, password)


async def test_service_accounts_cost_one_hash_of_their_shared_secret(world: World) -> None:
    hasher = CountingHasher()

    def services(secret: str) -> World:
        names = ("customers", "signup", "emails")
        settings = AuthSettings(service_names=names, service_secret=secret)
        return world.variant(settings=settings, hasher=hasher)

    await services(SERVICE_SECRET).auth.ensure_service_accounts()
    assert (hasher.hashed, hasher.verified) == (1, 0)
    await services(SERVICE_SECRET).auth.ensure_service_accounts()
    assert (hasher.hashed, hasher.verified) == (1, 1)
    await services("rotated secret").auth.ensure_service_accounts()
    assert (hasher.hashed, hasher.verified) == (2, 2)
    for name in ("customers", "signup", "emails"):
        assert (await world.login(name, "rotated secret")).account.id == name


async def test_service_accounts_need_a_secret(world: World) -> None:
    with pytest.raises(ValueError, match="service_secret"):
        await _with_services(world, "").auth.ensure_service_accounts()


async def test_login_rehashes_a_secret_hashed_with_old_parameters(world: World) -> None:
    old = world.variant(hasher=PasswordHasher(time_cost=1, memory_cost=16, parallelism=1))
    await old.generate("ann")
    await world.login("ann")
    async with world.sessions() as session:
        stored = await session.scalar(
            select(tables.accounts.c.secret_hash).where(tables.accounts.c.id == "ann")
        )
    assert stored is not None
    assert "m=16," not in stored
    assert (await world.login("ann")).account.id == "ann"
