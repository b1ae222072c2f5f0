"""PublicKeys and signing keys: anyone can verify tokens with the JWKS; rotation is smooth."""

from __future__ import annotations

from datetime import timedelta

import jwt
import orjson

from m3o.services.auth.proto import auth_pb2 as pb
from m3o.services.auth.settings import AuthSettings
from services.auth.support import World, call


async def jwks(world: World) -> dict[str, list[dict[str, str]]]:
    answer = await world.auth.public_keys(pb.PublicKeysRequest(), call("PublicKeys", None))
    document: dict[str, list[dict[str, str]]] = orjson.loads(answer.jwks)
    return document


async def test_plain_pyjwt_verifies_a_token_with_the_published_keys(world: World) -> None:
    await world.generate("ann")
    issued = await world.login("ann")
    token = issued.token.access_token
    key_set = jwt.PyJWKSet.from_dict(await jwks(world))
    key = key_set[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key, algorithms=["EdDSA"], issuer="micro")
    assert claims["sub"] == "ann"


async def test_published_keys_are_public_ed25519_keys_only(world: World) -> None:
    keys = (await jwks(world))["keys"]
    assert len(keys) == 1
    assert keys[0].keys() == {"kty", "crv", "x", "kid", "alg", "use"}
    assert (keys[0]["kty"], keys[0]["crv"], keys[0]["alg"]) == ("OKP", "Ed25519", "EdDSA")


async def test_the_first_key_is_made_once_and_shared_by_every_process(world: World) -> None:
    await world.variant().auth.ensure_signing_key()
    await world.auth.ensure_signing_key()
    assert len((await jwks(world))["keys"]) == 1


async def test_rotation_signs_with_a_new_key_and_old_tokens_keep_working(world: World) -> None:
    await world.generate("ann")
    before = await world.login("ann")
    new_kid = await world.auth.rotate_signing_key()
    after = await world.login("ann")
    assert jwt.get_unverified_header(after.token.access_token)["kid"] == new_kid
    assert jwt.get_unverified_header(before.token.access_token)["kid"] != new_kid
    for issued in (before, after):
        assert (await world.account_of(issued.token.access_token)).id == "ann"
    assert len((await jwks(world))["keys"]) == 2


async def test_other_processes_follow_a_rotation(world: World) -> None:
    other = world.variant()
    await other.generate("ann")
    await other.login("ann")  # loads the current key
    new_kid = await world.auth.rotate_signing_key()
    world.clock.advance(minutes=2)
    issued = await other.login("ann")
    assert jwt.get_unverified_header(issued.token.access_token)["kid"] == new_kid


async def test_retired_keys_are_dropped_once_their_tokens_have_expired(world: World) -> None:
    short = world.variant(settings=AuthSettings(max_token_ttl=timedelta(days=1)))
    await short.auth.rotate_signing_key()
    world.clock.advance(hours=23)
    assert len((await jwks(short))["keys"]) == 2
    world.clock.advance(hours=2)
    assert len((await jwks(short))["keys"]) == 1


async def test_tokens_name_their_published_key(world: World) -> None:
    await world.generate("ann")
    token = (await world.login("ann")).token.access_token
    published = {key["kid"] for key in (await jwks(world))["keys"]}
    assert jwt.get_unverified_header(token)["kid"] in published
