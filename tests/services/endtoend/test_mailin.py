"""Mailin: only the front's account, only with the shared secret; every other mail is taken
without error (so it does not bounce), and only a verification email to the test customer
from the configured sender stores its code, which a run then finds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from m3o.runtime.auth import Account
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import Forbidden, Unauthorized
from m3o.runtime.store import SessionFactory
from m3o.services.endtoend import records
from m3o.services.endtoend.proto import endtoend_pb2 as pb
from services.endtoend.support import (
    ADMIN,
    CODE,
    EMAIL,
    GATEWAY,
    ROLES,
    SECRET,
    Gate,
    World,
    build_world,
    call,
    mail,
    settings,
)

BEFORE = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def world(sessions: SessionFactory, counters: CounterStore) -> World:
    return build_world(sessions, counters, Gate(None).make)


async def stored_code(world: World) -> str | None:
    async with world.sessions() as session:
        return await records.code_since(session, BEFORE)


async def test_a_verification_email_stores_its_code(world: World) -> None:
    assert await world.mailin(mail()) == pb.MailinResponse()
    assert await stored_code(world) == CODE


@pytest.mark.parametrize(
    "secret",
    ["", "wrong", SECRET + "x", SECRET[:-1]],
    ids=["missing", "wrong", "longer", "shorter"],
)
async def test_a_wrong_or_missing_secret_is_unauthorized_and_stores_nothing(
    world: World, secret: str
) -> None:
    with pytest.raises(Unauthorized):
        await world.mailin(mail(), secret=secret)
    assert await stored_code(world) is None


async def test_without_a_configured_secret_every_mail_is_refused(
    sessions: SessionFactory, counters: CounterStore
) -> None:
    world = build_world(sessions, counters, Gate(None).make, settings(mailin_secret=""))
    for secret in ("", SECRET):
        with pytest.raises(Unauthorized):
            await world.mailin(mail(), secret=secret)
    assert await stored_code(world) is None


@pytest.mark.parametrize("role", list(ROLES))
async def test_only_the_fronts_account_may_post_mail(world: World, role: str) -> None:
    account = ROLES[role]
    expected = Unauthorized if account is None else Forbidden
    with pytest.raises(expected):
        await world.handler.mailin(
            pb.MailinRequest(body=mail(), secret=SECRET), call("Mailin", account)
        )
    assert await stored_code(world) is None


async def test_another_services_account_named_otherwise_is_forbidden(world: World) -> None:
    impostor = Account(id="gateway", type="user", scopes=("admin",))
    for account in (impostor, ADMIN):
        with pytest.raises(Forbidden):
            await world.handler.mailin(
                pb.MailinRequest(body=mail(), secret=SECRET), call("Mailin", account)
            )


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[1, 2]",
        b'"a string"',
        b'{"plain": "no headers"}',
        b'{"headers": "not an object"}',
        b'{"headers": {"to": 5, "from": null}, "plain": 7}',
        mail(to="someone.else@example.com"),
        mail(sender="Mallory <noreply@evil.example>"),
        mail(subject="Your invoice"),
        mail(plain="Hi there, no code in this one."),
        mail(plain="please copy and paste this verification code into the signup form: ABC"),
    ],
    ids=[
        "bad json",
        "empty",
        "array",
        "string",
        "no headers",
        "headers not an object",
        "headers of other types",
        "other recipient",
        "other sender",
        "other subject",
        "no code",
        "short code",
    ],
)
async def test_other_mail_is_taken_without_error_and_ignored(world: World, body: bytes) -> None:
    assert await world.mailin(body) == pb.MailinResponse()
    assert await stored_code(world) is None


async def test_a_body_too_large_for_the_front_is_ignored(world: World) -> None:
    request = pb.MailinRequest(body=b"", secret=SECRET, too_large=True)
    assert await world.handler.mailin(request, call("Mailin", GATEWAY)) == pb.MailinResponse()
    assert await stored_code(world) is None


@pytest.mark.parametrize(
    ("to", "sender"),
    [
        (f"E2E Check <{EMAIL.upper()}>", "M3O <NoReply@M3O.com>"),
        (f"other@example.com, {EMAIL}", "noreply@m3o.com"),
    ],
    ids=["named and upper-case", "one of several recipients"],
)
async def test_addresses_are_compared_by_their_address_part(
    world: World, to: str, sender: str
) -> None:
    await world.mailin(mail(to=to, sender=sender, subject="Fwd: Verify your M3O account email"))
    assert await stored_code(world) == CODE


async def test_the_code_is_the_eight_letters_between_the_sentence_and_the_expiry(
    world: World,
) -> None:
    plain = (
        "Hi there,\nplease copy and paste this verification code into the signup form:\n"
        "  QWERTYUI\n\nThis code expires in 5 minutes."
    )
    await world.mailin(mail(plain=plain))
    assert await stored_code(world) == "QWERTYUI"


async def test_a_run_takes_only_a_code_that_arrived_after_it_asked(world: World) -> None:
    await world.mailin(mail())
    async with world.sessions() as session:
        assert await records.code_since(session, datetime.now(UTC) + timedelta(hours=1)) is None
        assert await records.code_since(session, datetime.now(UTC) - timedelta(hours=1)) == CODE
