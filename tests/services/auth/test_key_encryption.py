"""Signing keys at rest: encrypted with the key-encryption key, old rows still load, a wrong
or missing key-encryption key stops the start without making new keys, rotation works."""

from __future__ import annotations

import base64

import jwt
import orjson
import pytest
from sqlalchemy import select

from m3o.runtime.config import ConfigError, build_config
from m3o.runtime.counters import CounterStore
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.auth import tables
from m3o.services.auth.proto import auth_pb2 as pb
from m3o.services.auth.service import settings_from
from m3o.services.auth.settings import AuthSettings
from services.auth.support import Clock, World, call, make_world

KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))


def text(key: bytes) -> str:
    return base64.b64encode(key).decode()


async def started(
    sessions: SessionFactory,
    counters: CounterStore,
    clock: Clock,
    current: bytes | None,
    previous: tuple[bytes, ...] = (),
) -> World:
    settings = AuthSettings(key_encryption_key=current, previous_key_encryption_keys=previous)
    world = make_world(sessions, counters, clock, settings)
    await world.auth.ensure_signing_key()
    return world


async def stored_keys(sessions: SessionFactory) -> list[str]:
    async with transaction(sessions) as session:
        return list(await session.scalars(select(tables.keys.c.private_key)))


async def published_kids(world: World) -> list[str]:
    answer = await world.auth.public_keys(pb.PublicKeysRequest(), call("PublicKeys", None))
    return [key["kid"] for key in orjson.loads(answer.jwks)["keys"]]


async def test_private_keys_are_stored_encrypted_and_tokens_verify(
    sessions: SessionFactory, counters: CounterStore, clock: Clock
) -> None:
    world = await started(sessions, counters, clock, KEY_A)
    await world.generate("ann")
    issued = await world.login("ann")
    assert (await world.account_of(issued.token.access_token)).id == "ann"
    [stored] = await stored_keys(sessions)
    assert "PRIVATE KEY" not in stored
    assert base64.b64encode(KEY_A).decode() not in stored


async def test_keys_stored_in_clear_still_sign_and_are_encrypted_at_the_next_start(
    sessions: SessionFactory, counters: CounterStore, clock: Clock
) -> None:
    older = await started(sessions, counters, clock, None)
    await older.generate("ann")
    before = await older.login("ann")
    [stored] = await stored_keys(sessions)
    assert stored.startswith("-----BEGIN PRIVATE KEY-----")

    upgraded = await started(sessions, counters, clock, KEY_A)
    [stored] = await stored_keys(sessions)
    assert "PRIVATE KEY" not in stored
    assert (await upgraded.account_of(before.token.access_token)).id == "ann"
    after = await upgraded.login("ann")
    kid = jwt.get_unverified_header(after.token.access_token)["kid"]
    assert kid == jwt.get_unverified_header(before.token.access_token)["kid"]
    assert await published_kids(upgraded) == [kid]


async def test_a_wrong_key_encryption_key_stops_the_start_and_makes_no_new_key(
    sessions: SessionFactory, counters: CounterStore, clock: Clock
) -> None:
    first = await started(sessions, counters, clock, KEY_A)
    kids = await published_kids(first)
    before = await stored_keys(sessions)
    with pytest.raises(ConfigError) as raised:
        await started(sessions, counters, clock, KEY_B)
    message = str(raised.value)
    assert message.startswith("auth.key_encryption_key: ")
    assert "\n" not in message
    assert text(KEY_B) not in message and text(KEY_A) not in message
    assert await stored_keys(sessions) == before
    assert await published_kids(first) == kids


async def test_encrypted_keys_without_a_key_encryption_key_stop_the_start(
    sessions: SessionFactory, counters: CounterStore, clock: Clock
) -> None:
    await started(sessions, counters, clock, KEY_A)
    before = await stored_keys(sessions)
    with pytest.raises(ConfigError, match="none is configured"):
        await started(sessions, counters, clock, None)
    assert await stored_keys(sessions) == before


async def test_rotation_reencrypts_under_the_new_key_with_the_old_one_as_previous(
    sessions: SessionFactory, counters: CounterStore, clock: Clock
) -> None:
    old = await started(sessions, counters, clock, KEY_A)
    await old.generate("ann")
    before = await old.login("ann")
    await old.auth.rotate_signing_key()  # a retired key is re-encrypted too

    # Step 1: every process learns the new key (still encrypting with the old one).
    await started(sessions, counters, clock, KEY_A, (KEY_B,))
    # Step 2: the new key encrypts; the old one only decrypts.
    rotated = await started(sessions, counters, clock, KEY_B, (KEY_A,))
    assert (await rotated.account_of(before.token.access_token)).id == "ann"
    # Step 3: the old key is dropped; everything opens with the new one alone.
    new_only = await started(sessions, counters, clock, KEY_B)
    assert (await new_only.account_of((await new_only.login("ann")).token.access_token)).id == (
        "ann"
    )
    with pytest.raises(ConfigError):
        await started(sessions, counters, clock, KEY_A)
    assert len(await stored_keys(sessions)) == 2


def test_key_encryption_keys_are_secrets_read_from_config_and_environment() -> None:
    config = build_config(
        {"auth": {"previous_key_encryption_keys": f"{text(KEY_B)}, {text(KEY_A)}"}},
        {"M3O_AUTH__KEY_ENCRYPTION_KEY": text(KEY_A)},
    )
    auth = config.dump()["auth"]
    assert auth["key_encryption_key"] == "[redacted]"
    assert auth["previous_key_encryption_keys"] == "[redacted]"
    assert text(KEY_A) not in repr(config)
    settings = settings_from(config)
    assert settings.key_encryption_key == KEY_A
    assert settings.previous_key_encryption_keys == (KEY_B, KEY_A)
    assert text(KEY_A) not in repr(settings)


@pytest.mark.parametrize("bad", ["short", "not base64 at all!", text(b"x" * 31)])
def test_a_malformed_key_encryption_key_is_refused_naming_the_key_not_the_value(
    bad: str,
) -> None:
    with pytest.raises(ConfigError) as raised:
        build_config({}, {"M3O_AUTH__KEY_ENCRYPTION_KEY": bad})
    message = str(raised.value)
    assert message.startswith("auth.key_encryption_key: must be 32 random bytes in base64")
    assert bad not in message
